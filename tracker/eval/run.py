"""One-pass evaluation (OTB protocol) of a tracker on annotated sequences.

A tracker here is anything with ``init(frame, box)`` and ``update(frame)`` returning an object with ``box``
(x, y, w, h, 0-based pixels), ``score`` and ``found``: :class:`tracker.SiamFCTracker` or a
:mod:`tracker.peers` adapter.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from ..datasets import Sequence
from .metrics import curves, failure, pooled_presence, presence, summarise

BOX_METRICS = ("auc", "precision", "norm_precision", "mean_iou")


def load_frames(seq: Sequence) -> list[np.ndarray]:
    """Decode every frame of a sequence (BGR uint8)."""
    frames = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in seq.frames]
    missing = [str(p) for p, f in zip(seq.frames, frames, strict=True) if f is None]
    if missing:
        raise OSError(f"{seq.name}: cannot read {len(missing)} frame(s), first {missing[0]}")
    return frames


def on_one_canvas(
    frames: list[np.ndarray], boxes: np.ndarray, motion: float = 0.0, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames of one size, and their boxes (N, 4; x, y, w, h, 0-based pixels). A sequence whose images differ
    in size (regions cut around the target, as in some training sets) is laid out on one canvas of the largest
    height and width, each image centred on its own mean colour and its box moved with it; a video (one size)
    comes back as it is.

    Cut around the target, such a sequence shows it in about the same place in every frame, which no video does
    (and which flatters a strong motion prior). ``motion`` > 0 moves the images over a canvas twice that size
    instead, as a camera would (:func:`canvas_path`: ``motion`` pixels is the spread of the per-frame change of
    velocity, ``seed`` draws the path); the first image stays centred."""
    shapes = {f.shape[:2] for f in frames}
    if len(shapes) <= 1:
        return frames, boxes
    height, width = max(h for h, _ in shapes), max(w for _, w in shapes)
    margin = np.array([width, height]) // 2 if motion > 0 else np.zeros(2, int)
    path = canvas_path(len(frames), motion, margin, seed)
    height, width = height + 2 * margin[1], width + 2 * margin[0]
    placed, moved = [], boxes.astype(np.float64)
    for i, f in enumerate(frames):
        f = cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f
        h, w = f.shape[:2]
        ox, oy = (width - w) // 2 + path[i, 0], (height - h) // 2 + path[i, 1]
        canvas = np.empty((height, width, 3), np.uint8)
        canvas[:] = f.reshape(-1, 3).mean(0).astype(np.uint8)
        canvas[oy : oy + h, ox : ox + w] = f
        placed.append(canvas)
        if i < len(moved):
            moved[i, :2] += (ox, oy)
    return placed, moved


def canvas_path(n: int, motion: float, margin: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) integer offsets (x, y pixels) from the canvas's centre: a camera's smooth drift, the velocity an
    AR(1) process (0.9 of the last frame's plus a normal step of spread ``motion``) and the position reflected
    at +-``margin``; all zeros when ``motion`` is 0. The first offset is 0."""
    path = np.zeros((n, 2))
    if motion <= 0:
        return path.astype(int)
    rng = np.random.default_rng(seed)
    position, velocity = np.zeros(2), np.zeros(2)
    for i in range(1, n):
        velocity = 0.9 * velocity + rng.normal(0.0, motion, 2)
        position = position + velocity
        for k in range(2):  # reflect at the margin, turning the velocity round
            if abs(position[k]) > margin[k]:
                position[k] = np.sign(position[k]) * (2 * margin[k] - abs(position[k]))
                velocity[k] = -velocity[k]
        path[i] = np.clip(position, -margin, margin)
    return np.round(path).astype(int)


def temporal_runs(seq: Sequence, n: int) -> list[Sequence]:
    """OTB's temporal robustness evaluation (TRE): ``n`` runs of ``seq``, the k-th (k = 0 ... n-1) starting at
    the first frame with a visible target at or after k/n of its length and tracking to the end, named
    ``<name>@<start frame>`` (0-based); starts that coincide or have no visible frame left are dropped. One
    run from the start decides many a sequence by a few frames (a distractor taken or not); several starts
    measure the same tracker over more of those moments. ``n`` = 1 gives ``[seq]``."""
    if n <= 1:
        return [seq]
    visible = seq.visible
    starts = []
    for k in range(n):
        after = np.flatnonzero(visible[k * len(seq) // n : len(seq) - 1])  # a run tracks at least one frame
        if len(after):
            starts.append(k * len(seq) // n + int(after[0]))
    return [Sequence(f"{seq.name}@{s}", seq.frames[s:], seq.boxes[s:]) for s in dict.fromkeys(starts)]


def run_sequence(
    tracker, seq: Sequence, frames: list[np.ndarray] | None = None, progress: Callable[[], None] | None = None
) -> dict:
    """Track one sequence from its first frame with a visible target to the end.

    Returns predicted boxes (N, 4; NaN before the start), scores, found flags, update() seconds per frame
    (only the update() call is timed), the summary metrics and curves over frames where the ground truth has
    a target, and :func:`~tracker.metrics.presence` over the tracked frames. ``progress`` is called once a frame.
    Images of different sizes are tracked on one canvas (:func:`on_one_canvas`), and boxes are in its pixels.
    """
    frames = load_frames(seq) if frames is None else frames
    frames, truth = on_one_canvas(frames, seq.boxes[: len(frames)])
    n = len(frames)
    visible = seq.visible[:n]
    if not visible.any():
        raise ValueError(f"{seq.name}: the target is never visible; nothing to initialise on")
    start = int(np.argmax(visible))
    boxes = np.full((n, 4), np.nan)
    scores = np.full(n, np.nan)
    found = np.zeros(n, bool)
    times = []
    tracker.init(frames[start], truth[start])
    boxes[start], scores[start], found[start] = truth[start], 1.0, True
    if progress is not None:
        progress()
    for i in range(start + 1, n):
        t0 = time.perf_counter()
        r = tracker.update(frames[i])
        times.append(time.perf_counter() - t0)
        boxes[i], scores[i], found[i] = r.box, r.score, r.found
        if progress is not None:
            progress()
    gt = truth[:n].copy()
    gt[:start] = np.nan
    times = np.array(times)
    return {
        "start": start,
        "boxes": boxes,
        "scores": scores,
        "found": found,
        "times": times,
        "fps": 1.0 / float(np.median(times)) if len(times) else None,
        "curves": curves(boxes, gt),
        **(summary := summarise(boxes, gt)),
        **failure(boxes[start:], gt[start:], summary["auc"]),
        # the init frame is given, not found, so presence counts only the frames update() answered
        **presence(found[start + 1 :], visible[start + 1 :]),
    }


class LockstepRun(NamedTuple):
    """What :func:`run_lockstep` returns for K trackers over the N frames after the init frame."""

    start: int  # index of the init frame: the first with a visible target
    found: np.ndarray  # (K, N) bool
    boxes: np.ndarray  # (K, N, 4) x, y, w, h, 0-based pixels
    gt: np.ndarray  # (N, 4) ground truth of the same frames; NaN rows where the target is absent


def run_lockstep(
    seq: Sequence,
    trackers: list,
    max_frames: int | None = None,
    progress: Callable[[], None] | None = None,
    motion: float = 0.0,
) -> LockstepRun:
    """Run K trackers side by side over ``seq`` from its first frame with a visible target, each frame read
    once and given to every tracker in turn, so sweeping K configurations costs one decode per frame and no
    frame is kept after its update (memory does not grow with the sequence).

    A sequence whose images differ in size (regions cut around the target) is tracked on one canvas, as
    :func:`run_sequence` tracks it: its frames are then read once more and kept, and boxes (the ground truth's
    too) are in the canvas's pixels, the images moving over it by ``motion`` (:func:`on_one_canvas`; the path
    drawn from the sequence's name). ``max_frames`` caps the update() frames after the init frame (None: to the
    end); ``progress`` is called once a frame, the init frame included. Raises ValueError if the target is never
    visible, OSError for an unreadable frame.
    """
    if not seq.visible.any():
        raise ValueError(f"{seq.name}: the target is never visible; nothing to initialise on")
    start = int(np.argmax(seq.visible))
    paths = seq.frames[start : None if max_frames is None else start + max_frames + 1]
    truth = seq.boxes[start : start + len(paths)]
    first = _read(paths[0])
    frames = (_read(path) for path in paths[1:])
    try:
        found, boxes = _lockstep(trackers, first, truth[0], frames, len(paths) - 1, progress)
    except _SizeChanged:
        placed, truth = on_one_canvas([_read(path) for path in paths], truth, motion, zlib.crc32(seq.name.encode()))
        found, boxes = _lockstep(trackers, placed[0], truth[0], iter(placed[1:]), len(paths) - 1, progress)
    return LockstepRun(start, found, boxes, truth[1:])


class _SizeChanged(Exception):
    """A frame of another size than the first: the sequence is tracked on one canvas instead."""


def _lockstep(
    trackers: list,
    first: np.ndarray,
    box: np.ndarray,
    frames: Iterator[np.ndarray],
    n: int,
    progress: Callable[[], None] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Found flags (K, n) and boxes (K, n, 4) of ``trackers`` started on ``first`` at ``box`` and updated on the
    ``n`` ``frames``; raises _SizeChanged at the first frame whose size differs from the first's, before any
    tracker sees it (progress is then counted again from the start)."""
    for t in trackers:
        t.init(first, box)
    if progress is not None:
        progress()
    found = np.zeros((len(trackers), n), bool)
    boxes = np.zeros((len(trackers), n, 4))
    for i, frame in enumerate(frames):
        if frame.shape != first.shape:
            raise _SizeChanged
        for k, t in enumerate(trackers):
            r = t.update(frame)
            found[k, i], boxes[k, i] = r.found, r.box
        if progress is not None:
            progress()
    return found, boxes


def _read(path: Path) -> np.ndarray:
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise OSError(f"cannot read frame {path}")
    return frame


def overall(per_seq: dict[str, dict]) -> dict:
    """Aggregate :func:`run_sequence` results: box metrics and curves are means over sequences (OTB style),
    presence is pooled over frames, and ``fps`` is 1 / the median of every update() time."""
    rows = list(per_seq.values())
    out = {k: float(np.mean([r[k] for r in rows])) for k in BOX_METRICS}
    times = np.concatenate([r["times"] for r in rows]) if rows else np.array([])
    out["fps"] = 1.0 / float(np.median(times)) if len(times) else None
    out["frames"] = int(sum(r["frames"] for r in rows))
    out["failed"] = int(sum(r["failed"] for r in rows))  # sequences failed (metrics.failure)
    out["updates"] = int(len(times))
    out.update(pooled_presence(rows))
    out["curves"] = {k: np.mean([r["curves"][k] for r in rows], axis=0) for k in rows[0]["curves"]}
    return out


def evaluate(
    make_tracker: Callable[[], object], sequences: list[Sequence], frames: dict[str, list[np.ndarray]] | None = None
) -> dict:
    """Run a fresh tracker on each sequence; ``overall`` holds the per-sequence means (see :func:`overall`)."""
    per_seq = {}
    for seq in sequences:
        per_seq[seq.name] = run_sequence(make_tracker(), seq, None if frames is None else frames[seq.name])
    return {"overall": overall(per_seq), "sequences": per_seq}
