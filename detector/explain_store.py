"""What a bundle stores so it can say *why*: feature labels and the training rows behind each category head.

Both live under `explain/` in the bundle, listed with their sha256 in the manifest's `explain` section:

- `features.json`: for every live feature of the bundle's SAE, its most frequent firing tokens and its top-activating
  contexts (a short window, the firing token marked, source and licence; the text redacted by the detector's own PII
  spans, and absent where the source's licence does not allow redistributing it), plus the sources whose
  `fire_share` columns give each feature's association with every source and role.
- `rows.json`: per category, the labelled training rows its head was fitted on (source, role, label, row id,
  licence, a redacted snippet or none).
- `explain.safetensors`: `fire_share` [d_sae, n_sources] (share of each source's rows where the feature fires) and,
  per category, the influence layer: an L2 logistic model refitted on the head's per-query pooled values
  (`<cat>.rows` [n_rows, queries + 1] with a constant column, `<cat>.residuals` [n_rows] = y - p, `<cat>.h_inv`
  [queries + 1, queries + 1] the inverse Hessian, `<cat>.coef` [queries + 1]).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from probeguard.detector.errors import BundleCorruptError

EXPLAIN_DIR = "explain"
FEATURES_FILE = "features.json"
ROWS_FILE = "rows.json"
TENSORS_FILE = "explain.safetensors"
FILES = (FEATURES_FILE, ROWS_FILE, TENSORS_FILE)
# Licences whose text may be redistributed inside an Apache-2.0 bundle; any other (CC BY-NC: the Alpaca rows) or an
# unknown licence is cited by source and row id only.
REDISTRIBUTABLE = frozenset({"Apache-2.0", "MIT", "CC BY 4.0", "project-written"})


@dataclass(frozen=True)
class Context:
    source: str
    row: int  # index into the source's train part
    licence: str
    text: str | None  # the window around the firing token, PII redacted; None when the licence forbids it
    mark: tuple[int, int]  # the firing token's character range inside `text` (0, 0 when text is None)
    activation: float


@dataclass(frozen=True)
class FeatureLabel:
    id: int
    top_tokens: tuple[tuple[str, int], ...]  # most frequent firing tokens, with counts
    contexts: tuple[Context, ...]  # top-activating first
    fire_rate: float  # share of the sampled tokens where it fires

    def short(self) -> str:
        """A one-line label: its three most frequent firing tokens."""
        return " | ".join(repr(t.strip() or t) for t, _ in self.top_tokens[:3])


@dataclass(frozen=True)
class SourceRef:
    name: str
    category: str  # "pii" for PII sources
    role: str  # positive | lookalike | negative (PII sources: "text")


@dataclass(frozen=True)
class TrainingRow:
    source: str
    role: str
    label: int
    row: int
    licence: str
    snippet: str | None  # redacted; None when the licence forbids redistributing the text


@dataclass(frozen=True)
class InfluenceLayer:
    """An L2 logistic model over a category head's per-query pooled values, refitted on its training rows."""

    head: str
    rows: tuple[TrainingRow, ...]
    features: np.ndarray  # [n_rows, queries + 1] pooled values and a constant 1
    residuals: np.ndarray  # [n_rows] y - p under the refit
    h_inv: np.ndarray  # [queries + 1, queries + 1]
    coef: np.ndarray  # [queries + 1] (the last entry is the intercept)

    def support(self, x: np.ndarray) -> np.ndarray:
        """[n_rows] how much each row pushes the refit logit of x (pooled values + 1) up: removing row j moves it
        by about -support[j] (first-order influence, Koh & Liang; exact for the quadratic model around the fit)."""
        return (self.features @ (self.h_inv @ x)) * self.residuals

    def logit(self, x: np.ndarray) -> float:
        return float(x @ self.coef)

    def nearest(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k rows nearest x in the pooled space scaled by the rows' spread: (indices, distances)."""
        pooled = self.features[:, :-1]
        scale = pooled.std(0) + 1e-6
        d = np.sqrt((((pooled - x[:-1]) / scale) ** 2).sum(1))
        order = np.argsort(d, kind="stable")[:k]
        return order, d[order]


@dataclass(frozen=True)
class ExplainArtifacts:
    sae: str  # the SAE the labels describe
    labels: dict[int, FeatureLabel]  # live features only
    sources: tuple[SourceRef, ...]
    fire_share: np.ndarray  # [d_sae, n_sources]
    influence: dict[str, InfluenceLayer]  # category -> its layer


def write_explain(folder: Path, art: ExplainArtifacts) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    features = {
        "sae": art.sae,
        "sources": [asdict(s) for s in art.sources],
        "features": [{"id": f.id, "fire_rate": f.fire_rate, "top_tokens": [list(t) for t in f.top_tokens],
                      "contexts": [asdict(c) for c in f.contexts]} for f in art.labels.values()],
    }  # fmt: skip
    rows = {cat: {"head": lay.head, "rows": [asdict(r) for r in lay.rows]} for cat, lay in art.influence.items()}
    (folder / FEATURES_FILE).write_text(json.dumps(features, ensure_ascii=False, separators=(",", ":")), "utf-8")
    (folder / ROWS_FILE).write_text(json.dumps(rows, ensure_ascii=False, separators=(",", ":")), "utf-8")
    tensors = {"fire_share": torch.from_numpy(np.asarray(art.fire_share, dtype=np.float16))}
    for cat, layer in art.influence.items():
        for key in ("features", "residuals", "h_inv", "coef"):
            tensors[f"{cat}.{key}"] = torch.from_numpy(np.ascontiguousarray(getattr(layer, key), dtype=np.float32))
    save_file(tensors, str(folder / TENSORS_FILE))


def _bad(where: Path, msg: str) -> BundleCorruptError:
    return BundleCorruptError(f"{where}: {msg}")


def read_explain(folder: Path, d_sae: int, queries: dict[str, int]) -> ExplainArtifacts:
    """Read and check the artifacts: `d_sae` of the SAE they name, `queries` per category head (attention heads)."""
    try:
        features = json.loads((folder / FEATURES_FILE).read_text("utf-8"))
        rows = json.loads((folder / ROWS_FILE).read_text("utf-8"))
        tensors = {k: v.numpy() for k, v in load_file(str(folder / TENSORS_FILE)).items()}
    except (OSError, ValueError, SafetensorError) as exc:
        raise _bad(folder, f"unreadable explain artifacts ({type(exc).__name__}: {exc})") from None
    try:
        sources = tuple(SourceRef(**s) for s in features["sources"])
        labels = {}
        for f in features["features"]:
            contexts = tuple(Context(**{**c, "mark": tuple(c["mark"])}) for c in f["contexts"])
            labels[int(f["id"])] = FeatureLabel(int(f["id"]), tuple((str(t), int(n)) for t, n in f["top_tokens"]),
                                                contexts, float(f["fire_rate"]))  # fmt: skip
        influence = {}
        for cat, entry in rows.items():
            layer_rows = tuple(TrainingRow(**r) for r in entry["rows"])
            arrays = {k: tensors[f"{cat}.{k}"].astype(np.float64) for k in ("features", "residuals", "h_inv", "coef")}
            influence[cat] = InfluenceLayer(entry["head"], layer_rows, **arrays)
        fire_share = tensors["fire_share"].astype(np.float32)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(folder, f"malformed explain artifacts ({type(exc).__name__}: {exc})") from None
    if fire_share.shape != (d_sae, len(sources)):
        raise _bad(folder, f"fire_share has shape {fire_share.shape}, expected ({d_sae}, {len(sources)})")
    if any(not 0 <= i < d_sae for i in labels):
        raise _bad(folder, f"a feature label names a feature outside 0..{d_sae - 1}")
    for cat, layer in influence.items():
        width = queries.get(cat)
        n = len(layer.rows)
        if width is None:
            raise _bad(folder, f"influence layer for {cat!r}, which no attention head of the bundle scores")
        shapes = {"features": (n, width + 1), "residuals": (n,), "h_inv": (width + 1, width + 1), "coef": (width + 1,)}
        for key, shape in shapes.items():
            if getattr(layer, key).shape != shape:
                raise _bad(folder, f"{cat}.{key} has shape {getattr(layer, key).shape}, expected {shape}")
    return ExplainArtifacts(features["sae"], labels, sources, fire_share, influence)


def redistributable(licence: str) -> bool:
    return licence in REDISTRIBUTABLE
