"""A synthetic scene (textured objects drifting over a textured background): frames without a dataset, for
int8 calibration, speed measurements and the tests' sequences (tests/synthetic.py)."""

from __future__ import annotations

import cv2
import numpy as np


def texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random colour texture (h, w, 3) uint8 with features about ``cell`` pixels wide."""
    small = rng.integers(0, 256, (max(2, h // cell), max(2, w // cell), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def synthetic_frames(
    n: int, size: tuple[int, int], targets: int = 1, seed: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` BGR uint8 frames of ``size`` (width, height) and the boxes (n, targets, 4) ``x, y, w, h`` (0-based
    pixels) of ``targets`` objects drifting across a textured background."""
    rng = np.random.default_rng(seed)
    width, height = size
    background = texture(rng, height, width, 12) // 2 + 40
    ow, oh = max(8, width // 12), max(8, height // 12)
    objects = [texture(rng, oh, ow, 6) for _ in range(targets)]
    start = rng.uniform([0, 0], [width - 2 * ow, height - 2 * oh], (targets, 2))
    step = rng.uniform(-2, 2, (targets, 2))
    frames, boxes = [], np.zeros((n, targets, 4))
    for i in range(n):
        frame = background.copy()
        for k, obj in enumerate(objects):
            x, y = np.clip(start[k] + i * step[k], 0, [width - ow, height - oh]).astype(int)
            frame[y : y + oh, x : x + ow] = obj
            boxes[i, k] = (x, y, ow, oh)
        frames.append(frame)
    return frames, boxes
