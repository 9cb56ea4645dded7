"""The appearance embedding of a trained network (``tracker.appearance``), and the verification ROC it is chosen by.

    python -m train.appearance --weights W --data TRAIN_DIR --holdout SEQ [SEQ ...] [--kind centred]

Every ``--every``-th frame of each training video gives the target's exemplar crop (the centre of its cached crop,
:mod:`train.curate`) and, on every third of those frames, up to four background windows beside it; the network's
exemplar branch turns each into features (C, k, k), which the network keeps frozen. Four embeddings of those
features are measured, on the videos named by ``--holdout`` (held apart from the network's training too):

- ``raw``: the features flattened and normalised;
- ``centred``: the same, centred first on their mean over the other videos' crops;
- ``box``: the features averaged over the cells the target's box covers, centred on that average's mean over the
  other videos' crops (a background window is pooled over a box of the target's size);
- ``colour``: ``centred`` beside the box's hue-saturation histogram, centred on its mean over the other videos'
  crops (a similarity is the mean of the two cues');
- ``triplet``: a learned linear projection of the centred features, batch-hard triplet loss on cosine distance;
- ``contrastive``: the same projection, contrastive loss on cosine distance.

The ROC: per held-apart video, the first frame's vector is the anchor (the tracker's ``init``); its later frames
are the positives, the other held-apart videos' targets and its own background windows the negatives; AUROC per
video and pooled. The ``--kind`` chosen is written beside the weights (``tracker.appearance.embedding_path``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from tracker import TrackerConfig
from tracker.appearance import REDETECT_CHECK, Embedding, box_pool, colour_histograms, embedding_path, is_redetect_check
from tracker.errors import TrackerError
from tracker.eval import absence
from tracker.weights import load_weights

from .curate import CACHE_SIZE, EXEMPLAR, MANIFEST, curate

KINDS = ("raw", "centred", "box", "colour", "triplet", "contrastive")
TRIPLET_MARGIN = 0.3  # cosine distance by which the farthest positive must beat the nearest negative
CONTRASTIVE_MARGIN = 0.6  # cosine distance beyond which a dissimilar pair no longer counts
BACKGROUND_OFFSET = 112  # cache pixels from the target's centre to a background window's (0.9 context squares)


def features(weights: Path, cache_dir: Path, every: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Exemplar features of the cached crops: ``feats`` (N, C, k, k), ``video`` (N,) index into ``names``,
    ``background`` (N,) bool, ``extents`` (N, 2) the target's box (w, h) as fractions of the crop's side,
    ``colour`` (N, D) the box's colour histograms (``tracker.appearance.colour_histograms``)."""
    model = load_weights(weights).eval()
    manifest = json.loads((cache_dir / MANIFEST).read_text())
    rng = np.random.default_rng(seed)
    lo, off = (CACHE_SIZE - EXEMPLAR) // 2, BACKGROUND_OFFSET
    feats, video, background, extents, colour = [], [], [], [], []
    for v, seq in enumerate(manifest["sequences"]):
        crops, kinds, boxes = [], [], []
        for i, frame in enumerate(seq["frames"]):
            if frame is None or i % every:
                continue
            image = cv2.imread(str(cache_dir / seq["folder"] / frame[0]), cv2.IMREAD_COLOR)
            if image is None:
                continue
            crops.append(image[lo : lo + EXEMPLAR, lo : lo + EXEMPLAR])
            kinds.append(False)
            boxes.append((frame[1] / EXEMPLAR, frame[2] / EXEMPLAR))  # the cache's context square is EXEMPLAR px
            if (i // every) % 3 == 0:
                for dx, dy in ((-off, -off), (off, off), (off, -off), (-off, off)):
                    if rng.random() < 0.5:
                        y, x = lo + dy, lo + dx
                        crops.append(image[y : y + EXEMPLAR, x : x + EXEMPLAR])
                        kinds.append(True)
                        boxes.append(boxes[-1])
        for start in range(0, len(crops), 64):
            batch = torch.from_numpy(np.stack(crops[start : start + 64])).permute(0, 3, 1, 2).float()
            with torch.inference_mode():
                feats.append(model.embed(batch).float().numpy())
        video += [v] * len(crops)
        background += kinds
        extents += boxes
        if crops:
            colour.append(colour_histograms(np.stack(crops), np.array(boxes)))
    names = np.array([s["name"] for s in manifest["sequences"]])
    video_, background_ = np.array(video), np.array(background)
    extents_ = np.array(extents, dtype=np.float32).reshape(-1, 2)
    return {"feats": np.concatenate(feats), "video": video_, "background": background_, "names": names,
            "extents": extents_, "colour": np.concatenate(colour)}  # fmt: skip


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a positive scores above a negative, ties counting half."""
    is_positive = np.arange(len(positive) + len(negative)) < len(positive)
    value = absence.auroc(np.concatenate([positive, negative]), is_positive)
    return float("nan") if value is None else value


def verification_roc(vectors: np.ndarray, video: np.ndarray, background: np.ndarray, held: list[int]) -> dict:
    """AUROC per held-apart video and pooled, of unit ``vectors`` (see the module's docstring)."""
    per_video, pos_all, neg_all = {}, [], []
    for v in held:
        targets = np.where((video == v) & ~background)[0]
        if len(targets) < 2:
            continue
        anchor = vectors[targets[0]]
        others = np.isin(video, held) & (video != v) & ~background
        pos = vectors[targets[1:]] @ anchor
        neg = np.concatenate([vectors[others] @ anchor, vectors[(video == v) & background] @ anchor])
        per_video[int(v)] = auroc(pos, neg)
        pos_all.append(pos)
        neg_all.append(neg)
    return {"per_video": per_video, "pooled": auroc(np.concatenate(pos_all), np.concatenate(neg_all))}


def batch_hard_triplet(dist: torch.Tensor, same: torch.Tensor, anchors: torch.Tensor, margin: float) -> torch.Tensor:
    """``max(0, d(a, p) - d(a, n) + margin)`` per anchor, its farthest positive and nearest negative (Hermans et
    al. 2017), averaged over ``anchors`` (bool, rows that have positives)."""
    eye = torch.eye(len(dist), dtype=torch.bool)
    d_pos = torch.where(same & ~eye, dist, torch.full_like(dist, -1.0)).max(1).values
    d_neg = torch.where(~same & ~eye, dist, torch.full_like(dist, 9.0)).min(1).values
    return F.relu(d_pos - d_neg + margin)[anchors].mean()


def pair_contrastive(dist: torch.Tensor, same: torch.Tensor, margin: float) -> torch.Tensor:
    """Contrastive loss (Hadsell, Chopra and LeCun 2006) over every pair of the batch: ``y = 1`` similar (same
    object), ``L = y d^2 + (1 - y) max(0, margin - d)^2``, averaged."""
    off = ~torch.eye(len(dist), dtype=torch.bool)
    loss = same.float() * dist**2 + (~same).float() * F.relu(margin - dist) ** 2
    return loss[off].mean()


def fit_projection(
    x: torch.Tensor, video: np.ndarray, background: np.ndarray, loss: str, steps: int, dim: int, seed: int
) -> np.ndarray:
    """A linear projection (dim, C * k * k) of centred features ``x``, trained on batches of 16 videos x (4
    target + 2 background crops); a background crop is never anyone's positive."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(x.shape[1], dim, bias=False))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-2)
    videos = np.unique(video[~background])
    for _ in range(steps):
        chosen = rng.choice(videos, min(16, len(videos)), replace=False)
        idx = []
        for v in chosen:
            idx += list(rng.choice(np.where((video == v) & ~background)[0], 4))
            bg = np.where((video == v) & background)[0]
            idx += list(rng.choice(bg, 2)) if len(bg) else []
        idx = np.array(idx)
        e = F.normalize(net(x[idx]), dim=1)
        dist = 1 - e @ e.T
        bg = torch.tensor(background[idx])
        same = torch.tensor(video[idx][:, None] == video[idx][None]) & ~bg[:, None] & ~bg[None]
        if loss == "triplet":
            value = batch_hard_triplet(dist, same, ~bg, TRIPLET_MARGIN)
        else:
            value = pair_contrastive(dist, same, CONTRASTIVE_MARGIN)
        opt.zero_grad()
        value.backward()
        opt.step()
    return net[1].weight.detach().numpy().copy()


def embeddings(data: dict[str, np.ndarray], held: list[int], steps: int, seed: int) -> dict[str, Embedding]:
    """Every kind of :data:`KINDS`, its mean (and projection) taken from the videos not in ``held`` only."""
    feats, video, background = data["feats"], data["video"], data["background"]
    train = ~np.isin(video, held)
    zero = np.zeros(feats.shape[1:], np.float32)
    mean = feats[train].mean(0)
    out = {"raw": Embedding(zero), "centred": Embedding(mean)}
    out["box"] = Embedding(box_pool(feats[train], data["extents"][train]).mean(0).astype(np.float32), pool="box")
    out["colour"] = Embedding(mean, colour_mean=data["colour"][train].mean(0))
    x = torch.tensor((feats[train] - mean).reshape(int(train.sum()), -1))
    for loss in ("triplet", "contrastive"):
        projection = fit_projection(x, video[train], background[train], loss, steps, 128, seed)
        out[loss] = Embedding(mean, projection)
    return out


def settings(pairs: list[str]) -> dict[str, float | int]:
    """``["redetect_threshold=0.05", ...]`` -> ``{"redetect_threshold": 0.05, ...}``, each a numeric TrackerConfig
    field.

    Raises:
        TrackerError: a malformed pair, or a name that is no TrackerConfig field.
    """
    known = {f.name for f in dataclasses.fields(TrackerConfig)}
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in known:
            raise TrackerError(f"--setting {pair}: {name!r} is not a TrackerConfig field")
        try:
            out[name] = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
        except ValueError:
            raise TrackerError(f"--setting {pair}: the value must be a number") from None
    TrackerConfig(**out)  # in range
    return out


def redetect_check(pairs: list[str]) -> dict[str, float | int]:
    """``--redetect-check`` pairs as :func:`settings`, each one of ``tracker.appearance.REDETECT_CHECK`` and
    ``verify_redetect`` among them ({} for none).

    Raises:
        TrackerError: as :func:`settings`; a field that is not the re-detection check's, or no verify_redetect.
    """
    out = settings(pairs)
    if not is_redetect_check(out):
        raise TrackerError(f"--redetect-check takes {', '.join(REDETECT_CHECK)}, verify_redetect among them; got "
                           f"{', '.join(out)}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.appearance", description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="the network's safetensors file")
    p.add_argument("--data", nargs="+", required=True, help="training dataset folder(s), as for `python -m train`")
    p.add_argument("--holdout", nargs="+", required=True, help="videos held apart from the network's training")
    p.add_argument("--kind", choices=KINDS, default="centred", help="the embedding written (default centred)")
    p.add_argument("--every", type=int, default=3, help="use every N-th frame (default 3)")
    p.add_argument("--steps", type=int, default=1500, help="steps of the learned projections (default 1500)")
    p.add_argument("--cache", default="cache", help="crop cache root (default ./cache)")
    p.add_argument("--out", help="embedding file to write (default: beside the weights)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threshold", type=float, help="the verify_threshold calibrated for this embedding "
        "(tools/calibrate_verifier.py), recorded in the file for `track --verify` and tracker.evaluate"
    )  # fmt: skip
    p.add_argument(
        "--setting", action="append", default=[], metavar="NAME=VALUE", help="a TrackerConfig field calibrated "
        "with --threshold (tools/calibrate_found.py), recorded beside it; repeatable"
    )  # fmt: skip
    p.add_argument(
        "--redetect-check", action="append", default=[], metavar="NAME=VALUE", help="the re-detection check the "
        "tracker applies by default (verify_redetect, and the re-detection's redetect_threshold, redetect_fraction, "
        "verify_every; tools/calibrate_found.py), recorded in the file; repeatable"
    )  # fmt: skip
    args = p.parse_args(argv)
    try:
        extra = settings(args.setting)  # checked before the features are computed
        check = redetect_check(args.redetect_check)
        weights = Path(args.weights)
        cache_dir = curate(args.data, args.cache)
        data = features(weights, cache_dir, args.every, args.seed)
        names = list(data["names"])
        missing = [h for h in args.holdout if h not in names]
        if missing:
            raise TrackerError(f"--holdout: no sequence named {', '.join(missing)} in --data")
        held = [names.index(h) for h in args.holdout]
        kinds = embeddings(data, held, args.steps, args.seed)
        rows = {}
        print(f"verification ROC on {len(held)} held-apart videos ({', '.join(args.holdout)})")
        print("| embedding | " + " | ".join(args.holdout) + " | pooled |")
        print("|---|" + "---|" * (len(held) + 1))
        for kind, emb in kinds.items():
            vectors = emb(data["feats"], data["extents"], histograms=data["colour"])
            roc = verification_roc(vectors, data["video"], data["background"], held)
            rows[kind] = roc
            cells = " | ".join(f"{roc['per_video'].get(v, float('nan')):.3f}" for v in held)
            print(f"| {kind} | {cells} | {roc['pooled']:.3f} |")
        out = Path(args.out) if args.out else embedding_path(weights)
        info = {"kind": args.kind, "holdout": args.holdout, "every": args.every, "steps": args.steps,
                "pooled_auroc": {k: round(r["pooled"], 4) for k, r in rows.items()}}  # fmt: skip
        if args.threshold is not None:
            info["threshold"] = args.threshold
        if extra:
            info["settings"] = extra
        if check:
            info["redetect_check"] = check
        kinds[args.kind].save(out, weights, info)
        print(f"wrote the {args.kind} embedding to {out}")
    except (TrackerError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
