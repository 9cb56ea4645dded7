"""``python -m train --data DIR [DIR ...] --out runs/NAME [--config cfg.json] [--resume] [--steps N] ...``

Also under torchrun: ``torchrun --nproc_per_node N -m train ...`` (DDP; gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tracker import SiamFCTracker
from tracker.datasets import read_dataset
from tracker.errors import TrackerError
from tracker.evaluation import evaluate, load_frames

from .curate import curate
from .loop import TrainConfig, Trainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description="Train a SiamFC model from video sequences.")
    p.add_argument("--data", nargs="+", required=True, help="training dataset folder(s)")
    p.add_argument(
        "--val", nargs="*", default=[], help="validation dataset folder(s): OPE AUC picks the best checkpoint"
    )
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, best.safetensors")
    p.add_argument("--cache", default="cache", help="crop cache root, reused across runs (default: ./cache)")
    p.add_argument("--config", help="JSON file of TrainConfig fields (nested 'model' and 'pairs')")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    d = TrainConfig()  # the defaults of the options below (and of every other field --config may set)
    p.add_argument("--steps", type=int, help=f"total optimisation steps (default {d.steps})")
    p.add_argument("--batch-size", type=int, help=f"pairs per step and process (default {d.batch_size})")
    p.add_argument(
        "--lr", type=float, help=f"peak learning rate, after {d.warmup_steps} warm-up steps (default {d.lr:g})"
    )
    p.add_argument("--width", type=float, help=f"backbone width multiplier (default {d.model.width:g})")
    p.add_argument(
        "--stem-kernel", type=int, help=f"AlexNet's first kernel side: 5, 7, 9 or 11 (default {d.model.stem_kernel})"
    )
    p.add_argument(
        "--groups", type=int, help=f"groups of AlexNet's conv2, conv4 and conv5: 1, 2 or 4 (default {d.model.groups})"
    )
    p.add_argument("--workers", type=int, help=f"DataLoader worker processes (default {d.workers})")
    p.add_argument("--val-every", type=int, help=f"steps between validations, 0: never (default {d.val_every})")
    p.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this many minutes")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> TrainConfig:
    out = Path(args.out)
    if args.resume and (out / "config.json").is_file():
        cfg = json.loads((out / "config.json").read_text())
    elif args.config:
        cfg = json.loads(Path(args.config).read_text())
    else:
        cfg = {}
    for key in ("steps", "batch_size", "lr", "workers", "val_every"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    for key in ("width", "stem_kernel", "groups"):
        if getattr(args, key) is not None:
            cfg.setdefault("model", {})[key] = getattr(args, key)
    return TrainConfig.from_dict(cfg)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        cache_dir = curate(args.data, args.cache)
        validate = None
        if args.val:
            sequences = [s for d in args.val for s in read_dataset(d)]
            frames = {s.name: load_frames(s) for s in sequences}  # decoded once, reused by every validation

            def validate(weights: Path) -> dict:
                return evaluate(lambda: SiamFCTracker(weights, backend="torch"), sequences, frames)["overall"]

        Trainer(cfg, cache_dir, out, validate, resume=args.resume).run(args.max_minutes)
    except (TrackerError, OSError, ValueError, json.JSONDecodeError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
