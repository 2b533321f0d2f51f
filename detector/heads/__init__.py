"""heads: probes that read `Activations`. Importing this package registers every built-in head type."""

from detector.heads import linear, mlp, sae
from detector.heads.base import Head, HeadConfig
from detector.heads.linear import (
    SequenceLinearConfig,
    SequenceLinearHead,
    TokenLinearConfig,
    TokenLinearHead,
    WindowMaxConfig,
    WindowMaxHead,
)
from detector.heads.mlp import TokenMLPConfig, TokenMLPHead
from detector.heads.registry import build_head, config_from_dict, head_class, head_level, head_types, register_head
from detector.heads.sae import SAEFeatureConfig, SAEFeatureHead

__all__ = [
    "Head",
    "HeadConfig",
    "SAEFeatureConfig",
    "SAEFeatureHead",
    "SequenceLinearConfig",
    "SequenceLinearHead",
    "TokenLinearConfig",
    "TokenLinearHead",
    "TokenMLPConfig",
    "TokenMLPHead",
    "WindowMaxConfig",
    "WindowMaxHead",
    "build_head",
    "config_from_dict",
    "head_class",
    "head_level",
    "head_types",
    "linear",
    "mlp",
    "register_head",
    "sae",
]
