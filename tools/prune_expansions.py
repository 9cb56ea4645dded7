"""Prune a trained MobileNetV2 box-head network's expansion channels: the starting point of a cheaper network that
then learns the original's maps (``python -m train --init OUT --teacher WEIGHTS``).

In each chosen block the hidden channels that carry least into the projection (mean squared activation times the
squared norm of the projection's column, on calibration crops) are dropped, and the projection is refitted by least
squares so that the block's output on the pruned network's own inputs stays the original's. The network's config
records the counts kept (``ModelConfig.expansions``), so the file rebuilds its own model.

    python tools/prune_expansions.py --weights accurate --data ../shared/data/train \\
        --holdout Bird2 MotorRolling building4 Yacht2 air_conditioning_box1 --blocks 2-6 --drop 0.25 \\
        --out runs/pruned/start25.safetensors

Prints, on crops of the held-apart sequences, how often the pruned network's peak lies within one cell of the
original's, and the box error there: how much the training that follows has to recover.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracker.backends.graphs import GraphSpec  # noqa: E402
from tracker.backends.trace import dataset_crops  # noqa: E402
from tracker.config import ModelConfig  # noqa: E402
from tracker.model import SiamFC  # noqa: E402
from tracker.model.backbones import InvertedResidual  # noqa: E402
from tracker.shipped import resolve_weights  # noqa: E402
from tracker.weights import load_weights, save_weights  # noqa: E402


def crops(root: Path, names: list[str], samples: int, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Exemplar and search crops (N, 3, H, W) float, cut as the tracker cuts them, from ``names`` of ``root``."""
    tmp = Path(tempfile.mkdtemp())
    try:
        for name in names:
            os.symlink((root / name).resolve(), tmp / name)
        pairs = dataset_crops(tmp, GraphSpec(targets=1, scales=1), config, samples=samples)
    finally:
        shutil.rmtree(tmp)
    z, x = (torch.from_numpy(np.concatenate([p[i] for p in pairs])).permute(0, 3, 1, 2).float() for i in (0, 1))
    return z, x


def blocks_of(model: SiamFC) -> list[int]:
    """Index in ``backbone.features`` of each inverted-residual block, in order (the stem is 0)."""
    return [i for i, m in enumerate(model.backbone.features) if isinstance(m, InvertedResidual)]


def inputs_to(model: SiamFC, index: int, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        for layer in list(model.backbone.features)[:index]:
            x = layer(x)
    return x


def prune_block(
    block: InvertedResidual, keep: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> InvertedResidual:
    """``block`` with only its hidden channels ``keep``; its projection becomes ``weight`` (cout, k) and ``bias``."""
    expand, depthwise, project = (layer.conv for layer in block.layers)
    pruned = InvertedResidual(
        expand.in_channels, project.out_channels, depthwise.stride[0], expand.out_channels // expand.in_channels,
        len(keep),
    )  # fmt: skip
    new_expand, new_depthwise, new_project = (layer.conv for layer in pruned.layers)
    with torch.no_grad():
        for new, old in ((new_expand, expand), (new_depthwise, depthwise)):
            new.weight.copy_(old.weight[keep])
            new.bias.copy_(old.bias[keep])
        new_project.weight.copy_(weight.reshape(new_project.weight.shape))
        new_project.bias.copy_(bias)
    return pruned


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, help="a MobileNetV2 box-head model: weights file or shipped name")
    ap.add_argument("--data", required=True, type=Path, help="training dataset folder (calibration crops)")
    ap.add_argument("--holdout", nargs="*", default=[], help="sequences kept out of calibration; the fidelity check")
    ap.add_argument("--blocks", default="2-6", help="blocks to prune, numbered from 1 after the stem: e.g. 2-6 or 2,3")
    ap.add_argument("--drop", type=float, default=0.5, help="share of each block's hidden channels dropped")
    ap.add_argument("--samples", type=int, default=128, help="calibration pairs")
    ap.add_argument("--out", required=True, type=Path, help="weights file to write (refused if it exists)")
    args = ap.parse_args()
    if args.out.exists():
        sys.exit(f"error: {args.out} exists; choose another --out")
    if not 0 < args.drop < 1:
        sys.exit(f"error: --drop must be in (0, 1), got {args.drop}")
    torch.manual_seed(0)
    original = load_weights(resolve_weights(args.weights)).eval()
    config = original.config
    if config.backbone != "mobilenetv2":
        sys.exit(f"error: {args.weights} has a {config.backbone} backbone; expansions are MobileNetV2's")
    parts = [p.split("-") for p in args.blocks.split(",")]
    chosen = sorted({b for p in parts for b in range(int(p[0]), int(p[-1]) + 1)})
    names = sorted(p.name for p in args.data.iterdir() if p.is_dir())
    _, x_cal = crops(args.data, [n for n in names if n not in set(args.holdout)], args.samples, config)
    pruned = load_weights(resolve_weights(args.weights)).eval()
    index = blocks_of(pruned)
    hidden = [pruned.backbone.features[i].layers[-1].conv.in_channels for i in index]
    calibration = x_cal  # the search crops: what every frame costs
    for b in chosen:
        i = index[b - 1]
        block = pruned.backbone.features[i]
        if len(block.layers) != 3:
            sys.exit(f"error: block {b} does not expand; it has no hidden channels to drop")
        with torch.no_grad():
            target = original.backbone.features[i].layers(inputs_to(original, i, calibration))
            xin = inputs_to(pruned, i, calibration)
            mid = block.layers[1](block.layers[0](xin))
        w = block.layers[2].conv.weight.data[:, :, 0, 0]
        energy = (mid**2).mean(dim=(0, 2, 3)) * (w**2).sum(0)
        k = max(8, int(round(w.shape[1] * (1 - args.drop) / 8)) * 8)
        keep = torch.sort(torch.argsort(energy, descending=True)[:k]).values
        a = mid[:, keep].permute(0, 2, 3, 1).reshape(-1, k).double()
        y = target.permute(0, 2, 3, 1).reshape(-1, w.shape[0]).double()
        rows = torch.from_numpy(np.random.default_rng(b).choice(len(a), min(len(a), 200_000), replace=False))
        a1 = torch.cat([a[rows], torch.ones(len(rows), 1, dtype=torch.float64)], 1)
        solution = torch.linalg.solve(a1.T @ a1 + 1e-3 * torch.eye(k + 1, dtype=torch.float64), a1.T @ y[rows])
        block = pruned.backbone.features[i] = prune_block(block, keep, solution[:-1].T.float(), solution[-1].float())
        with torch.no_grad():
            now = block.layers(xin)
        error = float(((now - target) ** 2).mean() / (target**2).mean())
        hidden[b - 1] = k
        print(f"block {b}: kept {k} of {w.shape[1]} hidden channels; relative squared error of its output {error:.4f}")
    pruned.config = replace(config, expansions=tuple(hidden))
    rebuilt = SiamFC(pruned.config)
    rebuilt.load_state_dict(pruned.state_dict())  # the config rebuilds this very network
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_weights(rebuilt, args.out, {"pruned_from": str(args.weights), "pruned_blocks": args.blocks})
    print(f"wrote {args.out}: expansions {list(hidden)}")
    if args.holdout:
        z, x = crops(args.data, sorted(args.holdout), 60, config)
        check(original, rebuilt.eval(), z, x)
    return 0


def check(original: SiamFC, pruned: SiamFC, z: torch.Tensor, x: torch.Tensor) -> None:
    """The pruned network's peak against the original's on held-apart crops."""
    within, box_error = [], []
    with torch.no_grad():
        for s in range(0, len(x), 10):
            a, b = (m.maps(m.embed(z[s : s + 10]), m.backbone(x[s : s + 10])) for m in (original, pruned))
            pa, pb = (torch.sigmoid(o["cls"]) * torch.sigmoid(o["quality"]) for o in (a, b))
            for j in range(len(pa)):
                ia = np.unravel_index(int(pa[j].argmax()), pa[j].shape[-2:])
                ib = np.unravel_index(int(pb[j].argmax()), pb[j].shape[-2:])
                within.append(max(abs(ia[0] - ib[0]), abs(ia[1] - ib[1])) <= 1)
                ba, bb = a["box"][j][:, ia[0], ia[1]], b["box"][j][:, ia[0], ia[1]]
                box_error.append(float((ba - bb).abs().mean() / ba.mean().clamp(min=1e-6)))
    print(f"held-apart crops: peak within one cell of the original's {np.mean(within):.3f}; "
          f"box error at the original's peak (median) {np.median(box_error):.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
