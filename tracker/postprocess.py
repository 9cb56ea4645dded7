"""Pure functions on response maps: upsampling, scale penalty, cosine window, peak location, peak sharpness."""

from __future__ import annotations

import cv2
import numpy as np

LOGIT_LIMIT = 1e4  # responses are clamped to +-this: finite whatever the weights, far beyond any real response


def finite(responses: np.ndarray) -> np.ndarray:
    """Responses as float32 with NaN -> ``-LOGIT_LIMIT`` (never a peak) and +-inf clamped to +-``LOGIT_LIMIT``.

    Corrupt or diverged weights can produce NaN or inf; from here on every number the tracker derives stays
    finite, and such a response simply looks like a lost target.
    """
    r = np.asarray(responses, dtype=np.float32)
    if r.size and float(np.abs(r).max()) <= LOGIT_LIMIT:  # the usual case, one pass (a NaN fails the test)
        return r
    return np.clip(np.nan_to_num(r, nan=-LOGIT_LIMIT), -LOGIT_LIMIT, LOGIT_LIMIT)


def finite_outputs(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every named output of the network through :func:`finite`; box distances also kept >= 0."""
    return {name: np.maximum(finite(v), 0.0) if name == "box" else finite(v) for name, v in outputs.items()}


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
    """Index of the scale whose penalised peak is highest; every scale but the middle one is penalised.

    ``responses`` are raw (before the sigmoid), as in SiamFC: near a saturated sigmoid the penalty would
    outweigh any real preference for a scale. The penalty scales the peak's magnitude, ``peak - (1 - penalty)
    * |peak|``, so it lowers a negative peak as well.
    """
    peaks = responses.reshape(len(responses), -1).max(axis=1).astype(np.float64)
    mid = len(responses) // 2
    cost = np.where(np.arange(len(responses)) == mid, 0.0, (1.0 - penalty) * np.abs(peaks))
    return int(np.argmax(peaks - cost))


def locate_peak(response: np.ndarray, window: np.ndarray, window_influence: float) -> tuple[float, float]:
    """Peak of a response blended with a cosine window, as ``(dx, dy)`` from the map's centre, in map cells."""
    r = response - response.min()
    r = r / (r.sum() + 1e-16)
    r = (1.0 - window_influence) * r + window_influence * window
    iy, ix = np.unravel_index(int(np.argmax(r)), r.shape)
    c = (r.shape[0] - 1) / 2
    return float(ix - c), float(iy - c)


def peak_to_sidelobe(response: np.ndarray, exclude: int) -> float:
    """Peak-to-sidelobe ratio (PSR): how many standard deviations the peak stands above the rest of the map.

    The sidelobe is every cell more than ``exclude`` cells (Chebyshev distance) from the peak. PSR ignores any
    positive scale and offset of the response, so one threshold fits any ``out_scale`` and bias. A flat map
    gives 0; a lone peak over a perfectly flat sidelobe is capped at 1000 rather than dividing by zero.
    """
    iy, ix = np.unravel_index(int(np.argmax(response)), response.shape)
    mask = np.ones(response.shape, dtype=bool)
    mask[max(0, iy - exclude) : iy + exclude + 1, max(0, ix - exclude) : ix + exclude + 1] = False
    sidelobe = response[mask].astype(np.float64)
    if sidelobe.size == 0:
        return 0.0
    gap = float(response[iy, ix]) - float(sidelobe.mean())
    if not gap > 0:
        return 0.0
    return float(min(gap / max(float(sidelobe.std()), gap * 1e-3), 1e3))


def peak_window(response: np.ndarray, size: int, at: tuple[int, int] | None = None) -> np.ndarray:
    """The ``size x size`` part of ``response`` around its peak, or the cell ``at`` (row, column), shifted inward
    at the borders.

    PSR grows with the map's area (the highest of more background cells stands further out), so the lost
    search's larger map is judged on a window the size of the tracking search's map: one threshold fits both.
    """
    iy, ix = np.unravel_index(int(np.argmax(response)), response.shape) if at is None else at
    y0 = int(np.clip(iy - size // 2, 0, max(0, response.shape[0] - size)))
    x0 = int(np.clip(ix - size // 2, 0, max(0, response.shape[1] - size)))
    return response[y0 : y0 + size, x0 : x0 + size]


def mosaic(responses: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Tile ``rows * cols`` response maps ``(rows * cols, r, r)``, in row-major order, into one
    ``(rows * r, cols * r)`` map; search crops placed ``r * stride`` crop pixels apart give maps that abut."""
    r = responses.shape[-1]
    return responses.reshape(rows, cols, r, r).transpose(0, 2, 1, 3).reshape(rows * r, cols * r)
