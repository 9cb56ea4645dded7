"""The golden run: the shipped default weights on the demo clip, and its stored reference boxes.

``tests/test_golden.py`` compares a fresh run against ``tests/data/golden_bobot.json``;
``python tests/regenerate_golden.py`` rewrites that file, which new default weights (or new ``TrackerConfig``
defaults) require.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np

from tracker import SiamFCTracker, TrackerConfig
from tracker.shipped import CHECKOUT

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "demos" / "bobot.mp4"
FIRST_BOX = (74.0, 67.0, 39.0, 87.0)  # x, y, w, h of the juice box on the first frame (demos/run_demo.py)
REFERENCE = Path(__file__).resolve().parent / "data" / "golden_bobot.json"
WEIGHTS = CHECKOUT  # the repository's default weights, whatever the environment says


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def track_clip(weights: Path = WEIGHTS, backend: str = "torch", precision: str = "fp32") -> np.ndarray:
    """Rows ``x, y, w, h, score, found`` (boxes 0-based pixels) for every frame after the first, tracked on the CPU
    with one thread; by default by torch in fp32, the one configuration whose arithmetic is the same on every x86
    CPU (the reference run's)."""
    config = TrackerConfig(precision=precision, threads=1)
    tracker = SiamFCTracker(weights, backend=backend, device="cpu", config=config)
    capture = cv2.VideoCapture(str(CLIP))
    ok, frame = capture.read()
    assert ok, f"cannot read {CLIP}"
    tracker.init(frame, FIRST_BOX)
    rows = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        r = tracker.update(frame)
        rows.append([*r.box, r.score, float(r.found)])
    capture.release()
    return np.array(rows)
