"""Calibrate the appearance verifier's threshold (TrackerConfig.verify_threshold) on spliced absences.

    python tools/calibrate_verifier.py DATA --weights W [--sequences A,B,...] [--max-visible-cost 0.02]

Runs the tracker with the verifier measuring but never vetoing (threshold -1) over the absence benchmark's streams
(tracker.eval.absence: every sequence with frames of another spliced in), and records per frame the box head's
score, the appearance similarity and whether the target was in view. Then, for each candidate threshold, the share
of absent frames and of visible frames that would be reported lost (the tracker's own found decision and the
similarity's), the suggested threshold: the highest of them that reports at most ``--max-visible-cost`` more of
the visible frames lost than the tracker alone does, and the AUROC of three scores: the box score, the
similarity, and their product (what a verifying tracker reports). The figures are a replay: a veto also changes
what the tracker searches next, which the real benchmark (python -m tracker.evaluate DATA --absence) then
measures. Calibrate on data held apart from what you report.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from tracker import Tracker, TrackerConfig
from tracker.datasets import read_dataset
from tracker.eval.absence import auroc, build_stream, plan_splices, run_stream


def record(data: str, weights: str, sequences: list[str] | None, splices: int, frames: int, seed: int) -> dict:
    seqs = [s for s in read_dataset(data) if not sequences or s.name in sequences]
    plans = plan_splices(seqs, splices, frames, seed)
    donors = {s.name: s for s in seqs}
    config = TrackerConfig(verify_threshold=-1.0, threads=2)
    out = {"score": [], "similarity": [], "found": [], "visible": []}
    for seq in seqs:
        stream = build_stream(seq, plans[seq.name], donors)
        # every frame at the first one's size: the train split's frames are regions cut around the target, of
        # varying sizes (visibility, all that is scored here, does not change)
        run = run_stream(stream, [Tracker(weights, config=config)], same_size=True)
        sim = run["similarity"][0]
        # the box score, before the similarity multiplied it; a similarity <= 0 left a score of 0, which stays 0
        # here (so the box score's AUROC counts those frames as scored 0: slightly in its favour, as they are
        # mostly absent frames)
        out["score"].append(np.divide(run["scores"][0], sim, out=np.zeros_like(sim), where=sim > 0))
        out["similarity"].append(sim)
        out["found"].append(run["found"][0])
        out["visible"].append(np.isfinite(run["gt"]).all(1))
        print(f"{seq.name}: {len(stream) - 1} frames", flush=True)
    return {k: np.concatenate(v) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--weights", required=True)
    p.add_argument("--sequences", help="comma-separated names (default: all)")
    p.add_argument("--splices", type=int, default=2)
    p.add_argument("--splice-frames", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max-visible-cost", type=float, default=0.02, help="visible frames the verifier may add to those reported "
        "lost (default 0.02)"
    )  # fmt: skip
    args = p.parse_args()
    names = args.sequences.split(",") if args.sequences else None
    r = record(args.data, args.weights, names, args.splices, args.splice_frames, args.seed)
    vis, absent = r["visible"], ~r["visible"]
    print(f"frames: {vis.sum()} visible, {absent.sum()} absent")
    for name, s in (("box score", r["score"]), ("similarity", r["similarity"]),
                    ("score x similarity", r["score"] * np.maximum(r["similarity"], 0))):  # fmt: skip
        print(f"AUROC {name}: {auroc(s, vis):.3f}")
    print("| threshold | absent reported lost | visible reported lost |")
    print("|---|---|---|")
    own = (~r["found"])[vis].mean()
    suggested = None
    for t in np.round(np.arange(0.0, 0.951, 0.05), 2):
        lost = ~(r["found"] & (r["similarity"] >= t))
        a, v = lost[absent].mean(), lost[vis].mean()
        print(f"| {t:.2f} | {100 * a:.1f}% | {100 * v:.1f}% |")
        if v - own <= args.max_visible_cost:
            suggested = float(t)
    print(json.dumps({"verify_threshold": suggested, "max_visible_cost": args.max_visible_cost}))


if __name__ == "__main__":
    main()
