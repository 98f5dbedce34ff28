"""What this process may use of the machine's CPU (its own module, so that any detector module can ask without
importing the backends)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["int8_kernels_exact", "usable_cores"]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow), not
    the machine's count."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # platforms without sched_getaffinity
        return os.cpu_count() or 1


#: x86 CPU flags (``/proc/cpuinfo``) of the instructions that multiply 8-bit integers into 32-bit sums directly.
_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def int8_kernels_exact(cpuinfo: str | None = None) -> bool:
    """Whether ONNX Runtime's int8 kernels compute our int8 model's sums exactly on this CPU.

    Why: on x86-64 without VNNI (AVX2 or AVX-512 alone: many AMD EPYC and older Xeon servers), ONNX Runtime's
    u8×s8 kernels multiply pairs of bytes with ``vpmaddubsw``, which saturates each pair's sum at 32,767 (ONNX
    Runtime's quantization documentation says so). Our int8 model's stem takes raw pixels (0–255) against full-range
    weights, where pairs overflow: measured on an AVX2-only EPYC, 29 % of the stem's outputs differ from an exact
    machine's, and a tower camera's hazy hillside frames get a smoke event the exact int8 and the fp32 model do not.
    There the fp32 model is used instead (:func:`detector.backends.load_detector`), unless the int8 variant has
    7-bit weights (``ModelEntry.weight_bits``: pairs then stay under 32,767, exact on every CPU;
    ``tests/detector/test_int8_without_vnni.py`` shows both on an emulated Haswell against an exact emulated
    Nehalem).

    ``cpuinfo``: the text of ``/proc/cpuinfo`` (tests); read from the machine when None. Not x86, or nothing to
    read (another OS): exact (ARM's int8 dot products do not saturate).
    """
    import platform

    if cpuinfo is None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
            return True
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
        except OSError:
            return True
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return bool(_VNNI_FLAGS & set(value.split()))
    return True
