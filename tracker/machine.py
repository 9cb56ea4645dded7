"""The machine a measurement ran on, and one thread budget for every library that times work."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import cv2


def machine_info() -> dict[str, object]:
    """CPU model (from /proc/cpuinfo where there is one), logical CPUs, library versions and today's date."""
    import torch

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "opencv": cv2.__version__,
        "date": datetime.date.today().isoformat(),
    }


def set_threads(threads: int) -> None:
    """Use ``threads`` threads in both PyTorch and OpenCV, so every tracker gets the same budget."""
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 instructions (AVX512-BF16 or AMX-BF16) that oneDNN can use.

    oneDNN also "supports" bf16 on plain AVX-512 by emulating it, which took 4x the time of fp32 here (105
    against 27 ms of CPU per update), so the CPU flags decide where Linux lists them.
    """
    import torch

    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):
        return False
    return cpu_flags_native_bf16()


def cpu_flags_native_bf16() -> bool:
    """Whether the CPU flags name native bf16 (AVX512-BF16 or AMX-BF16); True where Linux lists no flags."""
    flags = cpu_flags()
    return flags is None or bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_flags_vnni() -> bool:
    """Whether the CPU flags name VNNI (AVX512-VNNI, AVX-VNNI or AMX-INT8): int8 dot products that add uint8 x
    int8 products in 32 bits, so 8-bit weights cannot saturate; False where Linux lists no flags."""
    flags = cpu_flags()
    return flags is not None and bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, or None where there is no such file (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def default_precision(device_type: str) -> str:
    """The torch precision ``auto`` means on a device of ``device_type``: bf16 on CUDA and on CPUs with native
    bf16 (inference and training alike), fp32 elsewhere."""
    return "bf16" if device_type == "cuda" or cpu_has_fast_bf16() else "fp32"
