"""What this CPU offers int8 inference: the speed of the int8 variant depends on it more than on anything we control.

onnxruntime's uint8 x int8 MatMul (MLAS) multiplies with VNNI's VPDPBUSD where the CPU has it (AVX-512 VNNI or
AVX-VNNI), else with AVX2's VPMADDUBSW + VPMADDWD, which is markedly slower per MatMul (measured figures:
CHANGELOG.md, int8 variants).
"""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# Strongest first: the first flag present names the int8 path (Linux /proc/cpuinfo flag names).
_INT8_PATHS = (
    ("amx_int8", "AMX-INT8"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx2", "AVX2 without VNNI"),
    ("i8mm", "Arm I8MM"),
    ("asimddp", "Arm dot product"),
)


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The first processor's feature flags (empty where /proc/cpuinfo is absent or unreadable: not Linux/x86)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def int8_path(flags: frozenset[str] | None = None) -> str:
    """The int8 dot-product instructions this CPU has, by name ("AVX-512 VNNI", "AVX2 without VNNI", ...), or
    the machine type when no known flag is found (e.g. "arm64 (int8 path unknown)")."""
    flags = cpu_flags() if flags is None else flags
    for flag, name in _INT8_PATHS:
        if flag in flags:
            return name
    return f"{platform.machine() or 'cpu'} (int8 path unknown)"
