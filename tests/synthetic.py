"""Generated sequences for tests: a textured object moving and changing scale over a textured background."""

from __future__ import annotations

import numpy as np
import cv2


def texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth random colour texture with features about ``cell`` pixels wide."""
    small = rng.integers(0, 256, (max(2, h // cell), max(2, w // cell), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


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
