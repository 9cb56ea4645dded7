"""Picture of the appearance verifier at work: box score and similarity over spliced sequences.

    python tools/plot_verifier.py DATA --sequence NAME [NAME ...] [--weights accurate] [--threshold T] [--out F]

Each sequence gets the absence benchmark's splices (tracker.eval.absence: the same plan as ``python -m
tracker.evaluate DATA --absence`` with the same ``--splices``, ``--splice-frames`` and ``--seed``), and one
verifying tracker runs over it. One panel per sequence shows per frame the box head's score (before the
similarity multiplies it), the appearance similarity against the target's memory, the threshold, the frames the
tracker reported lost, the IoU of its box with the ground truth, and the spliced absences shaded. Needs
matplotlib.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tracker import Tracker, TrackerConfig, TrackerError
from tracker.appearance import calibrated_verifier
from tracker.datasets import read_dataset
from tracker.eval.absence import add_splice_arguments, build_stream, percent, plan_splices, run_stream
from tracker.eval.metrics import ious
from tracker.shipped import resolve_weights


def record(data: str, names: list[str], weights: str, threshold: float | None, splices: int, frames: int,
           seed: int) -> list[dict]:  # fmt: skip
    """Per sequence named, what :func:`plot` draws: one verifying tracker over it with the benchmark's splices."""
    seqs = read_dataset(data)
    by_name = {s.name: s for s in seqs}
    missing = [name for name in names if name not in by_name]
    if missing:
        raise TrackerError(f"--sequence: no sequence named {', '.join(missing)} in {data}")
    plans = plan_splices(seqs, splices, frames, seed)
    # the weights' calibrated settings, as `track --verify` takes them, or the threshold given
    verify = calibrated_verifier(resolve_weights(weights)) if threshold is None else {"verify_threshold": threshold}
    recs = []
    for name in names:
        stream = build_stream(by_name[name], plans[name], by_name)
        run = run_stream(stream, [Tracker(weights, config=TrackerConfig(**verify))])
        sim, boxes, gt = run["similarity"][0], run["boxes"][0], run["gt"]
        visible = np.isfinite(gt).all(1)
        iou = np.full(len(gt), np.nan)
        iou[visible] = ious(boxes[visible], gt[visible])
        # the box head's score, before the similarity multiplied it
        score = np.divide(run["scores"][0], sim, out=np.full_like(sim, np.nan), where=sim > 0)
        recs.append({"score": score, "similarity": sim, "found": run["found"][0], "iou": iou, "absent": ~visible,
                     "threshold": verify["verify_threshold"], "redetect": verify.get("verify_redetect"),
                     "name": name})  # fmt: skip
    return recs


def plot(recs: list[dict], path: Path, weights: str) -> None:
    """One panel per recorded sequence, the legend under the last."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 1.0 + 2.9 * len(recs)), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(recs), 1, squeeze=False)[:, 0]
    for ax, rec in zip(axes, recs, strict=True):
        n = len(rec["score"])
        t = np.arange(1, n + 1)
        shade = dict(step="mid", color="0.85", label="target absent (spliced)")
        ax.fill_between(t, -0.12, 1.02, where=rec["absent"], **shade)
        ax.plot(t, rec["iou"], color="C2", lw=0.8, alpha=0.7, label="IoU with ground truth")
        ax.plot(t, rec["score"], color="C0", lw=1.1, label="box score")
        ax.plot(t, rec["similarity"], color="C3", lw=1.1, label="appearance similarity")
        ax.axhline(rec["threshold"], color="C3", lw=0.8, ls="--", label=f"verify threshold {rec['threshold']:.2f}")
        if rec["redetect"] is not None:
            label = f"a re-detection's similarity {rec['redetect']:.2f}"
            ax.axhline(rec["redetect"], color="C3", lw=0.8, ls=":", label=label)
        lost = ~rec["found"]
        ax.scatter(t[lost], np.full(lost.sum(), -0.07), marker="|", s=30, color="k", label="reported lost")
        ax.set(ylim=(-0.12, 1.02), xlim=(0, n + 1), title=f"{rec['name']} with spliced absences, {weights}")
    axes[-1].set_xlabel("frame")
    axes[-1].legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="dataset folder (as for python -m tracker.evaluate)")
    p.add_argument("--sequence", nargs="+", required=True, help="the sequence(s) to picture, one panel each")
    p.add_argument("--weights", default="accurate", help="shipped name or weights file (default accurate)")
    p.add_argument("--threshold", type=float, help="verify threshold (default: the weights' calibrated one)")
    p.add_argument("--out", default="verifier.png", help="PNG to write (default verifier.png)")
    add_splice_arguments(p)
    args = p.parse_args()
    try:
        splices = (args.splices, args.splice_frames, args.seed)
        recs = record(args.data, args.sequence, args.weights, args.threshold, *splices)
        plot(recs, Path(args.out), args.weights)
    except (TrackerError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for rec in recs:
        absent, lost = rec["absent"], ~rec["found"]
        absent_lost = percent(lost[absent].mean() if absent.any() else None)
        shares = f"{absent_lost} of absent, {percent(lost[~absent].mean())} of visible"
        print(f"{rec['name']}: {len(absent)} frames, {absent.sum()} absent; reported lost: {shares}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
