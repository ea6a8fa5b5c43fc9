"""What the CPU is, read from /proc/cpuinfo (Linux): its model name and feature flags, which decide the CPU paths
(AVX-512 VNNI for INT8, AVX-512 BF16 or AMX for bf16)."""

from __future__ import annotations

from pathlib import Path


def _cpuinfo_field(name: str) -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    line = next((line for line in text.splitlines() if line.split(":")[0].strip() == name), None)
    return None if line is None else line.partition(":")[2].strip()


def cpu_flags() -> set[str]:
    """The CPU's feature flags; empty where they cannot be read."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_model() -> str:
    """The CPU's model name, or 'unknown CPU'."""
    return _cpuinfo_field("model name") or "unknown CPU"


def int8_dot_products() -> bool:
    """Whether the CPU multiplies INT8 without 16-bit saturation: VNNI (AVX-512 or AVX) or AMX. True where the flags
    cannot be read (nothing to go on: the fast path)."""
    flags = cpu_flags()
    return not flags or bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
