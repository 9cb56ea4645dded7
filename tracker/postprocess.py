"""Pure functions on response maps: upsampling, scale penalty, cosine window, peak location."""

from __future__ import annotations

import cv2
import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function; the network is trained with a logistic loss, so this turns responses into scores."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


def hann_window(size: int) -> np.ndarray:
    """2-D cosine (Hann) window of side ``size``, normalised to sum 1."""
    w = np.outer(np.hanning(size), np.hanning(size)).astype(np.float32)
    return w / w.sum()


def upsample(responses: np.ndarray, factor: int) -> np.ndarray:
    """Bicubic upsampling of ``(S, r, r)`` responses to ``(S, r * factor, r * factor)``."""
    size = responses.shape[-1] * factor
    return np.stack([cv2.resize(r, (size, size), interpolation=cv2.INTER_CUBIC) for r in responses])


def select_scale(responses: np.ndarray, penalty: float) -> int:
    """Index of the scale whose (penalised) peak is highest; every scale but the middle one is penalised."""
    peaks = responses.reshape(len(responses), -1).max(axis=1)
    mid = len(responses) // 2
    peaks = peaks * np.where(np.arange(len(responses)) == mid, 1.0, penalty)
    return int(np.argmax(peaks))


def locate_peak(response: np.ndarray, window: np.ndarray, window_influence: float) -> tuple[float, float]:
    """Peak of a response blended with a cosine window, as ``(dx, dy)`` from the map's centre, in map cells."""
    r = response - response.min()
    r = r / (r.sum() + 1e-16)
    r = (1.0 - window_influence) * r + window_influence * window
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    c = (r.shape[0] - 1) / 2
    return float(ix - c), float(iy - c)
