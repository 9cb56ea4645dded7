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
