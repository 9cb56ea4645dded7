"""CPU speed of the backends: SiamFCTracker.update() ms per frame, printed as a Markdown table.

    python tools/bench_backends.py [--weights W] [--width 0.5] [--frames 200] [--warmup 20] [--threads 1,2]

Rows: torch fp32, torch bf16 (autocast + channels_last) and ONNX Runtime fp32, each at every thread count.
Frames are 640x480 synthetic (``tracker.scene``: a textured object drifting over a textured background), 3
scales per frame. Without ``--weights`` a random AlexNet of ``--width`` is timed (the network cost does not
depend on the weights) and its ONNX export goes to a temporary cache. ``found_threshold=0`` keeps every frame
on the tracking path (random weights would otherwise send the tracker into its costlier re-detection search).
Medians: run it on an idle machine, and quote ratios as much as absolute figures. ``python -m tracker.bench``
does the same with stages, busy processes and NanoTrack.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from tracker import SiamFCTracker, TrackerConfig
from tracker.config import ModelConfig
from tracker.machine import cpu_has_fast_bf16
from tracker.model import SiamFC
from tracker.scene import synthetic_frames
from tracker.weights import save_weights

ROWS = (("torch fp32", "torch", "fp32"), ("torch bf16", "torch", "bf16"), ("onnxruntime fp32", "onnx", "fp32"))


def make_tracker(weights: Path, backend: str, precision: str, threads: int) -> SiamFCTracker:
    """A CPU tracker whose backend runs at ``precision`` (``TrackerConfig.precision``)."""
    config = TrackerConfig(found_threshold=0.0, threads=threads, precision=precision)
    return SiamFCTracker(weights, backend=backend, device="cpu", config=config)


def time_updates(t: SiamFCTracker, frames: list[np.ndarray], box: tuple, warmup: int) -> list[float]:
    """ms of each update() after ``warmup`` untimed ones."""
    t.init(frames[0], box)
    times = []
    for i, frame in enumerate(frames[1:]):
        start = time.perf_counter()
        t.update(frame)
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    return times


def main(argv: list[str] | None = None) -> None:
    """Print the table (and what it ran on)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, help="weights file (default: random AlexNet of --width)")
    p.add_argument("--width", type=float, default=0.5, help="AlexNet width of the random weights (default 0.5)")
    p.add_argument("--frames", type=int, default=200, help="timed frames per row (default 200)")
    p.add_argument("--warmup", type=int, default=20, help="untimed frames first (default 20)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            torch.manual_seed(0)
            weights = Path(tmp) / "random.safetensors"
            save_weights(SiamFC(ModelConfig(width=args.width)), weights)
            os.environ["SIAMTRACK_CACHE"] = tmp  # a random model's export is not worth keeping
        frames, boxes = synthetic_frames(args.frames + args.warmup + 1, (640, 480))
        box = tuple(boxes[0, 0])
        cpu = platform.processor() or platform.machine()
        print(f"{cpu}, {os.cpu_count()} logical CPUs, native bf16: {cpu_has_fast_bf16()}, torch {torch.__version__}")
        print(f"weights: {args.weights or f'random AlexNet width {args.width}'}; 640x480, 3 scales, "
              f"{args.frames} frames after {args.warmup} warm-up\n")  # fmt: skip
        print("| backend | threads | update() ms, median | p90 | fps | reported as |")
        print("|---|---|---|---|---|---|")
        for threads in (int(v) for v in args.threads.split(",")):
            cv2.setNumThreads(threads)  # the crops run in OpenCV: same budget as the network
            for label, backend, precision in ROWS:
                t = make_tracker(weights, backend, precision, threads)
                ms = time_updates(t, frames, box, args.warmup)
                median, p90 = statistics.median(ms), float(np.percentile(ms, 90))
                print(f"| {label} | {threads} | {median:.1f} | {p90:.1f} | {1e3 / median:.0f} | {t.backend_name} |")


if __name__ == "__main__":
    main()
