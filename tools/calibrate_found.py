"""Calibrate the ``found`` thresholds of TrackerConfig against frames annotated as target-absent.

For each pair (``found_threshold``, ``found_psr``) of a sweep, one tracker per pair runs every sequence from its
first visible frame (all trackers in lockstep, so each frame is decoded once). A frame with ``found`` False is a
detection of absence; against the absent marks of the ground truth (NaN rows) it is scored as

- precision: of the frames reported not found, the share annotated absent;
- recall: of the frames annotated absent, the share reported not found;
- lost-visible: of the frames with a visible target, the share reported not found (the price of a threshold);
- IoU: mean IoU on visible frames (holding the box while lost costs accuracy when the call is wrong).

Closed loop on purpose: ``found`` changes what the tracker does next (hold, widen, re-detect), so each pair is
judged by the run it produces. Usage (docs/ROBUSTNESS.md):

    python tools/calibrate_found.py --weights runs/w025/best.safetensors --data DATASET_DIR
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

from tracker import SiamFCTracker, TrackerConfig
from tracker.datasets import read_dataset
from tracker.evaluation import run_lockstep
from tracker.metrics import ious


def floats(text: str) -> list[float]:
    """``"0,3.5,4"`` -> ``[0.0, 3.5, 4.0]``."""
    return [float(v) for v in text.split(",") if v.strip()]


def summarise(found: np.ndarray, boxes: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Precision / recall of ``found == False`` against absent marks, lost-visible rate, IoU on visible frames."""
    absent = ~np.isfinite(gt).all(1)
    lost = ~found
    hits = int((lost & absent).sum())
    precision = hits / lost.sum() if lost.any() else float("nan")
    recall = hits / absent.sum() if absent.any() else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    visible = ~absent
    iou = float(ious(boxes[visible], gt[visible]).mean()) if visible.any() else float("nan")
    return {
        "lost": int(lost.sum()),
        "absent": int(absent.sum()),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "lost_visible": float((lost & visible).sum() / max(1, visible.sum())),
        "iou": iou,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="trained .safetensors weights")
    parser.add_argument("--data", required=True, help="dataset folder (any format tracker.datasets reads)")
    parser.add_argument("--sequences", default="", help="comma-separated names to keep (default: all)")
    parser.add_argument("--score", type=floats, default=floats("0,0.2,0.4"), help="found_threshold values")
    parser.add_argument("--psr", type=floats, default=floats("0,2.5,3,3.5,4"), help="found_psr values")
    parser.add_argument("--max-frames", type=int, default=None, help="frames per sequence (default: all)")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    sequences = read_dataset(args.data)
    if args.sequences:
        keep = set(args.sequences.split(","))
        sequences = [s for s in sequences if s.name in keep]
    pairs = list(itertools.product(args.score, args.psr))
    configs = [TrackerConfig(found_threshold=s, found_psr=p) for s, p in pairs]
    per_pair: list[list[tuple[np.ndarray, ...]]] = [[] for _ in pairs]
    t0 = time.perf_counter()
    for seq in sequences:
        trackers = [SiamFCTracker(args.weights, args.backend, args.device, c) for c in configs]
        run = run_lockstep(seq, trackers, args.max_frames)
        for k in range(len(pairs)):
            per_pair[k].append((run.found[k], run.boxes[k], run.gt))
        print(f"{seq.name}: {len(run.gt)} frames, {int((~np.isfinite(run.gt).all(1)).sum())} absent "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)  # fmt: skip

    print(f"weights {args.weights}; {len(sequences)} sequences; found=False scored against absent marks")
    print(f"{'found_threshold':>15} {'found_psr':>9} {'lost':>6} {'absent':>6} {'precision':>9} {'recall':>6} "
          f"{'F1':>5} {'lost-visible':>12} {'IoU':>5}")  # fmt: skip
    rows = []
    for (score, psr), runs in zip(pairs, per_pair, strict=True):
        found, boxes, gt = (np.concatenate(parts) for parts in zip(*runs, strict=True))
        m = summarise(found, boxes, gt)
        rows.append((score, psr, m))
        print(f"{score:>15.2f} {psr:>9.2f} {m['lost']:>6} {m['absent']:>6} {m['precision']:>9.3f} "
              f"{m['recall']:>6.3f} {m['f1']:>5.3f} {m['lost_visible']:>12.3f} {m['iou']:>5.3f}")  # fmt: skip
    score, psr, m = max(rows, key=lambda r: (r[2]["f1"], -r[2]["lost_visible"]))
    print(f"best F1: found_threshold={score} found_psr={psr} (precision {m['precision']:.3f}, recall "
          f"{m['recall']:.3f}, lost-visible {m['lost_visible']:.3f}, IoU {m['iou']:.3f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
