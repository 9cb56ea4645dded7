"""Absence benchmark: does a tracker say when the target is out of view, and find it again when it returns?

Two kinds of absence are scored:

- natural: every frame annotated absent (a ``nan`` row) in a sequence;
- spliced: in each sequence, after the tracker has followed the target for at least ``lead`` frames, ``K`` frames
  of a *different* sequence, resized to the frame size, are inserted, so the target is certainly out of view;
  then the original sequence resumes. Where and what is spliced is drawn from a seed (per sequence, from the seed
  and the sequence's name, so a sequence gets the same splices whichever others are run with it).

Per tracker, over every frame after the init frame: the AUROC of ``score`` separating visible from absent frames;
the share of absent frames reported lost (``found`` False) and of visible frames reported lost; the share of
visible frames reported found with the box off the target (IoU < ``OFF_IOU``: a wrong answer given as right);
after each return
of the target (the first visible frame after an absence), the frames until the box again has IoU > 0.5 with the
ground truth (0: on the return frame itself) and the share of returns re-acquired within ``REACQUIRE_WITHIN``
frames (delay < 10: on one of the first 10 frames from the return); the success AUC on visible frames.
"""

from __future__ import annotations

import argparse
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..datasets import Sequence
from ..errors import InputError
from .metrics import ious, success_auc

REACQUIRE_IOU = 0.5
REACQUIRE_WITHIN = 10  # frames
OFF_IOU = 0.1  # a box with less overlap with the target's is off it: a visible frame reported found there is wrong
LEAD = 20  # frames tracked before a splice, and between two splices
TAIL = REACQUIRE_WITHIN  # visible frames kept after a splice, to see the re-acquisition


@dataclass(frozen=True)
class Splice:
    """``frames`` frames of sequence ``donor`` from its frame ``start``, inserted before frame ``at``."""

    at: int
    donor: str
    start: int
    frames: int


@dataclass(frozen=True)
class Stream:
    """The frames a tracker sees, from its init frame on: ``(path, resize)`` each (resize: a spliced frame, to
    be resized to the stream's frame size), the ground truth (NaN rows where the target is absent) and which
    frames were spliced in."""

    name: str
    frames: list[tuple[Path, bool]]
    gt: np.ndarray
    spliced: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def add_splice_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The benchmark's splice options, with their defaults: ``--splices``, ``--splice-frames``, ``--seed``."""
    parser.add_argument("--splices", type=int, default=2, help="spliced absences per sequence (default 2)")
    parser.add_argument("--splice-frames", type=int, default=30, help="frames per spliced absence (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of where and what is spliced (default 0)")


def add_canvas_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--canvas``: :func:`benchmark`'s ``canvas``."""
    parser.add_argument(
        "--canvas", type=int, help="each sequence in the middle of an N x N grid of frames whose other tiles "
        "play other sequences (cut regions, e.g. the training split, become wide views with look-alikes about; "
        "default: no)",
    )  # fmt: skip


def describe_arguments(args: argparse.Namespace) -> str:
    """The streams' options of a run (:func:`add_splice_arguments`, :func:`add_canvas_argument`, ``--same-size``)
    as a command line's words, for its report."""
    words = f"--splices {args.splices} --splice-frames {args.splice_frames} --seed {args.seed}"
    return words + " --same-size" * args.same_size + ("" if args.canvas is None else f" --canvas {args.canvas}")


def plan_splices(sequences: list[Sequence], splices: int, frames: int, seed: int, lead: int = LEAD) -> dict:
    """Where to splice what, per sequence name: a list of :class:`Splice`, sorted by position.

    A splice goes before a visible frame at least ``lead`` frames after the sequence's first visible frame and
    after the previous splice, with at least :data:`TAIL` frames after it; a short sequence may get fewer than
    ``splices``. The donor is another sequence (frames from it wrap around when it is shorter than ``frames``).

    Raises:
        InputError: splices asked for with fewer than two sequences, or negative counts.
    """
    if splices < 0 or frames < 0:
        raise InputError(f"--splices and --splice-frames must be >= 0, got {splices} and {frames}")
    if splices == 0 or frames == 0:
        return {s.name: [] for s in sequences}
    if len(sequences) < 2:
        raise InputError("spliced absences need at least two sequences (frames come from a different one)")
    by_name = {s.name: s for s in sequences}
    plans = {}
    for seq in sequences:
        rng = np.random.default_rng([seed, zlib.crc32(seq.name.encode())])
        visible = seq.visible
        first = int(np.argmax(visible))
        lo, hi = first + lead, len(seq) - TAIL  # a splice goes before frame lo..hi
        count = min(splices, (hi - lo) // lead + 1) if hi >= lo else 0
        # ``count`` positions at least ``lead`` apart: sorted draws from a range shortened by the gaps, plus them
        draws = np.sort(rng.choice(hi - lo - (count - 1) * lead + 1, count, replace=False)) if count else []
        chosen: list[int] = []
        for k, d in enumerate(draws):
            at = max(lo + int(d) + k * lead, chosen[-1] + lead if chosen else lo)
            while at <= hi and not visible[at]:  # the target must be in view when the sequence resumes
                at += 1
            if at <= hi:
                chosen.append(at)
        donors = sorted(n for n in by_name if n != seq.name)
        plan = []
        for at in sorted(chosen):
            donor = donors[int(rng.integers(len(donors)))]
            start = int(rng.integers(max(1, len(by_name[donor]) - frames + 1)))
            plan.append(Splice(at, donor, start, frames))
        plans[seq.name] = plan
    return plans


def build_stream(seq: Sequence, plan: list[Splice], donors: dict[str, Sequence]) -> Stream:
    """The frames from ``seq``'s first visible frame to its end, with the spliced frames of ``plan`` inserted."""
    first = int(np.argmax(seq.visible))
    at = {s.at: s for s in plan}
    frames, gt, spliced = [], [], []
    for i in range(first, len(seq)):
        if i in at:
            s = at[i]
            donor = donors[s.donor].frames
            frames += [(donor[(s.start + j) % len(donor)], True) for j in range(s.frames)]
            gt += [np.full(4, np.nan)] * s.frames
            spliced += [True] * s.frames
        box = seq.boxes[i] if seq.visible[i] else np.full(4, np.nan)
        frames.append((seq.frames[i], False))
        gt.append(box)
        spliced.append(False)
    return Stream(seq.name, frames, np.array(gt, dtype=np.float64), np.array(spliced, bool))


def read_frame(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    """A BGR frame, resized to ``size`` (W, H) when given and different. Raises OSError when unreadable."""
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise OSError(f"cannot read frame {path}")
    if size is not None and (frame.shape[1], frame.shape[0]) != size:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return frame


class Canvas:
    """A sequence's frames as the middle tile of an ``n`` x ``n`` grid whose other tiles play other sequences (each
    from its own start, at the sequence's frame size): regions cut around the target become a small target in a
    wide view with other objects about it, as in whole frames. Spliced frames replace the middle tile only: the
    target is gone from its place, and the look-alikes about it stay."""

    def __init__(self, tiles: list[list[Path]], size: tuple[int, int]) -> None:
        self.n = math.isqrt(len(tiles) + 1)
        if self.n % 2 == 0 or self.n * self.n != len(tiles) + 1:
            raise InputError(f"a canvas needs n * n - 1 tiles for an odd n, got {len(tiles)}")
        self.tiles, self.inner = tiles, size
        self.offset = (size[0] * (self.n // 2), size[1] * (self.n // 2))

    def place(self, frame: np.ndarray, index: int) -> np.ndarray:
        """``frame`` (of the inner size) in the middle, the tiles at their ``index``-th frame about it."""
        (w, h), n = self.inner, self.n
        out = np.empty((h * n, w * n, 3), np.uint8)
        others = iter(self.tiles)
        for row in range(n):
            for col in range(n):
                middle = row == col == n // 2
                if middle:
                    tile = frame
                else:
                    paths = next(others)
                    tile = read_frame(paths[index % len(paths)], self.inner)
                out[row * h : (row + 1) * h, col * w : (col + 1) * w] = tile
        return out


def run_stream(
    stream: Stream,
    trackers: list,
    progress: Callable[[], None] | None = None,
    same_size: bool = False,
    canvas: list[list[Path]] | None = None,
) -> dict[str, np.ndarray]:
    """Run K trackers side by side over ``stream`` (each frame read once): init on its first frame, update() on
    the rest. Returns ``scores``, ``found`` and ``similarity`` (K, N-1; NaN where a tracker gives none: it does
    not verify), ``boxes`` (K, N-1, 4) and ``gt`` (N-1, 4), in the frames the trackers saw.

    ``same_size``: every frame resized to the first one's size, and its ground truth with it (for datasets whose
    frames vary in size within a sequence, such as regions cut around the target); otherwise a sequence's own
    frames must all have its first frame's size. ``canvas``: the other tiles' frames, every frame of the stream
    (spliced ones too) placed in the middle of a :class:`Canvas`."""
    first = read_frame(stream.frames[0][0], None)
    size = (first.shape[1], first.shape[0])
    wide = None if canvas is None else Canvas(canvas, size)
    shift = np.zeros(4) if wide is None else np.array([*wide.offset, 0.0, 0.0])
    if wide is not None:
        first = wide.place(first, 0)
    for t in trackers:
        t.init(first, stream.gt[0] + shift)
    n = len(stream) - 1
    scores, found, boxes = (
        np.zeros((len(trackers), n)),
        np.zeros((len(trackers), n), bool),
        np.zeros((len(trackers), n, 4)),
    )
    similarity = np.full((len(trackers), n), np.nan)
    gt = stream.gt[1:].copy()
    for i, (path, resize) in enumerate(stream.frames[1:]):
        frame = read_frame(path, None)
        if (resize or same_size) and frame.shape[:2] != (size[1], size[0]):
            sx, sy = size[0] / frame.shape[1], size[1] / frame.shape[0]
            gt[i] *= (sx, sy, sx, sy)  # NaN rows of spliced frames stay NaN
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if frame.shape[:2] != (size[1], size[0]):
            raise InputError(
                f"{stream.name}: frame {path} is {frame.shape[1]}x{frame.shape[0]}, not {size[0]}x{size[1]} "
                "(frames that vary in size: --same-size)"
            )
        if wide is not None:
            frame = wide.place(frame, i + 1)
            gt[i] += shift
        for k, t in enumerate(trackers):
            r = t.update(frame)
            scores[k, i], found[k, i], boxes[k, i] = r.score, r.found, r.box
            if getattr(r, "similarity", None) is not None:
                similarity[k, i] = r.similarity
        if progress is not None:
            progress()
    return {"scores": scores, "found": found, "similarity": similarity, "boxes": boxes, "gt": gt}


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of ``scores`` ranking positives above negatives (ties count half); None when
    either class is empty. Equals the probability that a random positive outscores a random negative."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    p, n = int(positive.sum()), int((~positive).sum())
    if p == 0 or n == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mid_ranks = ends - (counts - 1) / 2  # 1-based mean rank of each group of tied scores
    ranks = mid_ranks[inverse]
    return float((ranks[positive].sum() - p * (p + 1) / 2) / (p * n))


def returns(visible: np.ndarray) -> list[int]:
    """Indices of the frames where the target comes back: visible, after an absent frame."""
    visible = np.asarray(visible, bool)
    return [i for i in range(1, len(visible)) if visible[i] and not visible[i - 1]]


def reacquisition(iou: np.ndarray, visible: np.ndarray) -> list[int | None]:
    """For each return (:func:`returns`), the frames until IoU > 0.5 again (0: on the return frame); None when
    the target leaves again or the stream ends first."""
    delays: list[int | None] = []
    for r in returns(visible):
        delay = None
        for j in range(r, len(visible)):
            if not visible[j]:
                break
            if iou[j] > REACQUIRE_IOU:
                delay = j - r
                break
        delays.append(delay)
    return delays


def stream_metrics(scores: np.ndarray, found: np.ndarray, boxes: np.ndarray, gt: np.ndarray) -> dict:
    """One tracker's per-frame answers on one stream -> what :func:`pool` needs (counts, delays, AUC)."""
    visible = np.isfinite(gt).all(1)
    iou = np.zeros(len(gt))
    iou[visible] = ious(boxes[visible], gt[visible])
    return {
        "scores": np.asarray(scores, np.float64),
        "visible": visible,
        "absent_frames": int((~visible).sum()),
        "absent_lost": int((~found & ~visible).sum()),
        "visible_frames": int(visible.sum()),
        "visible_lost": int((~found & visible).sum()),
        "visible_found_off": int((found & visible & (iou < OFF_IOU)).sum()),
        "delays": reacquisition(iou, visible),
        "auc": success_auc(iou[visible]),
    }


def pool(rows: list[dict]) -> dict:
    """Pool :func:`stream_metrics` over streams: frame counts and scores pooled, success AUC averaged over
    streams (OTB style)."""
    absent = sum(r["absent_frames"] for r in rows)
    visible = sum(r["visible_frames"] for r in rows)
    delays = [d for r in rows for d in r["delays"]]
    done = [d for d in delays if d is not None]
    within = sum(d < REACQUIRE_WITHIN for d in done)
    return {
        "auroc": auroc(np.concatenate([r["scores"] for r in rows]), np.concatenate([r["visible"] for r in rows])),
        "absent_frames": absent,
        "absent_lost": sum(r["absent_lost"] for r in rows) / absent if absent else None,
        "visible_frames": visible,
        "visible_lost": sum(r["visible_lost"] for r in rows) / visible if visible else None,
        "visible_found_off": sum(r["visible_found_off"] for r in rows) / visible if visible else None,
        "returns": len(delays),
        "reacquired_10": within / len(delays) if delays else None,
        "median_delay": float(np.median(done)) if done else None,
        "never_reacquired": len(delays) - len(done),
        "auc": float(np.mean([r["auc"] for r in rows])) if rows else 0.0,
    }


def benchmark(
    factories: dict[str, Callable[[], object]],
    sequences: list[Sequence],
    splices: int,
    frames: int,
    seed: int,
    progress: Callable[[Stream], Callable[[], None] | None] | None = None,
    same_size: bool = False,
    canvas: int | None = None,
) -> dict:
    """Run every tracker (fresh from its factory per sequence, all in lockstep) over each sequence with its
    spliced absences; per tracker the pooled metrics (:func:`pool`) and each sequence's. ``progress(stream)``
    may return a callable called once a frame; ``same_size``: as for :func:`run_stream`; ``canvas``: each
    sequence in the middle of a ``canvas`` x ``canvas`` :class:`Canvas` whose other tiles play other sequences
    (drawn from the seed).

    Raises:
        InputError: a canvas that is not an odd number >= 3, or one asked for with fewer than two sequences.
    """
    if canvas is not None and (canvas < 3 or canvas % 2 == 0 or len(sequences) < 2):
        raise InputError(f"--canvas needs an odd number of tiles a side >= 3 and two sequences, got {canvas}")
    plans = plan_splices(sequences, splices, frames, seed)
    donors = {s.name: s for s in sequences}
    names = list(factories)
    rows: dict[str, dict[str, dict]] = {name: {} for name in names}
    counts = {}
    for seq in sequences:
        stream = build_stream(seq, plans[seq.name], donors)
        trackers = [factories[n]() for n in names]
        wide = None if canvas is None else canvas_tiles(seq.name, sequences, canvas, seed)
        run = run_stream(stream, trackers, progress(stream) if progress else None, same_size, wide)
        for k, name in enumerate(names):
            rows[name][seq.name] = stream_metrics(run["scores"][k], run["found"][k], run["boxes"][k], run["gt"])
        gt_absent = ~np.isfinite(run["gt"]).all(1)
        counts[seq.name] = {"updates": len(run["gt"]), "spliced": int(stream.spliced.sum()),
                            "natural_absent": int((gt_absent & ~stream.spliced[1:]).sum())}  # fmt: skip
    per_seq = {k: {x: v for x, v in m.items() if x not in ("scores", "visible")} for k, m in rows.items()}
    return {
        "splices": {n: [vars(s) for s in p] for n, p in plans.items()},
        "streams": counts,
        "trackers": {name: {"overall": pool(list(rows[name].values())), "sequences": per_seq[name]} for name in names},
    }


def canvas_tiles(name: str, sequences: list[Sequence], n: int, seed: int) -> list[list[Path]]:
    """The frames of the ``n * n - 1`` other tiles of ``name``'s :class:`Canvas`: other sequences (than ``name``)
    from their own starts, drawn from the seed and the name."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), 1])
    others = sorted((s for s in sequences if s.name != name), key=lambda s: s.name)
    tiles = []
    for _ in range(n * n - 1):
        other = others[int(rng.integers(len(others)))]
        start = int(rng.integers(len(other.frames)))
        tiles.append(other.frames[start:] + other.frames[:start])
    return tiles


def percent(v: float | None) -> str:
    """A share as a percentage with one decimal, or "n/a"."""
    return "n/a" if v is None else f"{100 * v:.1f}%"


def markdown(results: dict) -> str:
    """The side-by-side table and how it was measured."""
    lines = [
        "| tracker | AUROC of score | absent frames reported lost | visible frames reported lost "
        f"| visible frames reported found, box off the target | returns re-acquired within {REACQUIRE_WITHIN} "
        "| median frames to re-acquire | success AUC (visible) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results["trackers"].items():
        o = r["overall"]
        au = "n/a" if o["auroc"] is None else f"{o['auroc']:.3f}"
        med = "n/a" if o["median_delay"] is None else f"{o['median_delay']:g}"
        lines.append(
            f"| {name} | {au} | {percent(o['absent_lost'])} | {percent(o['visible_lost'])} "
            f"| {percent(o['visible_found_off'])} | {percent(o['reacquired_10'])} of {o['returns']} | {med} "
            f"| {o['auc']:.3f} |"
        )
    o = next(iter(results["trackers"].values()))["overall"]
    streams = results["streams"].values()
    spliced, natural = sum(s["spliced"] for s in streams), sum(s["natural_absent"] for s in streams)
    lines += [
        "",
        f"{len(results['streams'])} sequences, {o['visible_frames']} visible and {o['absent_frames']} absent frames "
        f"after the init frame ({natural} annotated absent, {spliced} spliced in: {results['splice_args']}). "
        f"Box off the target: IoU < {OFF_IOU} with it. "
        f"Re-acquired: IoU > {REACQUIRE_IOU} again; returns never re-acquired count as not within "
        f"{REACQUIRE_WITHIN}. Success AUC: mean over sequences, visible frames only.",
    ]
    return "\n".join(lines) + "\n"
