"""Soak test: many ``update()`` calls on generated frames, watching memory and speed for drift.

A textured object circles over a textured background and leaves the view for 30 of every 300 frames, so the
lost-target search runs too; the tracker is re-initialised every ``--reinit`` updates. Every result is checked
(finite box inside the frame, size >= 1, score in [0, 1]). Reports resident memory (from /proc/self/statm) and
ms per update at the start and at the end. Exit status 1 if any result broke the contract.

    python tools/soak.py                     # 100,000 updates with hand-set weights (no training needed)
    python tools/soak.py --updates 2000      # smoke run
    python tools/soak.py --weights runs/w025/best.safetensors
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from tracker import SiamFCTracker, TrackerConfig
from tracker.config import ModelConfig
from tracker.model import SiamFC
from tracker.weights import save_weights

CYCLE, HIDDEN = 300, 30  # frames per lap of the object; the last HIDDEN of each lap it is out of view
HANDSET_FOUND_PSR = 3.3  # so that the hand-set weights report the object lost while it is out of view


def rss_mib() -> float:
    """Resident set size of this process in MiB (second field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Scene:
    """Frame ``i`` of an endless generated video, and the object's box in it (None while out of view)."""

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (height // 12, width // 12, 3), dtype=np.uint8)
        self.background = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) // 2 + 40
        self.object = cv2.resize(rng.integers(0, 256, (6, 7, 3), dtype=np.uint8), (42, 34))
        self.width, self.height = width, height

    def frame(self, i: int) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
        frame = self.background.copy()
        phase = i % CYCLE
        if phase >= CYCLE - HIDDEN:
            return frame, None
        angle = 2 * math.pi * phase / CYCLE
        h, w = self.object.shape[:2]
        x = int(self.width / 2 + self.width / 4 * math.cos(angle) - w / 2)
        y = int(self.height / 2 + self.height / 4 * math.sin(2 * angle) - h / 2)
        frame[y : y + h, x : x + w] = self.object
        return frame, (float(x), float(y), float(w), float(h))


def valid(result: object, width: int, height: int) -> bool:
    x, y, w, h = result.box
    finite = all(math.isfinite(v) for v in (x, y, w, h, result.score))
    inside = finite and w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
    return inside and 0.0 <= result.score <= 1.0


def handset_weights(folder: str) -> Path:
    """Weights of the fixed hand-set backbone (as the tests use): meaningful features without training."""
    path = Path(folder) / "handset.safetensors"
    save_weights(SiamFC(ModelConfig(backbone="handset", metric="cosine", out_scale=1.5)), path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--weights", default=None, help="weights file (default: hand-set weights)")
    parser.add_argument("--size", default="320x240", help="frame WIDTHxHEIGHT")
    parser.add_argument("--reinit", type=int, default=5000, help="re-initialise every this many updates")
    parser.add_argument("--window", type=int, default=500, help="updates averaged for the start/end timings")
    parser.add_argument("--found-psr", type=float, default=None,
                        help="TrackerConfig.found_psr (default: 3.3 with the hand-set weights, which match less "
                        "sharply than trained ones (tests/test_robust.py), else the config's own)")  # fmt: skip
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    found_psr = args.found_psr
    if found_psr is None and not args.weights:
        found_psr = HANDSET_FOUND_PSR
    config = TrackerConfig() if found_psr is None else TrackerConfig(found_psr=found_psr)

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or handset_weights(tmp)
        tracker = SiamFCTracker(weights, backend="torch", device="cpu", config=config)
        scene = Scene(width, height)
        print(f"{args.updates} updates on {width}x{height} frames, {tracker.backend_name}, weights {weights}")
        times, bad, found, report = np.zeros(args.updates), 0, 0, max(1, args.updates // 10)
        rss_first, rss_start = rss_mib(), None
        frame_index = 0
        for n in range(args.updates):
            if n % args.reinit == 0:
                frame_index -= frame_index % CYCLE  # the start of a lap: the object is in view
                frame, box = scene.frame(frame_index)
                tracker.init(frame, box)
            frame_index += 1
            frame, _ = scene.frame(frame_index)
            t0 = time.perf_counter()
            result = tracker.update(frame)
            times[n] = time.perf_counter() - t0
            bad += not valid(result, width, height)
            found += result.found
            if n == min(args.window, args.updates - 1):
                rss_start = rss_mib()  # after warm-up: allocator pools and kernel caches are in place
            if (n + 1) % report == 0:
                ms = 1000 * times[n + 1 - report : n + 1].mean()
                print(f"{n + 1:>8} updates  {ms:6.1f} ms/update  RSS {rss_mib():7.1f} MiB  found {found / (n + 1):.2f}",
                      flush=True)  # fmt: skip
    k = min(args.window, args.updates // 2) or 1
    start_ms, end_ms = 1000 * np.median(times[:k]), 1000 * np.median(times[-k:])
    print(f"ms/update (median of {k}): start {start_ms:.1f}, end {end_ms:.1f} ({end_ms / start_ms:.2f}x)")
    rss_end = rss_mib()
    print(f"RSS: start {rss_first:.1f} MiB, after {args.window} updates {rss_start:.1f} MiB, end {rss_end:.1f} MiB "
          f"({rss_end - rss_start:+.1f} MiB since warm-up)")  # fmt: skip
    print(f"results breaking the contract: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
