"""heads: probes that read `Activations`. Importing this package registers every built-in head type."""

from probeguard.detector.heads import attention, linear, mlp, sae
from probeguard.detector.heads.attention import AttentionPoolConfig, AttentionPoolHead
from probeguard.detector.heads.base import Head, HeadConfig
from probeguard.detector.heads.linear import (
    SequenceLinearConfig,
    SequenceLinearHead,
    TokenLinearConfig,
    TokenLinearHead,
    WindowMaxConfig,
    WindowMaxHead,
)
from probeguard.detector.heads.mlp import TokenMLPConfig, TokenMLPHead
from probeguard.detector.heads.registry import (
    build_head,
    config_from_dict,
    head_class,
    head_level,
    head_types,
    register_head,
)
from probeguard.detector.heads.sae import SAEFeatureConfig, SAEFeatureHead

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
