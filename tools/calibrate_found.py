"""Calibrate the ``found`` thresholds of TrackerConfig with the absence benchmark (``tracker.absence``).

Every combination of the values given for ``found_threshold``, ``found_psr``, ``redetect_threshold``,
``redetect_fraction``, the appearance verifier's ``verify_threshold``, ``verify_redetect``, ``verify_redetect_far``,
``verify_every``, ``redetect_candidates``, ``redetect_distractors``, ``distractor_margin``, ``verify_ambiguous`` and
its bar, ``memory_confidence``, and the box head's ``redetect_refine``, ``box_calibration``, ``redetect_confirm``,
``redetect_keep_reach`` and ``template_rate`` is one tracker; all of them run in lockstep over the benchmark's
streams (annotated absences plus spliced ones, so each frame is decoded once) and each is scored as the benchmark
scores a tracker: AUROC of ``score``, absent and visible frames reported lost, visible frames reported found with
the box off the target, returns re-acquired within 10 frames, success AUC on the visible frames.

Closed loop on purpose: ``found`` changes what the tracker does next (hold, widen, re-detect), so each
combination is judged by the run it produces. Usage (docs/ROBUSTNESS.md, "Choosing the score and the thresholds"):

    python tools/calibrate_found.py --weights weights/mobilenetv2_box.safetensors --data ../shared/data/dev \\
        --found 0.05,0.1 --redetect 0.5,0.6 --fraction 0.8,1
    python tools/calibrate_found.py --weights accurate --data ../shared/data/train --same-size \\
        --verify off,0.2 --verify-redetect off,0.3,0.4,0.5 --backend auto --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from tracker import SiamFCTracker, TrackerConfig
from tracker.datasets import read_dataset
from tracker.errors import InputError
from tracker.eval import absence
from tracker.eval.evaluate import select

FIELDS = ("found_threshold", "found_psr", "redetect_threshold", "redetect_fraction", "verify_threshold",
          "verify_redetect", "verify_every", "box_calibration", "redetect_confirm", "redetect_keep_reach",
          "template_rate", "redetect_candidates", "redetect_distractors", "distractor_margin",
          "redetect_refine", "verify_ambiguous", "verify_ambiguous_bar", "memory_confidence",
          "verify_redetect_far")  # fmt: skip


OFF = ("verify", "memory")  # fields whose None turns something off, not the head's default


def values(text: str) -> list[float | None]:
    """``"0,0.5,head"`` -> ``[0.0, 0.5, None]`` (``head`` or ``off``: the default, None)."""
    return [None if v.strip() in ("head", "off") else float(v) for v in text.split(",") if v.strip()]


def integers(text: str) -> list[int]:
    """``"1,3"`` -> ``[1, 3]``."""
    return [int(v) for v in text.split(",")]


def config(row: dict, threads: int) -> TrackerConfig:
    """The tracker of one row of the grid: no verifier where both its thresholds are off."""
    verify = row["verify_threshold"] is not None or row["verify_redetect"] is not None
    return TrackerConfig(threads=threads, verify=verify, **row)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="trained .safetensors weights")
    parser.add_argument("--data", required=True, type=Path, help="dataset folder (any format tracker.datasets reads)")
    parser.add_argument("--found", type=values, default=values("head"), help="found_threshold values ('head': default)")
    parser.add_argument("--psr", type=values, default=values("head"), help="found_psr values")
    parser.add_argument("--redetect", type=values, default=values("head"), help="redetect_threshold values")
    parser.add_argument("--fraction", type=values, default=values("head"), help="redetect_fraction values")
    parser.add_argument("--verify", type=values, default=values("off"), help="verify_threshold values ('off': none; "
                        "with verify_redetect off too, no verifier)")  # fmt: skip
    parser.add_argument("--verify-redetect", type=values, default=values("off"), help="verify_redetect values "
                        "(alone: only re-detections are verified)")  # fmt: skip
    parser.add_argument(
        "--verify-every", type=integers, default=[1],
        help="verify_every values (frames between two verifications while tracking; default 1)",
    )  # fmt: skip
    parser.add_argument("--box-calibration", type=values, default=values("head"),
                        help="box_calibration values ('head': the weights' own)")  # fmt: skip
    confirm = TrackerConfig().redetect_confirm
    parser.add_argument(
        "--redetect-confirm", type=integers, default=[confirm],
        help=f"redetect_confirm values (frames a far re-detection must hold; default {confirm})",
    )  # fmt: skip
    parser.add_argument(
        "--redetect-keep-reach", type=integers, default=[0],
        help="redetect_keep_reach values (frames after a re-detection in which a loss resumes the search's reach; "
        "default 0: off)",
    )  # fmt: skip
    parser.add_argument("--template-rate", type=values, default=values("head"),
                        help="template_rate values ('head': the weights' own)")  # fmt: skip
    parser.add_argument(
        "--redetect-candidates", type=integers, default=[1],
        help="redetect_candidates values (separate peaks a lost target's verifier judges; default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--redetect-distractors", type=integers, default=[0],
        help="redetect_distractors values (refused look-alikes a lost target's verifier remembers; default 0: off)",
    )  # fmt: skip
    margin = TrackerConfig().distractor_margin
    parser.add_argument("--distractor-margin", type=lambda t: [float(v) for v in t.split(",")], default=[margin],
                        help=f"distractor_margin values (default {margin})")  # fmt: skip
    parser.add_argument("--redetect-refine", type=lambda t: [v.strip() == "on" for v in t.split(",")],
                        default=[False], help="redetect_refine values, on or off (default off)")  # fmt: skip
    parser.add_argument("--verify-ambiguous", type=values, default=values("off"),
                        help="verify_ambiguous values ('off': none)")  # fmt: skip
    parser.add_argument("--verify-ambiguous-bar", type=values, default=values("off"),
                        help="verify_ambiguous_bar values ('off': the re-detection's)")  # fmt: skip
    parser.add_argument("--verify-redetect-far", type=values, default=values("off"),
                        help="verify_redetect_far values ('off': verify_redetect wherever it lies)")  # fmt: skip
    parser.add_argument("--memory-confidence", type=values, default=values("off"),
                        help="memory_confidence values ('off': every frame due adds to the memory)")  # fmt: skip
    absence.add_splice_arguments(parser)
    absence.add_canvas_argument(parser)
    parser.add_argument("--same-size", action="store_true", help="every frame at the first one's size (as for "
                        "python -m tracker.evaluate --absence --same-size)")  # fmt: skip
    parser.add_argument("--sequences", help="comma-separated sequence names to keep (default: all)")
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--threads", type=int, default=1, help="network threads per tracker (default 1)")
    args = parser.parse_args(argv)

    grid = [dict(zip(FIELDS, combo, strict=True)) for combo in itertools.product(
        args.found, args.psr, args.redetect, args.fraction, args.verify, args.verify_redetect,
        args.verify_every, args.box_calibration, args.redetect_confirm, args.redetect_keep_reach,
        args.template_rate, args.redetect_candidates, args.redetect_distractors, args.distractor_margin,
        args.redetect_refine, args.verify_ambiguous, args.verify_ambiguous_bar, args.memory_confidence,
        args.verify_redetect_far)]  # fmt: skip
    # the verifier's schedule means nothing without the verifier; 'off' for both its thresholds: no verifier at
    # all (not the weights' re-detection check, which --verify-redetect and the others give explicitly)
    # the verifier's own fields mean nothing without it, and the margin nothing without distractors: such rows keep
    # their defaults
    idle = {"verify_every": 1, "redetect_candidates": 1, "redetect_distractors": 0, "distractor_margin": margin,
            "verify_ambiguous": None, "verify_ambiguous_bar": None, "memory_confidence": None,
            "verify_redetect_far": None}  # fmt: skip
    grid = [g for g in grid if config(g, None).verify or all(g[f] == v for f, v in idle.items())]
    grid = [g for g in grid if g["redetect_distractors"] or g["distractor_margin"] == margin]
    factories = {
        str(k): (lambda g=g: SiamFCTracker(args.weights, args.backend, config=config(g, args.threads)))
        for k, g in enumerate(grid)
    }
    sequences = read_dataset(args.data)
    if args.sequences:
        try:
            sequences = select(sequences, args.sequences, None)
        except InputError as e:
            parser.error(str(e))
    results = absence.benchmark(
        factories, sequences, args.splices, args.splice_frames, args.seed, same_size=args.same_size, canvas=args.canvas
    )
    splices = absence.describe_arguments(args)
    print(f"weights {args.weights}; {len(sequences)} sequences; {splices}; 'head': the head's default")
    rates = ("absent_lost", "visible_lost", "visible_found_off", "reacquired_10")
    print("| " + " | ".join(FIELDS) + " | AUROC | absent lost | visible lost | visible found off the target "
          "| re-acquired within 10 | AUC |")  # fmt: skip
    print("|" + "---:|" * (len(FIELDS) + 2 + len(rates)))
    for k, g in enumerate(grid):
        o = results["trackers"][str(k)]["overall"]
        cells = [("off" if f.startswith(OFF) else "head") if g[f] is None else f"{g[f]:g}" for f in FIELDS]
        auroc = "n/a" if o["auroc"] is None else f"{o['auroc']:.3f}"
        shares = " | ".join(absence.percent(o[r]) for r in rates)
        print(f"| {' | '.join(cells)} | {auroc} | {shares} | {o['auc']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
