"""Generated sequences for tests: a textured object moving and changing scale over a textured background."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tracker.scene import texture


def make_sequence(
    n: int = 40, size: tuple[int, int] = (320, 240), seed: int = 0, scale_change: float = 1.3
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (BGR uint8) and ground-truth boxes (n, 4) x, y, w, h of a moving, rescaling textured object."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = texture(rng, height, width, 12) // 2 + 40
    obj = texture(rng, 64, 64, 6)
    frames, boxes = [], []
    t = np.linspace(0, 1, n)
    cx = width * (0.3 + 0.4 * t)
    cy = height * (0.5 + 0.2 * np.sin(2 * np.pi * t))
    s = 1 + (scale_change - 1) * t
    for i in range(n):
        w, h = 40 * s[i], 32 * s[i]
        frame = background.copy()
        x0, y0 = int(round(cx[i] - w / 2)), int(round(cy[i] - h / 2))
        wi, hi = int(round(w)), int(round(h))
        frame[y0 : y0 + hi, x0 : x0 + wi] = cv2.resize(obj, (wi, hi))
        frames.append(frame)
        boxes.append((x0, y0, wi, hi))
    return frames, np.array(boxes, dtype=np.float64)


def make_occluded_sequence(
    n: int = 60,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    absent: tuple[int, int] = (20, 35),
    jump: tuple[float, float] = (90.0, 30.0),
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames and boxes (n, 4) of a textured object that leaves the view for frames ``absent[0]`` to
    ``absent[1] - 1`` (NaN boxes) and comes back ``jump`` = (dx, dy) pixels away from where it left.

    The object moves slowly and keeps its size, so the only hard part is the absence and the jump.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    background = texture(rng, height, width, 12) // 2 + 40
    obj = texture(rng, 32, 40, 6)
    frames, boxes = [], []
    for i in range(n):
        x0, y0 = width * 0.3 + 0.8 * i, height * 0.4 + 0.3 * i
        if i >= absent[1]:
            x0, y0 = x0 + jump[0], y0 + jump[1]
        x0, y0 = int(round(x0)), int(round(y0))
        frame = background.copy()
        if absent[0] <= i < absent[1]:
            boxes.append((np.nan,) * 4)
        else:
            frame[y0 : y0 + 32, x0 : x0 + 40] = obj
            boxes.append((x0, y0, 40, 32))
        frames.append(frame)
    return frames, np.array(boxes, dtype=np.float64)


def write_dataset(root: Path, seeds: dict[str, int], n: int, absent: tuple[int, ...] = ()) -> Path:
    """Sequences of :func:`make_sequence` (one per name, from its seed) in the plain layout under ``root``
    (``<name>/img/0000.jpg...`` + ``groundtruth.txt``), the frames of ``absent`` marked ``nan``; returns ``root``."""
    for name, seed in seeds.items():
        frames, boxes = make_sequence(n=n, seed=seed)
        (root / name / "img").mkdir(parents=True)
        for i, frame in enumerate(frames):
            cv2.imwrite(str(root / name / "img" / f"{i:04d}.jpg"), frame)
        rows = [",".join(f"{v:g}" for v in b) for b in boxes]
        for i in absent:
            rows[i] = "nan,nan,nan,nan"
        (root / name / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return root


def make_shape_sequence(
    n: int = 40, size: tuple[int, int] = (320, 240), seed: int = 0, shape: tuple[int, int] = (36, 54)
) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames and boxes (n, 4) of a textured pentagon of ``shape`` (w, h) gliding over a textured background: an
    object like no training target (a thin tower is (10, 80), a flat barge (90, 14))."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = texture(rng, height, width, 12) // 2 + 40
    ow, oh = shape
    obj = texture(rng, oh, ow, 5)
    mask = np.zeros((oh, ow), np.uint8)
    corners = np.array([[ow / 2, 0], [ow, oh * 0.4], [ow * 0.7, oh], [ow * 0.3, oh], [0, oh * 0.4]], np.int32)
    cv2.fillPoly(mask, [corners], 1)
    frames, boxes = [], []
    for i in range(n):
        frame = background.copy()
        x, y = int(width * 0.3 + 2.5 * i), int(height * 0.3 + 20 * np.sin(i / 6))
        region = frame[y : y + oh, x : x + ow]
        region[mask > 0] = obj[mask > 0]
        frames.append(frame)
        boxes.append((x, y, ow, oh))
    return frames, np.array(boxes, dtype=np.float64)
