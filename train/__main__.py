"""``python -m train --data DIR [DIR ...] --out runs/NAME [--config cfg.json] [--resume] [--steps N] ...``

Also under torchrun: ``torchrun --nproc_per_node N -m train ...`` (DDP; gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tracker import SiamFCTracker, atomic
from tracker.config import BACKBONES, HEADS, METRICS
from tracker.datasets import read_dataset
from tracker.errors import TrackerError, WeightsError
from tracker.eval.run import evaluate, load_frames

from .curate import curate
from .loop import TrainConfig, Trainer
from .losses import LOSSES
from .pretrained import version_and_width


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train", description="Train a SiamFC model from video sequences.")
    p.add_argument("--data", nargs="+", required=True, help="training dataset folder(s)")
    p.add_argument(
        "--val", nargs="*", default=[], help="validation dataset folder(s): OPE AUC picks the best checkpoint"
    )
    p.add_argument(
        "--holdout",
        nargs="+",
        metavar="NAME",
        help="sequences of --data held apart: no pairs come from them, and they validate (with any --val)",
    )
    p.add_argument("--out", required=True, help="run folder: checkpoints, log.csv, best.safetensors")
    p.add_argument("--cache", default="cache", help="crop cache root, reused across runs (default: ./cache)")
    p.add_argument("--config", help="JSON file of TrainConfig fields (nested 'model' and 'pairs')")
    runs = p.add_mutually_exclusive_group()
    runs.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (which must exist)")
    runs.add_argument("--overwrite", action="store_true", help="delete the run files already in OUT and start anew")
    d = TrainConfig()  # the defaults of the options below (and of every other field --config may set)
    p.add_argument("--steps", type=int, help=f"total optimisation steps (default {d.steps})")
    p.add_argument("--batch-size", type=int, help=f"pairs per step and process (default {d.batch_size})")
    p.add_argument(
        "--lr", type=float, help=f"peak learning rate, after {d.warmup_steps} warm-up steps (default {d.lr:g})"
    )
    trainable = tuple(name for name, spec in BACKBONES.items() if spec.trainable)
    p.add_argument("--backbone", choices=trainable, help=f"default {d.model.backbone}")
    p.add_argument("--pretrained", help="TFLite file of an ImageNet MobileNet to start the backbone from")
    p.add_argument("--stride", type=int, help="total stride to cut a MobileNet at: 8 (default) or 16")
    p.add_argument(
        "--head",
        choices=tuple(HEADS),
        help=f"fc: SiamFC's 3-scale similarity map; box: one crop, regressed box (default {d.model.head})",
    )
    p.add_argument(
        "--metric",
        choices=METRICS,
        help=f"similarity of the fc head, at that metric's default output scale (default {d.model.metric})",
    )
    p.add_argument(
        "--loss",
        choices=tuple(LOSSES),
        help=f"classification loss, dense over the response map (the box head's cls map) (default {d.loss})",
    )
    p.add_argument(
        "--blocks", type=int, help="MobileNets: keep only the first this many blocks after the stem (default: all)"
    )
    p.add_argument("--neck", type=int, help="MobileNets: 1x1 conv + BatchNorm to this many channels (default 0: none)")
    p.add_argument(
        "--freeze-layers", type=int, help=f"leading backbone layers never trained (default {d.freeze_layers})"
    )
    p.add_argument("--freeze-steps", type=int, help=f"steps with the whole backbone frozen (default {d.freeze_steps})")
    p.add_argument(
        "--backbone-lr", type=float, help=f"backbone learning rate as a multiple of --lr (default {d.backbone_lr:g})"
    )
    p.add_argument(
        "--width", type=float, help=f"backbone width multiplier (default {d.model.width:g}; MobileNets: the file's)"
    )
    p.add_argument(
        "--stem-kernel", type=int, help=f"AlexNet's first kernel side: 5, 7, 9 or 11 (default {d.model.stem_kernel})"
    )
    p.add_argument(
        "--groups", type=int, help=f"groups of AlexNet's conv2, conv4 and conv5: 1, 2 or 4 (default {d.model.groups})"
    )
    p.add_argument(
        "--teacher",
        nargs="+",
        help="a trained model (weights file or shipped name) whose maps the model also learns (distillation; same "
        "head); several: their maps averaged",
    )
    p.add_argument(
        "--init",
        help="a trained model (weights file or shipped name) whose layers of the same name and shape start the model's",
    )
    p.add_argument(
        "--distill-weight", type=float, help=f"weight of the distillation loss (default {d.distill_weight:g})"
    )
    p.add_argument(
        "--feature-weight", type=float,
        help="weight of the features' distillation: the backbone's outputs learn the teacher's (default 0: off)",
    )  # fmt: skip
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
    for key in ("steps", "batch_size", "lr", "workers", "val_every", "pretrained", "freeze_layers", "freeze_steps",
                "backbone_lr", "loss", "holdout", "teacher", "distill_weight", "feature_weight", "init"):  # fmt: skip
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if isinstance(cfg.get("teacher"), list) and len(cfg["teacher"]) == 1:
        cfg["teacher"] = cfg["teacher"][0]
    for key in ("backbone", "width", "stem_kernel", "groups", "stride", "neck", "blocks", "head"):
        if getattr(args, key) is not None:
            cfg.setdefault("model", {})[key] = getattr(args, key)
    model = cfg.setdefault("model", {})
    if args.metric is not None and args.metric != model.get("metric", "xcorr"):
        model.pop("out_scale", None)  # another metric's scale (e.g. xcorr's 0.001 from a copied config) is wrong
        model["metric"] = args.metric
    if cfg.get("pretrained") and "width" not in model and "backbone" in model:
        for key, value in pretrained_shape(cfg["pretrained"]).items():  # the file's width, e.g. mobilenet_v1_0.5_160
            model.setdefault(key, value)
    return TrainConfig.from_dict(cfg)


def pretrained_shape(path: str) -> dict:
    """The ModelConfig width (and channel rounding) a TFLite file's name implies: the width of
    ``mobilenet_v<N>_<width>_<size>_quant.tflite``; DeepLabV3's ``deeplabv3_mnv2_dm05_*`` encoder is MobileNetV2 0.5
    with its channels in multiples of 4; 1.0 for any other name."""
    if Path(path).name.startswith("deeplabv3_mnv2_dm05"):
        return {"width": 0.5, "channel_multiple": 4}
    try:
        return {"width": version_and_width(path)[1]}
    except WeightsError:
        return {"width": 1.0}


def held_apart(sequences: list, names: tuple[str, ...]) -> list:
    """The ``sequences`` (of ``--data``) named in ``names``: the validation split cut from train by video."""
    found = [s for s in sequences if s.name in names]
    missing = sorted(set(names) - {s.name for s in found})
    if missing:
        raise ValueError(f"--holdout: no sequence named {', '.join(missing)} in --data")
    return found


RUN_FILES = ("checkpoint.pt", "last.safetensors", "ema.safetensors", "best.safetensors", "log.csv", "config.json")


def prepare_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one folder: a folder holding run files needs --resume (with a checkpoint) or
    --overwrite (which deletes those files, and only those)."""
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if resume and not (out / "checkpoint.pt").is_file():
        raise ValueError(f"--resume: no checkpoint in {out}; leave --resume out to start a new run")
    if existing and not resume:
        if not overwrite:
            raise ValueError(
                f"{out} already holds a run ({', '.join(existing)}); use --resume to continue it, --overwrite to "
                "replace it, or another --out"
            )
        for name in existing:
            (out / name).unlink()
    out.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = build_config(args)
        out = Path(args.out)
        # every dataset read before anything is written: bad data leaves no empty run or cache folder behind
        training = [s for d in args.data for s in read_dataset(d)]
        sequences = [s for d in args.val for s in read_dataset(d)] + held_apart(training, cfg.holdout)
        if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one process owns the run folder
            prepare_run_folder(out, args.resume, args.overwrite)
            atomic.write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))
        else:
            out.mkdir(parents=True, exist_ok=True)
        cache_dir = curate(args.data, args.cache)
        validate = None
        if sequences:
            frames = {s.name: load_frames(s) for s in sequences}  # decoded once, reused by every validation

            def validate(weights: Path) -> dict:
                return evaluate(lambda: SiamFCTracker(weights, backend="torch"), sequences, frames)["overall"]

        trainer = Trainer(cfg, cache_dir, out, validate, resume=args.resume)
        trainer.run(args.max_minutes)
    except (TrackerError, OSError, ValueError, json.JSONDecodeError) as e:
        print(f"train: error: {e}", file=sys.stderr)
        return 2
    # what rank 0 wrote (another rank may finish before it has): the best, else the average, else the last step
    names = ("best.safetensors", "ema.safetensors")
    written = next((out / n for n in names if (out / n).is_file()), out / "last.safetensors")
    print(f"train: step {trainer.step} of {cfg.steps}; weights: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
