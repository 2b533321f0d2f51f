"""Format-1 bundles, converted on load: each SAE-feature head carried its own copy of the SAE encoder (identical
copies in `unsafe_sae` and `prompt_injection_sae` of probeguard-base 0.2.0). The conversion pulls the encoders out into
SAEs, one per distinct encoder (same config and same tensors), and points the heads at them by name. Nothing is
written: re-save with `save_bundle` to get a format-2 folder.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import torch

from detector.errors import BundleCorruptError
from detector.sae import SAEConfig, SparseAutoencoder

# format-1 head tensor -> SAELens name; format-1 config fields that now belong to the SAE
_V1_TENSORS = {"w_enc": "W_enc", "b_enc": "b_enc", "b_dec": "b_dec", "threshold": "threshold"}
_V1_SAE_FIELDS = ("activation", "k", "apply_b_dec_to_input")


def _fingerprint(config: dict[str, Any], layer: int, tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256(repr((layer, *(config.get(f) for f in ("d_sae", *_V1_SAE_FIELDS)))).encode())
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].numpy().tobytes())
    return h.hexdigest()


def upgrade_v1(
    data: dict[str, Any], tensors: dict[str, torch.Tensor], where: str
) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, SparseAutoencoder]]:
    """(format-1 manifest, head tensors) -> (format-2 manifest, head tensors without encoders, SAEs by name)."""
    data = copy.deepcopy(data)
    heads = data.get("heads")
    if not isinstance(heads, list):
        raise BundleCorruptError(f"{where}: field heads must be a list")
    d_model = (data.get("host") or {}).get("d_model")
    out_tensors = dict(tensors)
    saes: dict[str, SparseAutoencoder] = {}
    by_print: dict[str, str] = {}
    for i, raw in enumerate(heads):
        if not isinstance(raw, dict) or raw.get("type") != "sae_feature" or not isinstance(raw.get("config"), dict):
            continue
        config = raw["config"]
        prefix = f"{config.get('name')}."
        try:
            encoder = {new: out_tensors.pop(prefix + old) for old, new in _V1_TENSORS.items()}
            layer = int(config["layer"])
            printed = _fingerprint(config, layer, encoder)
            if printed not in by_print:
                name = f"sae_l{layer}_{printed[:8]}"
                sae = SparseAutoencoder(SAEConfig(
                    name=name, layer=layer, d_in=int(d_model), d_sae=int(config["d_sae"]),
                    activation=config.get("activation", "topk"), k=int(config.get("k", 32)),
                    apply_b_dec_to_input=bool(config.get("apply_b_dec_to_input", True)),
                ))  # fmt: skip
                sae.load_state_dict(encoder)
                saes[name] = sae
                by_print[printed] = name
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise BundleCorruptError(
                f"{where} field heads[{i}]: a format-1 SAE head that cannot be converted ({type(exc).__name__}); "
                "retrain the bundle with this version"
            ) from None
        for field_name in _V1_SAE_FIELDS:
            config.pop(field_name, None)
        config["sae"] = by_print[printed]
    data["saes"] = [{"name": name, "files": {}} for name in saes]
    data["format_version"] = 2
    return data, out_tensors, saes
