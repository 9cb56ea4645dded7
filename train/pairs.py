"""(exemplar, search) pair sampling from the crop cache, with labels.

Pair kinds: ``pos`` (two frames of one sequence at most ``max_gap`` apart), ``paste`` (the same, with the
target pasted over another sequence's background), ``neg`` (search from another sequence: its own target sits in
the middle as a distractor, every label is negative), ``self`` and ``region`` (around any region of a frame, not the
annotated target: :mod:`train.regions`). Each index draws from its own seeded generator, so a
sample depends on (seed, index) alone: resuming at a step reproduces the data exactly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from tracker.config import ConfigError, ModelConfig

from . import augment, regions
from .curate import MANIFEST
from .heads import TRAIN_HEADS


@dataclass(frozen=True)
class PairConfig:
    """Sampling and augmentation; crop sizes, stride and response size come from the model's ``ModelConfig``."""

    radius: float = 16.0  # positives within this many search-crop pixels of the target centre (SiamFC's R)
    max_gap: int = 100  # exemplar and search frames at most this far apart
    p_paste: float = 0.2  # share of pairs whose target is pasted over another sequence's background
    p_neg: float = 0.15  # share of negative pairs
    # shares of pairs around any region rather than the annotated target (train.regions): one frame and an
    # augmented copy of it, and a region followed into a frame at most region_gap away
    p_self: float = 0.0
    p_region: float = 0.0
    region_gap: int = 3
    # box head: whether self and region pairs train the box and quality maps too (True) or only cls (False). A
    # region has no visible edges, so the exemplar does not show the width and height its label gives it; the
    # regression can only learn the mean shape from those pairs, and leans every box towards it
    region_boxes: bool = True
    rotation: float = 0.0  # self pairs: the search image turned by up to this many degrees
    scale_range: float = 0.25  # search scale jitter: exp(U(-ln(1+r), ln(1+r)))
    stretch: float = 0.15  # aspect stretch jitter, same form
    # both crops stretched alike (aspect, same form; 0: never): the pair shows an object of another shape than the
    # annotated one, so the box head learns to read the exemplar's extent rather than its training objects' shapes
    shape: float = 0.0
    shift: float = 48.0  # search shift, +- pixels at search scale
    scale_sigma: float = 0.12  # positive label strength exp(-0.5 (ln s / sigma)^2): teaches scale
    exemplar_jitter: float = 0.05  # exemplar scale jitter
    p_grey: float = 0.1
    p_flip: float = 0.5
    p_occlude: float = 0.15
    # box head: positives are the cells inside the target's box and within this many cells of its centre (both
    # axes; FCOS's centre sampling), so that every positive sees the target's middle
    center_cells: float = 1.5

    def __post_init__(self) -> None:
        shares = (self.p_paste, self.p_neg, self.p_self, self.p_region)
        if min(shares) < 0 or sum(shares) > 1:
            raise ConfigError("PairConfig: the pair shares p_paste, p_neg, p_self, p_region must be >= 0, sum <= 1")

    @property
    def kind_p(self) -> list[float]:
        """Probability of each of :data:`KINDS`."""
        rest = (self.p_paste, self.p_neg, self.p_self, self.p_region)
        return [max(0.0, 1 - sum(rest)), *rest]


KINDS = ("pos", "paste", "neg", "self", "region")


class PairDataset(Dataset):
    """Map-style dataset of ``length`` pairs over a curated crop cache (see :mod:`train.curate`), leaving out the
    sequences named in ``exclude``."""

    def __init__(
        self,
        cache_dir: str | Path,
        length: int,
        model: ModelConfig,
        cfg: PairConfig = PairConfig(),
        seed: int = 0,
        exclude: tuple[str, ...] = (),
    ):
        self.dir = Path(cache_dir)
        manifest = json.loads((self.dir / MANIFEST).read_text())
        self.cache_size = manifest["cache_size"]
        self.exemplar = manifest["exemplar"]
        self.model = model
        self.sequences = []
        for s in manifest["sequences"]:
            if s["name"] in exclude:  # videos held apart for validation
                continue
            valid = [i for i, f in enumerate(s["frames"]) if f and 0.1 <= f[1] / f[2] <= 10]
            if len(valid) >= 2:
                self.sequences.append((s["folder"], s["frames"], np.array(valid)))
        if not self.sequences:
            raise ValueError(f"{cache_dir}: no sequence with two usable frames")
        n = np.array([len(v) for _, _, v in self.sequences], float)
        self.seq_p = np.sqrt(n) / np.sqrt(n).sum()  # long sequences must not dominate
        self.length, self.cfg, self.seed = length, cfg, seed

    def __len__(self) -> int:
        return self.length

    def _load(self, seq: int, frame: int) -> tuple[np.ndarray, float, float]:
        folder, frames, _ = self.sequences[seq]
        name, w, h = frames[frame][:3]
        img = cv2.imread(str(self.dir / folder / name), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"cache file missing or corrupt: {self.dir / folder / name}")
        return img, w, h

    def _other(self, rng: np.random.Generator, seq: int) -> tuple[int, int]:
        other = int(rng.choice(len(self.sequences) - 1))
        other += other >= seq
        return other, int(rng.choice(self.sequences[other][2]))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        cfg, m = self.cfg, self.model
        zs, xs = m.exemplar_size, m.search_size
        rng = np.random.default_rng([self.seed, index])
        c = (self.cache_size - 1) / 2
        seq = int(rng.choice(len(self.sequences), p=self.seq_p))
        valid = self.sequences[seq][2]
        i = int(rng.choice(valid))
        near = valid[np.abs(valid - i) <= cfg.max_gap]
        j = int(rng.choice(near))
        kind = KINDS[rng.choice(len(KINDS), p=cfg.kind_p)]
        img_z, w, h = self._load(seq, i)

        # the object to follow (cache pixels): the annotated target, or any region (train.regions)
        if kind in ("self", "region"):
            frames, img_x = self.sequences[seq][1], img_z
            if kind == "region":  # off the target, which moves against the scene, into a neighbouring frame
                region = regions.random_region(rng, self.cache_size, self.exemplar, 0.3, frames[i])
                nearby = valid[(np.abs(valid - i) <= cfg.region_gap) & (valid != i)]
                k = int(rng.choice(nearby)) if len(nearby) else i
                img_k = self._load(seq, k)[0]
                moved = regions.follow(region, img_z, frames[i], img_k, frames[k]) if k != i else None
                region, img_x = (moved, img_k) if moved is not None else (region, img_z)
            else:
                region = regions.random_region(rng, self.cache_size, self.exemplar)
            if img_x is img_z and cfg.rotation > 0:
                img_x, region = regions.rotate(img_z, region, rng.uniform(-cfg.rotation, cfg.rotation))
        else:  # the annotated target, centred in its cached crop; a negative's search comes from another video,
            # cut at that video's target's scale (its own target, the size of the exemplar's, as a distractor)
            img_x, *size_x = self._load(*self._other(rng, seq)) if kind == "neg" else self._load(seq, j)
            region = regions.Region((c, c), (c, c), (w, h), tuple(size_x), float(self.exemplar))

        # shape: both crops stretched by b (widths x 1/b, heights x b), the object's aspect changed in both
        b = math.exp(rng.uniform(-1, 1) * math.log1p(cfg.shape)) if cfg.shape > 0 else 1.0
        shape = np.array([b, 1 / b])
        # exemplar: the context square with slight scale and shift jitter
        sz = region.context * math.exp(rng.uniform(-cfg.exemplar_jitter, cfg.exemplar_jitter))
        cz = np.array(region.exemplar_center) + rng.uniform(-2, 2, 2) * region.context / self.exemplar
        exemplar = augment.warp(img_z, tuple(cz), tuple(sz * shape), zs, img_z.mean((0, 1)))

        # search: scale s, aspect stretch a, shift d (search-crop pixels)
        s = math.exp(rng.uniform(-1, 1) * math.log1p(cfg.scale_range))
        a = math.exp(rng.uniform(-1, 1) * math.log1p(cfg.stretch))
        side = np.array([a, 1 / a]) * shape * s * region.search_context * xs / zs
        d = rng.uniform(-cfg.shift, cfg.shift, 2)
        centre = np.array(region.search_center) - d * side / xs  # the object lands at +d in the search crop
        search = augment.warp(img_x, tuple(centre), tuple(side), xs, img_x.mean((0, 1)))
        target = None if kind == "neg" else (float(d[0]), float(d[1]))
        tw, th = region.search_size[0] * xs / side[0], region.search_size[1] * xs / side[1]
        if kind == "paste":  # keep the target (+10% margin), replace the rest by another background
            img_b, _, _ = self._load(*self._other(rng, seq))
            cb = c + rng.uniform(-40, 40, 2)
            bs = self.exemplar * xs / zs * math.exp(rng.uniform(-0.4, 0.4))
            background = augment.warp(img_b, tuple(cb), (bs, bs), xs, img_b.mean((0, 1)))
            ox, oy = (xs - 1) / 2 + d
            x0, x1 = int(max(0, ox - 0.55 * tw)), int(min(xs, ox + 0.55 * tw + 1))
            y0, y1 = int(max(0, oy - 0.55 * th)), int(min(xs, oy + 0.55 * th + 1))
            background[y0:y1, x0:x1] = search[y0:y1, x0:x1]
            search = background
        if target is not None and rng.random() < cfg.p_occlude:  # a patch of another sequence over part of it
            patch, _, _ = self._load(*self._other(rng, seq))
            pw, ph = int(tw * rng.uniform(0.2, 0.5)) + 1, int(th * rng.uniform(0.2, 0.5)) + 1
            px = int(np.clip((xs - 1) / 2 + d[0] + rng.uniform(-0.5, 0.5) * tw - pw / 2, 0, xs - 1 - pw))
            py = int(np.clip((xs - 1) / 2 + d[1] + rng.uniform(-0.5, 0.5) * th - ph / 2, 0, xs - 1 - ph))
            search[py : py + ph, px : px + pw] = cv2.resize(patch, (pw, ph))

        if rng.random() < cfg.p_flip:
            exemplar, search = exemplar[:, ::-1], search[:, ::-1]
            target = None if target is None else (-target[0], target[1])
        grey = rng.random() < cfg.p_grey
        exemplar = augment.photometric(np.ascontiguousarray(exemplar), rng, grey)
        search = augment.photometric(np.ascontiguousarray(search), rng, grey)
        targets = TRAIN_HEADS[m.head].labels(m, cfg, None if target is None else (*target, tw, th), s)
        if kind in ("self", "region") and not cfg.region_boxes and m.head == "box":
            targets = (*targets[:2], np.full_like(targets[2], np.nan), *targets[3:])  # no box: the loss skips it
        return (
            torch.from_numpy(exemplar).permute(2, 0, 1),
            torch.from_numpy(search).permute(2, 0, 1),
            *(torch.from_numpy(t) for t in targets),
        )
