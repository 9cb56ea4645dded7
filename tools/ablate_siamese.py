"""Ablation of the Siamese family: every similarity metric x training loss, each trained with the same schedule,
data and seed, then evaluated on a dev set (success AUC, precision at 20 px, fps).

    python tools/ablate_siamese.py --data ../shared/data/train --dev ../shared/data/dev --out results/ablation \\
        [--config weights/train_config.json] [--steps 2000] [--metrics xcorr,cosine,euclidean,absdiff] \\
        [--losses logistic,contrastive,triplet] [--cache cache] [--threads N] [--backend onnx] [--max-frames N] \\
        [--dry-run]

For each combination it runs ``python -m train --config CONFIG --metric M --loss L`` into OUT/runs/M-L (CONFIG
gives everything else: backbone, head, schedule, pairs, seed; the default is the classic weights' training config,
the metric's own default output scale replacing the config's), then ``python -m tracker.evaluate DEV --trackers
siamtrack --weights OUT/runs/M-L/last.safetensors --backend BACKEND`` into OUT/eval/M-L, every variant on the
same backend and precision. It writes OUT/ablation.md (the table), OUT/ablation.json and OUT/ablation.png (AUC
per metric, one bar per loss). A variant already evaluated is not run again and an interrupted training resumes,
so the same command continues a stopped ablation; the table always covers every variant asked for. ``--dry-run``
prints the commands and runs nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from tracker.config import METRICS
from tracker.errors import InputError
from train.losses import LOSSES

PROG = "ablate_siamese"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ("xcorr", "logistic")  # SiamFC's, and the box head's: the row the others are read against


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="training dataset folder(s)")
    p.add_argument("--dev", required=True, help="evaluation dataset folder")
    p.add_argument("--out", required=True, type=Path, help="output folder: runs/, eval/, ablation.md/.json/.png")
    p.add_argument(
        "--config",
        type=Path,
        default=ROOT / "weights" / "train_config.json",
        help="TrainConfig JSON shared by every variant (default: the classic weights' weights/train_config.json)",
    )
    p.add_argument("--steps", type=int, help="training steps of every variant (default: the config's)")
    p.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated, from {','.join(METRICS)}")
    p.add_argument("--losses", default=",".join(LOSSES), help=f"comma-separated, from {','.join(LOSSES)}")
    p.add_argument("--cache", help="crop cache root, shared by the variants (default: train's ./cache)")
    p.add_argument("--threads", type=int, help="evaluation threads (default: the evaluation's)")
    p.add_argument(
        "--backend",
        default="onnx",
        help="evaluation backend, one for every variant (default onnx: ONNX Runtime fp32; auto could pick int8 "
        "for some variants and not others)",
    )
    p.add_argument("--max-frames", type=int, help="evaluate the first N frames of each sequence (smoke runs)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    return p.parse_args(argv)


def choices(spec: str, allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    """Names from a comma-separated list, in the given order, each checked against ``allowed``."""
    names = list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise InputError(f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(allowed)}")
    return names


def commands(args: argparse.Namespace, metric: str, loss: str) -> tuple[list[str], list[str]]:
    """The training and evaluation commands of one variant (run from the current folder)."""
    name = f"{metric}-{loss}"
    run = args.out / "runs" / name
    train = [sys.executable, "-m", "train", "--data", *args.data, "--out", str(run), "--config", str(args.config)]
    train += ["--metric", metric, "--loss", loss]
    if args.steps is not None:
        train += ["--steps", str(args.steps)]
    if args.cache:
        train += ["--cache", args.cache]
    if (run / "checkpoint.pt").is_file():
        train.append("--resume")
    elif run.is_dir() and any(run.iterdir()):
        train.append("--overwrite")  # files of a run that never reached its first checkpoint
    weights = run / "last.safetensors"
    evaluate = [sys.executable, "-m", "tracker.evaluate", str(args.dev), "--trackers", "siamtrack"]
    evaluate += ["--weights", str(weights), "--backend", args.backend, "--out", str(args.out / "eval" / name)]
    if args.threads is not None:
        evaluate += ["--threads", str(args.threads)]
    if args.max_frames is not None:
        evaluate += ["--max-frames", str(args.max_frames)]
    return train, evaluate


def read_result(eval_dir: Path) -> dict | None:
    """AUC, precision@20 and fps of siamtrack from an evaluation's results.json, or None if there is none."""
    path = eval_dir / "results.json"
    if not path.is_file():
        return None
    o = json.loads(path.read_text())["trackers"]["siamtrack"]["overall"]
    return {"auc": o["auc"], "precision": o["precision"], "fps": o["fps"]}


def run_variant(args: argparse.Namespace, metric: str, loss: str) -> dict:
    """Train and evaluate one variant (unless its evaluation exists): its results, or the step that failed."""
    name = f"{metric}-{loss}"
    done = read_result(args.out / "eval" / name)
    if done is not None:
        print(f"{PROG}: {name}: evaluated before, kept", flush=True)
        return done
    for step, cmd in zip(("training", "evaluation"), commands(args, metric, loss), strict=True):
        print(f"{PROG}: {name}: {shlex.join(cmd)}", flush=True)
        if subprocess.run(cmd).returncode != 0:
            return {"failed": step}
    return read_result(args.out / "eval" / name) or {"failed": "evaluation (no results.json)"}


def markdown(rows: dict[tuple[str, str], dict], steps: str) -> str:
    """The table: one row per variant, best AUC first, failed variants last."""
    lines = [
        "| metric | loss | success AUC | precision@20 | fps |",
        "|---|---|---|---|---|",
    ]
    order = sorted(rows, key=lambda k: rows[k].get("auc", -1.0), reverse=True)
    for metric, loss in order:
        r = rows[(metric, loss)]
        mark = " (the default)" if (metric, loss) == DEFAULT else ""
        if "failed" in r:
            lines.append(f"| {metric} | {loss}{mark} | failed: {r['failed']} | | |")
            continue
        fps = f"{r['fps']:.0f}" if r["fps"] else "n/a"
        lines.append(f"| {metric} | {loss}{mark} | {r['auc']:.3f} | {r['precision']:.3f} | {fps} |")
    note = f"\nEach variant trained for {steps} steps with one config, data and seed; OTB one-pass on the dev set.\n"
    return "\n".join(lines) + "\n" + note


def plot(rows: dict[tuple[str, str], dict], metrics: list[str], losses: list[str], path: Path) -> None:
    """Success AUC per metric, one bar per loss (a failed variant has no bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 * len(metrics) + 3, 3.6))
    width = 0.8 / len(losses)
    for i, loss in enumerate(losses):
        xs = [m + (i - (len(losses) - 1) / 2) * width for m in range(len(metrics))]
        ys = [rows[(metric, loss)].get("auc", 0.0) for metric in metrics]
        ax.bar(xs, ys, width, label=loss)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylabel("success AUC (dev)")
    ax.set_title("Siamese ablation: similarity metric x loss")
    ax.legend(title="loss", loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        metrics = choices(args.metrics, METRICS, "metric")
        losses = choices(args.losses, list(LOSSES), "loss")
        for folder in [*args.data, args.dev]:
            if not Path(folder).is_dir():
                raise InputError(f"dataset folder not found: {folder}")
        if not args.config.is_file():
            raise InputError(f"config file not found: {args.config}")
        steps = args.steps if args.steps is not None else json.loads(args.config.read_text()).get("steps", "default")
        if args.steps is not None and args.steps < 1:
            raise InputError(f"--steps must be >= 1, got {args.steps}")
    except (InputError, json.JSONDecodeError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    variants = [(m, loss) for m in metrics for loss in losses]
    if args.dry_run:
        for metric, loss in variants:
            for cmd in commands(args, metric, loss):
                print(shlex.join(cmd))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {(m, loss): run_variant(args, m, loss) for m, loss in variants}
    (args.out / "ablation.md").write_text(markdown(rows, str(steps)))
    summary = [{"metric": m, "loss": loss, **r} for (m, loss), r in rows.items()]
    (args.out / "ablation.json").write_text(json.dumps({"steps": steps, "variants": summary}, indent=1) + "\n")
    plot(rows, metrics, losses, args.out / "ablation.png")
    print((args.out / "ablation.md").read_text())
    failed = [f"{m}-{loss}" for (m, loss), r in rows.items() if "failed" in r]
    if failed:
        print(f"{PROG}: error: {len(failed)} variant(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
