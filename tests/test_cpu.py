"""detector.cpu: which int8 dot-product path a CPU has, read from /proc/cpuinfo-style text."""

from __future__ import annotations

import pytest

from probeguard.detector.cpu import cpu_flags, int8_path


@pytest.mark.parametrize(
    ("flags", "path"),
    [
        ({"sse4_2", "avx", "avx2", "fma"}, "AVX2 without VNNI"),
        ({"avx2", "avx512f", "avx512_vnni"}, "AVX-512 VNNI"),
        ({"avx2", "avx_vnni"}, "AVX-VNNI"),
        ({"avx2", "avx512_vnni", "amx_int8"}, "AMX-INT8"),
        ({"fp", "asimd", "asimddp"}, "Arm dot product"),
        ({"fp", "asimd", "asimddp", "i8mm"}, "Arm I8MM"),
    ],
)
def test_int8_path_names_the_strongest_instructions(flags, path):
    assert int8_path(frozenset(flags)) == path


def test_unknown_flags_name_the_machine():
    assert int8_path(frozenset({"sse2"})).endswith("(int8 path unknown)")


def test_cpu_flags_reads_the_first_processor_and_tolerates_no_file(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx2 avx512_vnni\n\nprocessor\t: 1\n"
                    "flags\t\t: fpu\n")  # fmt: skip
    assert cpu_flags(info) == frozenset({"fpu", "avx2", "avx512_vnni"})
    info.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")  # Arm spells it Features
    assert int8_path(cpu_flags(info)) == "Arm dot product"
    assert cpu_flags(tmp_path / "absent") == frozenset()
