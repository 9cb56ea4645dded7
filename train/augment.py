"""Photometric and geometric augmentation on uint8 BGR crops."""

from __future__ import annotations

import cv2
import numpy as np


def warp(
    image: np.ndarray, center: tuple[float, float], side: tuple[float, float], out: int, pad: np.ndarray
) -> np.ndarray:
    """Crop a ``side = (sw, sh)`` rectangle centred on ``center`` and resize it to ``out x out`` (aspect stretch
    when sw != sh); beyond the image is ``pad`` colour."""
    sx, sy = out / side[0], out / side[1]
    c = (out - 1) / 2
    m = np.array([[sx, 0, c - sx * center[0]], [0, sy, c - sy * center[1]]])
    return cv2.warpAffine(image, m, (out, out), flags=cv2.INTER_LINEAR, borderValue=tuple(float(v) for v in pad))


def colour_jitter(img: np.ndarray, rng: np.random.Generator, strength: float = 0.3) -> np.ndarray:
    """Random brightness, contrast and per-channel gain."""
    x = img.astype(np.float32)
    gain = 1 + rng.uniform(-strength, strength) + rng.uniform(-0.1, 0.1, 3)
    mean = x.mean()
    contrast = 1 + rng.uniform(-strength, strength)
    x = (x - mean) * contrast + mean * gain + rng.uniform(-20, 20)
    return np.clip(x, 0, 255).astype(np.uint8)


def greyscale(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def blur(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur or a linear motion blur in a random direction."""
    if rng.random() < 0.5:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
    k = int(rng.integers(5, 13))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2] = 1.0 / k
    rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    return cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))


def down_up(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Down-sample by 2-4x and back: imitates the detail of tiny, distant targets."""
    f = rng.uniform(2.0, 4.0)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(4, int(w / f)), max(4, int(h / f))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def photometric(img: np.ndarray, rng: np.random.Generator, grey: bool) -> np.ndarray:
    """Colour jitter always; greyscale when ``grey``; blur and down-up sampling sometimes."""
    img = colour_jitter(img, rng)
    if grey:
        img = greyscale(img)
    if rng.random() < 0.15:
        img = blur(img, rng)
    if rng.random() < 0.1:
        img = down_up(img, rng)
    return img
