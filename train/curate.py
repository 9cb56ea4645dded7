"""Crop cache: every annotated frame is cropped once around its target at a fixed scale, so an epoch never decodes
a full frame. The target's SiamFC context square maps to ``EXEMPLAR`` cache pixels; the cached crop is
``CACHE_SIZE`` pixels, enough margin for a search region of 2 context squares (SiamFC's 255 / 127) under the
scale and shift augmentation. These are the cache's resolution, not the model's geometry: the pair sampler
resamples cache pixels to the model's exemplar and search sizes (``ModelConfig``)."""

from __future__ import annotations

import hashlib
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from tracker import atomic
from tracker.datasets import Sequence, read_dataset
from tracker.geometry import Box, context_size, crop_and_resize

EXEMPLAR = 127  # context square -> 127 px, as the exemplar crop
CACHE_SIZE = 351  # 351 / 127 = 2.76 context sizes: the 255 search crop plus +-25% scale and shift margin
MANIFEST = "manifest.json"
# 2: each frame also records its cache scale and the target centre in frame pixels, which map a region of one
# cached crop into a neighbouring frame's
CACHE_FORMAT = 2


def _crop_sequence(args: tuple[Sequence, Path, str]) -> dict:
    seq, out_dir, prefix = args
    folder = out_dir / f"{prefix}{seq.name}"
    folder.mkdir(parents=True, exist_ok=True)
    frames, unreadable = [], []
    for i, (path, box) in enumerate(zip(seq.frames, seq.boxes, strict=True)):
        if not (np.isfinite(box).all() and box[2] > 1 and box[3] > 1):
            frames.append(None)
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:  # kept out of the pairs, and counted in the manifest and the summary line
            unreadable.append(Path(path).name)
            frames.append(None)
            continue
        b = Box(*box)
        side = context_size(b.w, b.h) * CACHE_SIZE / EXEMPLAR
        pad = image.reshape(-1, 3).mean(0)
        crop = crop_and_resize(image, b.center, side, CACHE_SIZE, pad)
        name = f"{i:06d}.jpg"
        if not cv2.imwrite(str(folder / name), crop, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise OSError(f"cannot write the crop cache file {folder / name}")
        s = CACHE_SIZE / side
        cx, cy = b.center
        # target size in cache pixels (centred), cache pixels per frame pixel, target centre in frame pixels
        frames.append([name, b.w * s, b.h * s, s, cx, cy])
    return {"name": seq.name, "folder": folder.name, "frames": frames, "unreadable": unreadable}


def cache_key(data_dirs: list[Path]) -> str:
    """Folder name for a set of data directories: same data -> same cache, reused across runs."""
    text = "|".join(str(Path(d).resolve()) for d in data_dirs) + f"|{CACHE_SIZE}|{EXEMPLAR}|{CACHE_FORMAT}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def curate(data_dirs: list[str | Path], cache_root: str | Path, workers: int = 2) -> Path:
    """Build (or reuse) the crop cache for ``data_dirs``; returns the cache folder holding ``manifest.json``."""
    data_dirs = [Path(d) for d in data_dirs]
    out_dir = Path(cache_root) / cache_key(data_dirs)
    if (out_dir / MANIFEST).is_file():
        return out_dir
    jobs = []
    for k, d in enumerate(data_dirs):
        jobs += [(s, out_dir, f"{k}_") for s in read_dataset(d)]  # raises for a folder without sequences
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max(1, workers)) as pool:
        sequences = list(tqdm(pool.map(_crop_sequence, jobs), total=len(jobs), desc="curating crop cache"))
    bad = {s["name"]: s["unreadable"] for s in sequences if s["unreadable"]}
    if bad:
        names = ", ".join(f"{name} ({len(files)})" for name, files in bad.items())
        print(f"curate: warning: {sum(map(len, bad.values()))} unreadable frame(s) left out: {names}", file=sys.stderr)
    atomic.write_text(
        out_dir / MANIFEST, json.dumps({"cache_size": CACHE_SIZE, "exemplar": EXEMPLAR, "sequences": sequences})
    )
    return out_dir
