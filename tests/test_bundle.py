"""Bundle round trip and every corruption case: each refusal names the file and the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from probeguard.detector import Detector, DetectorSettings
from probeguard.detector.bundle import HEADS_FILE, MANIFEST, load_bundle
from probeguard.detector.errors import BundleCorruptError, BundleHostMismatchError, BundleNotFoundError, ConfigError
from probeguard.detector.heads import register_head
from probeguard.detector.heads.linear import TokenLinearHead
from probeguard.detector.host import sha256_file
from tests.bundles import make_bundle

TEXTS = ["Hello, my name is Anna Schmidt and my email is anna.schmidt@example.org.", "How do I kill a process?"]


def _settings(tmp_path: Path, host: Path, **kw) -> DetectorSettings:
    return DetectorSettings(cache_dir=tmp_path / "cache", host_path=host, **{"backend": "torch", **kw})


def test_round_trip_gives_identical_scores(tmp_path, tiny_hosts, seed):
    host = tiny_hosts("gemma3_text")
    bundle = make_bundle(tmp_path / "b1", host)
    again = load_bundle(tmp_path / "b1")
    assert again.manifest == bundle.manifest
    det = Detector.load(tmp_path / "b1", _settings(tmp_path, host))
    probs_a, cats_a = det.score(det.encode(TEXTS))
    # Save the loaded heads as a new bundle, load that, and score again.
    heads = [(h, e.thresholds) for h, e in zip(again.build_heads(), again.manifest.active_heads, strict=True)]
    from probeguard.detector.bundle import save_bundle

    save_bundle(
        tmp_path / "b2", name="copy", version="1", host=again.manifest.host, heads=heads, saes=again.build_saes()
    )
    det2 = Detector.load(tmp_path / "b2", _settings(tmp_path, host))
    probs_b, cats_b = det2.score(det2.encode(TEXTS))
    for a, b in zip(probs_a, probs_b, strict=True):
        np.testing.assert_array_equal(a, b)
    assert cats_a == cats_b
    assert len({round(c["unsafe"], 6) for c in cats_a}) == 2, "scores depend on the text"


def _edit_manifest(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        data = json.loads((path / MANIFEST).read_text())
        fn(data)
        (path / MANIFEST).write_text(json.dumps(data))

    return apply


def _resave_tensors(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    """Change tensors and fix the checksum, so the shape/name checks (not the hash) must catch it."""

    def apply(path: Path) -> None:
        tensors = load_file(str(path / HEADS_FILE))
        fn(tensors)
        save_file(tensors, str(path / HEADS_FILE))
        _edit_manifest(lambda d: d["files"][HEADS_FILE].update(sha256=sha256_file(path / HEADS_FILE)))(path)

    return apply


def _flip_byte(path: Path) -> None:
    data = bytearray((path / HEADS_FILE).read_bytes())
    data[-3] ^= 0xFF
    (path / HEADS_FILE).write_bytes(bytes(data))


CORRUPTIONS: list[tuple[str, Callable[[Path], None], type[Exception], str]] = [
    ("no manifest", lambda p: (p / MANIFEST).unlink(), BundleNotFoundError, MANIFEST),
    ("no tensors", lambda p: (p / HEADS_FILE).unlink(), BundleNotFoundError, HEADS_FILE),
    ("manifest not json", lambda p: (p / MANIFEST).write_text("{nope"), BundleCorruptError, "not valid JSON"),
    ("manifest not utf-8", lambda p: (p / MANIFEST).write_bytes(b"\xff\xfe{"), BundleCorruptError, "not valid JSON"),
    ("manifest is a list", lambda p: (p / MANIFEST).write_text("[]"), BundleCorruptError, "JSON object"),
    ("future format", _edit_manifest(lambda d: d.update(format_version=99)), BundleCorruptError, "format_version"),
    ("no host", _edit_manifest(lambda d: d.pop("host")), BundleCorruptError, "'host'"),
    ("host layers wrong type", _edit_manifest(lambda d: d["host"].update(num_layers="4")), BundleCorruptError,
     "num_layers"),
    ("unknown head type", _edit_manifest(lambda d: d["heads"][0].update(type="magic")), BundleCorruptError,
     "heads[0]"),
    ("unknown config field", _edit_manifest(lambda d: d["heads"][0]["config"].update(colour="red")),
     BundleCorruptError, "colour"),
    ("bad pooling", _edit_manifest(lambda d: d["heads"][1]["config"].update(pooling="median")), BundleCorruptError,
     "pooling"),
    ("threshold out of range", _edit_manifest(lambda d: d["heads"][0]["thresholds"].update(PERSON=1.5)),
     BundleCorruptError, "threshold of PERSON"),
    ("threshold missing", _edit_manifest(lambda d: d["heads"][0]["thresholds"].pop("EMAIL")), BundleCorruptError,
     "thresholds must cover"),
    ("layer past host", _edit_manifest(lambda d: d["heads"][0]["config"].update(layer=9)), BundleCorruptError,
     "host.num_layers"),
    ("layers field stale", _edit_manifest(lambda d: d.update(layers=[1])), BundleCorruptError, "field layers"),
    ("duplicate head names", _edit_manifest(lambda d: d["heads"][1]["config"].update(name="pii")),
     BundleCorruptError, "duplicate names"),
    ("no active head", _edit_manifest(lambda d: [h["config"].update(active=False) for h in d["heads"]]),
     BundleCorruptError, "no active head"),
    ("checksum", _flip_byte, BundleCorruptError, "sha256"),
    ("missing tensor", _resave_tensors(lambda t: t.pop("pii.bias")), BundleCorruptError, "missing tensor pii.bias"),
    ("wrong shape", _resave_tensors(lambda t: t.update({"pii.bias": t["pii.bias"][:2].clone()})),
     BundleCorruptError, "shape"),
    ("extra tensor", _resave_tensors(lambda t: t.update({"ghost.w": t["pii.bias"].clone()})), BundleCorruptError,
     "unexpected tensors"),
    ("nan weights", _resave_tensors(lambda t: t["pii.bias"].fill_(float("nan"))), BundleCorruptError, "non-finite"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "corrupt", "error", "needle"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupt_bundle_is_refused_with_a_clear_error(tmp_path, tiny_hosts, name, corrupt, error, needle):
    make_bundle(tmp_path / "b", tiny_hosts("gemma3_text"))
    corrupt(tmp_path / "b")
    with pytest.raises(error) as info:
        load_bundle(tmp_path / "b")
    assert needle in str(info.value)


def test_missing_folder(tmp_path):
    with pytest.raises(BundleNotFoundError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


def test_bundle_for_another_host_is_refused(tmp_path, tiny_hosts):
    make_bundle(tmp_path / "b", tiny_hosts("gemma3_text"))
    with pytest.raises(BundleHostMismatchError, match=r"host\.sha256"):
        Detector.load(tmp_path / "b", _settings(tmp_path, tiny_hosts("llama")))


def test_duplicate_head_type_registration_fails():
    with pytest.raises(ConfigError, match="already registered"):
        register_head("token_linear")(TokenLinearHead)


def test_inactive_heads_are_kept_but_not_built(tmp_path, tiny_hosts):
    from tests.bundles import default_configs

    configs = default_configs(token_layer=3)
    configs[0] = type(configs[0])(**{**configs[0].__dict__, "active": False})
    bundle = make_bundle(tmp_path / "b", tiny_hosts("gemma3_text"), configs)
    assert bundle.manifest.layers == (1,), "the inactive head's layer 3 does not deepen the host"
    assert [h.config.name for h in bundle.build_heads()] == ["unsafe", "injection"]
