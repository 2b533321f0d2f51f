"""heads: probes that read `Activations`. Importing this package registers every built-in head type."""

from detector.heads import attention, linear, mlp, sae
from detector.heads.attention import AttentionPoolConfig, AttentionPoolHead
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
    "AttentionPoolConfig",
    "AttentionPoolHead",
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
    "attention",
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
