"""Open-loop comparison of candidate lost-target scores of a box-head tracker on the absence benchmark's streams.

Lost mode is off (every frame takes the tracking path, so every frame answers the same question); per frame the
candidates are read from the network's outputs on the tracking crop. Printed per candidate: its AUROC of visible
against absent frames, the same with only the visible frames where the box is on the target (IoU > 0.3: a
tracker that has drifted off should not score high), and what a threshold costs: with the threshold that
catches 90% of the absent frames, the share of on-target frames below it; with the threshold that 5% of the
on-target frames fall below, the share of absent frames below it. Usage (docs/ROBUSTNESS.md):

    python tools/score_candidates.py --weights weights/mobilenetv2_box.safetensors --data ../shared/data/dev
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tracker import TrackerConfig
from tracker import postprocess as pp
from tracker.backends.select import create_backend
from tracker.datasets import read_dataset
from tracker.eval import absence
from tracker.eval.metrics import ious
from tracker.geometry import as_frame
from tracker.heads.box import BoxSearch

ON_TARGET_IOU = 0.3


class RecordingTracker:
    """A box-head tracker built from the public parts (a backend and the head's decoder) that records, every
    frame, the candidate scores read off the network's outputs on the tracking crop. Lost mode is off."""

    def __init__(self, weights: str, backend: str, config: TrackerConfig, seen: list[dict[str, float]]) -> None:
        self.backend = create_backend(backend, weights, "cpu", config.threads, scales=1)
        if "cls" not in self.backend.model_config.outputs:
            raise SystemExit(f"{weights}: not a box-head model")
        self.search, self.seen = BoxSearch(config, self.backend.model_config), seen

    def init(self, frame: np.ndarray, box) -> None:  # noqa: ANN001
        frame = as_frame(frame)
        self.state = self.search.start(frame, box)
        self.kernel = self.backend.embed(self.state.exemplar[None])

    def update(self, frame: np.ndarray):  # noqa: ANN201
        if self.state.lost_frames:
            raise SystemExit("lost mode ran: every frame must take the tracking path")
        plan = self.search.plan(as_frame(frame), self.state)
        outputs = pp.finite_outputs(self.backend.score(self.kernel, plan.crops))
        peak = plan.decode(outputs)
        prob = self.search.probability(outputs)[0]
        self.seen.append({"chosen": peak.score, "map_max": float(prob.max()),
                          "cls_max": float(pp.sigmoid(outputs["cls"][0]).max()), "psr": peak.psr})  # fmt: skip
        return self.search.conclude(peak, self.state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="box-head .safetensors weights")
    parser.add_argument("--data", required=True, type=Path, help="dataset folder")
    parser.add_argument("--backend", default="onnx")
    absence.add_splice_arguments(parser)
    args = parser.parse_args(argv)

    seen: list[dict[str, float]] = []
    sequences = read_dataset(args.data)
    plans = absence.plan_splices(sequences, args.splices, args.splice_frames, args.seed)
    donors = {s.name: s for s in sequences}
    rows, visible, on_target = [], [], []
    off = TrackerConfig(found_threshold=0.0, found_psr=0.0, redetect_threshold=0.0, found_fraction=0.0, threads=1)
    for seq in sequences:
        stream = absence.build_stream(seq, plans[seq.name], donors)
        tracker = RecordingTracker(args.weights, args.backend, off, seen)
        seen.clear()
        run = absence.run_stream(stream, [tracker])
        if len(seen) != len(run["gt"]):
            raise SystemExit(f"{seq.name}: lost mode ran on some frames; are these box-head weights?")
        first = seen[0]["chosen"]
        for r in seen:
            r["relative"] = min(1.0, r["chosen"] / max(first, 1e-6))
        gt = run["gt"]
        vis = np.isfinite(gt).all(1)
        iou = np.zeros(len(gt))
        iou[vis] = ious(run["boxes"][0][vis], gt[vis])
        rows += seen
        visible.append(vis)
        on_target.append(vis & (iou > ON_TARGET_IOU))
    vis, on = np.concatenate(visible), np.concatenate(on_target)
    names = {
        "chosen": "probability at the chosen cell (the score)",
        "relative": "the same / its value on the first frame tracked",
        "map_max": "highest probability of the map",
        "cls_max": "highest sigmoid(cls) of the map",
        "psr": "PSR of the probability's logits",
    }
    print(f"{len(sequences)} sequences: {int(on.sum())} visible frames on target, {int((vis & ~on).sum())} off "
          f"it, {int((~vis).sum())} absent")  # fmt: skip
    print("| candidate | AUROC, all visible | AUROC, on-target visible | on-target below the 90%-of-absent threshold "
          "| absent below the 5%-of-on-target threshold |\n|---|---:|---:|---:|---:|")  # fmt: skip
    both = on | ~vis
    for key, name in names.items():
        v = np.array([r[key] for r in rows])
        t90, t5 = np.quantile(v[~vis], 0.9), np.quantile(v[on], 0.05)
        print(f"| {name} | {absence.auroc(v, vis):.3f} | {absence.auroc(v[both], on[both]):.3f} "
              f"| {100 * np.mean(v[on] < t90):.1f}% | {100 * np.mean(v[~vis] < t5):.1f}% |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
