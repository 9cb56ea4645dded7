"""Grid search over the inference knobs of TrackerConfig, scored with the OTB one-pass protocol.

Every combination of the ``--grid`` values (their cartesian product) gets one tracker; all of them run in
lockstep over each sequence from its first visible frame, so each frame is decoded once for the whole grid.
Each configuration is scored per sequence (success AUC, precision at 20 px, mean IoU; the init frame counts,
as in ``python -m tracker.evaluate``) and then by the mean over sequences (OTB style). Prints a table sorted by
AUC with the defaults' row marked, then the per-sequence AUC of the best configuration and of the defaults.
Usage:

    python tools/tune_tracker.py --weights weights/siamfc.safetensors --data ../shared/data/dev \\
        --grid window_influence=0.1,0.176,0.25 --grid scale_lr=0.4,0.59 [--sequences a,b] [--max-frames N] \\
        [--threads 2] [--starts N] [--out results/tune.json]

Tune on the dev set only; a test-set number from the chosen configuration is then an honest one.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tracker import SiamFCTracker, TrackerConfig
from tracker.config import ModelConfig
from tracker.datasets import read_dataset
from tracker.errors import InputError, TrackerError
from tracker.eval.evaluate import select
from tracker.eval.metrics import summarise
from tracker.eval.run import BOX_METRICS, run_lockstep
from tracker.heads import search_for
from tracker.shipped import resolve_weights
from tracker.tuned import TUNABLE, save_settings, settings_path, tuned_settings, with_tuned

NOT_KNOBS = ("threads", "precision")  # how the network runs, not how the tracker tracks
FIELDS = {f.name: f for f in dataclasses.fields(TrackerConfig) if f.name not in NOT_KNOBS}


def parse_grid(specs: list[str]) -> dict[str, list[int | float]]:
    """``["scale_lr=0.4,0.59", "scale_num=3,5"]`` -> ``{"scale_lr": [0.4, 0.59], "scale_num": [3, 5]}``; values
    are ints for int fields (by their default), floats otherwise. Raises InputError on a bad spec or name."""
    grid: dict[str, list[int | float]] = {}
    for spec in specs:
        name, sep, values = (s.strip() for s in spec.partition("="))
        if not sep or not values:
            raise InputError(f"--grid {spec!r}: expected FIELD=V1,V2,...")
        if name == "threads":
            raise InputError("threads is not a tuning knob; set it with --threads")
        if name in NOT_KNOBS:
            raise InputError(f"{name} is not a tuning knob")
        if name not in FIELDS:
            raise InputError(f"unknown TrackerConfig field {name!r}; choose from {', '.join(FIELDS)}")
        if name in grid:
            raise InputError(f"--grid {name} given twice")
        kind = int if type(FIELDS[name].default) is int else float
        try:
            grid[name] = list(dict.fromkeys(kind(v) for v in values.split(",") if v.strip()))
        except ValueError:
            raise InputError(f"--grid {spec!r}: {name} takes {kind.__name__} values") from None
    return grid


def tune(args: argparse.Namespace) -> dict:
    """Run the grid over the dataset; returns the results, configurations sorted by mean AUC (best first)."""
    grid = parse_grid(args.grid)
    combos = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    configs = [TrackerConfig(**combo, threads=args.threads) for combo in combos]  # ConfigError on bad values
    if not Path(args.data).is_dir():
        raise InputError(f"data folder not found: {args.data}")
    sequences = select(read_dataset(args.data), args.sequences, None, args.starts)
    # init() fully resets a tracker, so one per configuration serves every sequence
    trackers = [SiamFCTracker(args.weights, backend="torch", device="cpu", config=c) for c in configs]
    per_seq: list[dict[str, dict]] = [{} for _ in configs]
    t0 = time.perf_counter()
    for seq in sequences:
        start = int(np.argmax(seq.visible))
        total = len(seq) - start if args.max_frames is None else min(len(seq) - start, args.max_frames + 1)
        with tqdm(total=total, desc=seq.name, unit="frame", file=sys.stderr, mininterval=0.5) as bar:
            run = run_lockstep(seq, trackers, args.max_frames, progress=bar.update, motion=args.canvas_motion)
        # the init frame is scored too (its box is the ground truth), as tracker.evaluation.run_sequence does
        gt = np.vstack([seq.boxes[start], run.gt])
        for k in range(len(configs)):
            per_seq[k][seq.name] = summarise(np.vstack([seq.boxes[start], run.boxes[k]]), gt)
    elapsed = time.perf_counter() - t0
    defaults = effective_defaults(args.weights, trackers[0].model_config)
    rows = []
    for combo, seqs in zip(combos, per_seq, strict=True):
        mean = {k: float(np.mean([m[k] for m in seqs.values()])) for k in BOX_METRICS}  # as evaluation.overall
        default = all(combo[k] == defaults[k] for k in combo)
        rows.append({"config": combo, "default": default, "overall": mean, "sequences": seqs})
    # on a tie the defaults come first: a change of default needs a better score, not an equal one
    rows.sort(key=lambda r: (-r["overall"]["auc"], -r["overall"]["precision"], not r["default"]))
    return {
        "weights": str(args.weights),
        "data": str(args.data),
        "sequences": [s.name for s in sequences],
        "max_frames": args.max_frames,
        "starts": args.starts,
        "canvas_motion": args.canvas_motion,
        "threads": args.threads,
        "grid": grid,
        "defaults": defaults,
        "elapsed_s": round(elapsed, 1),
        "configs": rows,
    }


def effective_defaults(weights: Path, model_config: ModelConfig) -> dict:
    """What each knob is for ``weights`` when a TrackerConfig leaves it unset: the weights' settings file
    (tracker.tuned), else what the head's decoder resolves it to (its own window influence, penalty_k, box_lr),
    else TrackerConfig's defaults."""
    config = with_tuned(TrackerConfig(), weights)
    search = search_for(config, model_config)
    return {k: getattr(search, k, None) if v is None else v for k, v in dataclasses.asdict(config).items()}


def save(results: dict, argv: list[str], overwrite: bool) -> Path:
    """Write the best configuration as the weights' settings file, with where and how it was chosen."""
    weights, best = resolve_weights(results["weights"]), results["configs"][0]  # a model name or a path
    default = next((r for r in results["configs"] if r["default"]), None)
    chosen = {
        "data": Path(results["data"]).name,
        "sequences": results["sequences"],
        "grid": results["grid"],
        "command": "python tools/tune_tracker.py " + " ".join(argv),
        "auc": round(best["overall"]["auc"], 4),
        "precision": round(best["overall"]["precision"], 4),
        "head_defaults_auc": None if default is None else round(default["overall"]["auc"], 4),
    }
    settings = {**tuned_settings(weights), **best["config"]}
    return save_settings(weights, settings, chosen, overwrite)


def report(results: dict) -> str:
    """Markdown: the configurations by mean AUC, then per-sequence AUC of the best one and of the defaults."""
    rows, fields = results["configs"], list(results["grid"])
    lines = [
        "| " + " | ".join([*fields, "success AUC", "precision@20", "mean IoU", ""]) + " |",
        "|" + "---:|" * (len(fields) + 3) + "---|",
    ]
    for r in rows:
        o = r["overall"]
        cells = [f"{r['config'][f]:g}" for f in fields] + [f"{o[k]:.3f}" for k in ("auc", "precision", "mean_iou")]
        lines.append(f"| {' | '.join(cells)} | {'default' if r['default'] else ''} |")
    shown = {"best (default)" if rows[0]["default"] else "best": rows[0]}
    default = next((r for r in rows if r["default"]), None)
    if default is None:
        lines += ["", "The defaults (TrackerConfig()) are not in the grid."]
    elif default is not rows[0]:
        shown["default"] = default
    lines += ["", "| sequence | " + " | ".join(f"{n} AUC" for n in shown) + " |", "|---|" + "---:|" * len(shown)]
    for name in results["sequences"]:
        lines.append(f"| {name} | " + " | ".join(f"{r['sequences'][name]['auc']:.3f}" for r in shown.values()) + " |")
    best = ", ".join(f"{k}={v:g}" for k, v in rows[0]["config"].items())
    unit = "sequence(s)" if results.get("starts", 1) == 1 else f"runs ({results['starts']} starts a sequence)"
    if rows[0]["default"]:
        best = f"{best} (the defaults)" if best else "the defaults"
    lines += [
        "",
        f"best: {best}. {len(rows)} configuration(s), {len(results['sequences'])} {unit}, means over them; "
        f"{results['elapsed_s']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, type=Path, help="trained .safetensors weights")
    parser.add_argument("--data", required=True, type=Path, help="dataset folder (any format tracker.datasets reads)")
    parser.add_argument("--sequences", default="", help="comma-separated names to keep (default: all)")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="FIELD=V1,V2", help="TrackerConfig values to try (repeat)"
    )
    parser.add_argument("--max-frames", type=int, help="update() frames per sequence after the init frame")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: leave the process setting)")
    parser.add_argument(
        "--starts", type=int, default=1, help="N runs of each sequence, from 0, 1/N ... of it to the end (OTB's "
        "temporal robustness evaluation, as python -m tracker.evaluate --starts); scores are means over runs"
    )  # fmt: skip
    parser.add_argument(
        "--canvas-motion",
        type=float,
        default=0.0,
        metavar="PX",
        help="sequences of regions cut around the target: move the images over their canvas as a camera would "
        "(spread of the per-frame change of velocity in pixels; default 0: each image centred)",
    )
    parser.add_argument("--out", type=Path, help="write every configuration's results to this JSON file")
    parser.add_argument(
        "--save", action="store_true", help="write the best configuration beside the weights (tracker.tuned)"
    )
    parser.add_argument("--overwrite", action="store_true", help="with --save: replace the weights' settings file")
    args = parser.parse_args(argv)
    try:
        if args.overwrite and not args.save:
            raise InputError("--overwrite is for --save")
        if args.starts < 1:
            raise InputError(f"--starts must be at least 1, got {args.starts}")
        if not 0 <= args.canvas_motion < float("inf"):
            raise InputError(f"--canvas-motion must be a finite number >= 0, got {args.canvas_motion}")
        if args.save and not args.overwrite:
            existing = settings_path(resolve_weights(args.weights))  # a model name or a path
            if existing.exists():
                raise InputError(f"{existing} exists; add --overwrite to replace it")
        untunable = [name for name in parse_grid(args.grid) if name not in TUNABLE]
        if args.save and untunable:  # before the sweep, not after it
            raise InputError(f"--save: a weights file carries only {', '.join(TUNABLE)}, not {', '.join(untunable)}")
        results = tune(args)
        print(report(results), end="")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
            print(f"wrote {args.out}")
        if args.save:
            print(f"wrote {save(results, sys.argv[1:] if argv is None else argv, args.overwrite)}")
    except (TrackerError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
