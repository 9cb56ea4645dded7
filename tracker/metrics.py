"""One-pass evaluation metrics (OTB protocol). Boxes are (N, 4) ``x, y, w, h`` arrays; NaN ground-truth rows
(target absent) are excluded by the callers' masks."""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0, 1, 21)
PRECISION_THRESHOLDS = np.arange(0, 51)


def ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) box arrays."""
    x0 = np.maximum(pred[:, 0], gt[:, 0])
    y0 = np.maximum(pred[:, 1], gt[:, 1])
    x1 = np.minimum(pred[:, 0] + pred[:, 2], gt[:, 0] + gt[:, 2])
    y1 = np.minimum(pred[:, 1] + pred[:, 3], gt[:, 1] + gt[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def centre_errors(pred: np.ndarray, gt: np.ndarray, normalise: bool = False) -> np.ndarray:
    """Distance between box centres in pixels, or in units of the ground-truth size when ``normalise``."""
    d = (pred[:, :2] + pred[:, 2:] / 2) - (gt[:, :2] + gt[:, 2:] / 2)
    if normalise:
        d = d / np.maximum(gt[:, 2:], 1e-12)
    return np.hypot(d[:, 0], d[:, 1])


def success_curve(iou: np.ndarray) -> np.ndarray:
    """Share of frames with IoU > t for each of the 21 thresholds t in 0..1."""
    return np.array([(iou > t).mean() for t in IOU_THRESHOLDS]) if len(iou) else np.zeros(len(IOU_THRESHOLDS))


def precision_curve(err: np.ndarray, thresholds: np.ndarray = PRECISION_THRESHOLDS) -> np.ndarray:
    """Share of frames with centre error <= t for each threshold t."""
    return np.array([(err <= t).mean() for t in thresholds]) if len(err) else np.zeros(len(thresholds))


def summarise(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Success AUC, precision at 20 px, normalised precision at 0.2 and mean IoU over frames with a target."""
    mask = np.isfinite(gt).all(1)
    p, g = pred[mask], gt[mask]
    iou = ious(p, g)
    return {
        "auc": float(success_curve(iou).mean()),
        "precision": float((centre_errors(p, g) <= 20).mean()) if len(g) else 0.0,
        "norm_precision": float((centre_errors(p, g, normalise=True) <= 0.2).mean()) if len(g) else 0.0,
        "mean_iou": float(iou.mean()) if len(g) else 0.0,
        "frames": int(mask.sum()),
    }
