"""The operator console (`PROBEGUARD_CONSOLE=true`): one static page served from the package, and the two public
routes it calls besides /v1/detect — /v1/trace (the layer trace, on the full torch host loaded only with the console)
and /v1/features (what the bundle knows about SAE features). Off by default: without the setting none of these routes
exist (404).

The page carries no data and no secret: it asks for the bearer token when the API answers 401 and keeps it in memory.
Every console response carries a strict Content-Security-Policy (scripts and styles from this origin only, no inline
code, no frames, API calls to this origin only); the page renders every text with textContent, never as HTML.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from probeguard.detector.explanation import ExplainUnavailableError
from probeguard.detector.trace import LayerTrace, LayerTracer, TraceUnavailableError
from probeguard.service.errors import NotReadyError, RequestError, TooManyItemsError
from probeguard.service.routes import require_token, service_of, texts_of
from probeguard.service.schemas import DetectRequest, Message
from probeguard.service.state import ServiceState

log = logging.getLogger("probeguard.service")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "x-frame-options": "DENY",
                    "referrer-policy": "no-referrer", "cache-control": "no-store"}  # fmt: skip
STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}  # fmt: skip
MAX_FEATURE_IDS = 32  # features per /v1/features call


class TraceRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Exactly one of `text` or `messages` (each message traced on its own)."""

    text: str | None = None
    messages: list[Message] | None = None


class CategoryTraceOut(msgspec.Struct):
    scores: list[float]  # per layer
    thresholds: list[float]  # per layer
    first_crossing: int | None  # index into `layers` of the first layer at or over its threshold


class TokenTraceOut(msgspec.Struct):
    start: int
    end: int
    scores: dict[str, float]  # category -> the token's score under the served layer's probe


class TextTraceOut(msgspec.Struct):
    role: str | None  # the message's role (absent for a plain text)
    categories: dict[str, CategoryTraceOut]
    tokens: list[TokenTraceOut]
    windows: int


class TraceResponse(msgspec.Struct):
    layers: list[int]  # 0 = embeddings, k = residual stream after k blocks; the last is before the final norm
    served_layer: int  # the layer the served heads read
    traces: list[TextTraceOut]  # one per text or message


class ContextOut(msgspec.Struct):
    source: str
    licence: str
    text: str | None  # redacted; None where the licence forbids redistributing it
    mark: tuple[int, int]  # the firing token's character range in `text`


class FeatureInfoOut(msgspec.Struct):
    id: int
    label: str | None
    top_tokens: list[tuple[str, int]]
    contexts: list[ContextOut]
    fire_rate: float | None


class FeaturesResponse(msgspec.Struct):
    features: list[FeatureInfoOut]


def _tracer(svc: ServiceState) -> LayerTracer:
    if svc.tracer is None:
        raise TraceUnavailableError("the layer trace is off: the served bundle has no trace probes (retrain it, or "
                                    "add them with python -m probeguard.training.layer_trace)")  # fmt: skip
    return svc.tracer


def _trace_out(role: str | None, t: LayerTrace) -> TextTraceOut:
    cats = {n: CategoryTraceOut(list(c.scores), list(c.thresholds), c.first_crossing) for n, c in t.categories.items()}
    return TextTraceOut(role, cats, [TokenTraceOut(k.start, k.end, k.scores) for k in t.tokens], t.windows)


@get("/console", summary="The operator console page (PROBEGUARD_CONSOLE=true)", include_in_schema=False)
async def console_page() -> Response:
    return _static("index.html")


@get("/console/{name:str}", summary="The console's script and style", include_in_schema=False)
async def console_asset(name: FromPath[str]) -> Response:
    if name not in STATIC or name == "index.html":
        return Response(b"not found", status_code=404, headers=SECURITY_HEADERS, media_type="text/plain")
    return _static(name)


def _static(name: str) -> Response:
    body = resources.files("probeguard.service").joinpath("console_static", name).read_bytes()
    return Response(body, media_type=STATIC[name], headers=SECURITY_HEADERS)


@post("/v1/trace", guards=[require_token], status_code=200,
      summary="Layer trace: each category's score at every layer of the host (console only)")  # fmt: skip
async def trace(data: JSONBody[TraceRequest], request: Request) -> TraceResponse:
    svc = service_of(request)
    tracer = _tracer(svc)
    detector = svc.detector
    texts = texts_of(DetectRequest(text=data.text, messages=data.messages), svc, detector)  # as /v1/detect checks
    detector.validate(texts)  # empty (422), too long (413), not a string
    roles = [None] if data.text is not None else [m.role for m in data.messages or []]
    if svc.batcher is None or not svc.ready:
        raise NotReadyError("the service is starting")
    # work in planned tokens: the full host runs num_layers blocks where the served graph runs its deepest layer's
    depth = max(detector.bundle.manifest.layers)
    factor = detector.bundle.manifest.host.num_layers / max(depth, 1)
    loop = asyncio.get_running_loop()  # tokenizing is CPU work: off the event loop, as /v1/detect does it
    encoded = await loop.run_in_executor(svc.tokenize_pool, lambda: [tracer.encode(t) for t in texts])
    work = factor * sum(detector.batch_cost([tracer.window_tokens(e)]) for e in encoded)
    traces = await svc.batcher.run_exclusive(lambda: [tracer.trace_encoded(e) for e in encoded], work)
    probes = tracer.probes
    return TraceResponse(list(probes.layers), probes.served_layer,
                         [_trace_out(r, t) for r, t in zip(roles, traces, strict=True)])  # fmt: skip


@get("/v1/features", guards=[require_token],
     summary="SAE features as the bundle labels them: top tokens, redacted top contexts (console only)")  # fmt: skip
async def features(ids: FromQuery[str], request: Request) -> FeaturesResponse:
    svc = service_of(request)
    explainer = svc.detector.explainer  # 409 when the bundle cannot explain
    art = explainer.artifacts
    if art is None:
        raise ExplainUnavailableError("this bundle stores no feature labels")
    try:
        wanted = [int(x) for x in ids.split(",") if x.strip()]
    except ValueError:
        raise RequestError("ids must be comma-separated feature ids") from None
    if not wanted:
        raise RequestError("ids is empty")
    if len(wanted) > MAX_FEATURE_IDS:
        raise TooManyItemsError(f"{len(wanted)} ids; the limit is {MAX_FEATURE_IDS}")
    d_sae = explainer.sae.config.d_sae
    if any(not 0 <= i < d_sae for i in wanted):
        raise RequestError(f"feature ids must be in 0..{d_sae - 1}")
    out = []
    for i in wanted:
        f = art.labels.get(i)
        if f is None:
            out.append(FeatureInfoOut(i, None, [], [], None))
            continue
        contexts = [ContextOut(c.source, c.licence, c.text, c.mark) for c in f.contexts]
        out.append(FeatureInfoOut(i, f.short(), [(t, n) for t, n in f.top_tokens], contexts, f.fire_rate))
    return FeaturesResponse(out)


CONSOLE_ROUTES = [console_page, console_asset, trace, features]
