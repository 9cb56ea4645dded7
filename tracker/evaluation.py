"""One-pass evaluation (OTB protocol) of a tracker on annotated sequences."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from .datasets import Sequence
from .metrics import summarise


def load_frames(seq: Sequence) -> list[np.ndarray]:
    """Decode every frame of a sequence (BGR uint8)."""
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in seq.frames]
    missing = [str(p) for p, f in zip(seq.frames, frames) if f is None]
    if missing:
        raise OSError(f"{seq.name}: cannot read {len(missing)} frame(s), first {missing[0]}")
    return frames


def run_sequence(tracker, seq: Sequence, frames: list[np.ndarray] | None = None) -> dict:
    """Track one sequence from its first frame with a visible target to the end.

    Returns predicted boxes (N, 4; NaN before the start), scores, found flags, update() seconds per frame, and
    the summary metrics over frames where the ground truth has a target.
    """
    frames = load_frames(seq) if frames is None else frames
    start = int(np.argmax(seq.visible))
    n = len(frames)
    boxes = np.full((n, 4), np.nan)
    scores = np.full(n, np.nan)
    found = np.zeros(n, bool)
    times = []
    tracker.init(frames[start], seq.boxes[start])
    boxes[start], scores[start], found[start] = seq.boxes[start], 1.0, True
    for i in range(start + 1, n):
        t0 = time.perf_counter()
        r = tracker.update(frames[i])
        times.append(time.perf_counter() - t0)
        boxes[i], scores[i], found[i] = r.box, r.score, r.found
    gt = seq.boxes.copy()
    gt[:start] = np.nan
    return {"boxes": boxes, "scores": scores, "found": found, "times": np.array(times), **summarise(boxes, gt)}


def evaluate(
    make_tracker: Callable[[], object], sequences: list[Sequence], frames: dict[str, list[np.ndarray]] | None = None
) -> dict:
    """Run a fresh tracker on each sequence; mean of per-sequence AUC and precision."""
    per_seq = {}
    for seq in sequences:
        per_seq[seq.name] = run_sequence(make_tracker(), seq, None if frames is None else frames[seq.name])
    keys = ("auc", "precision", "norm_precision", "mean_iou")
    overall = {k: float(np.mean([r[k] for r in per_seq.values()])) for k in keys}
    return {"overall": overall, "sequences": per_seq}
