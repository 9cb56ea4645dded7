"""One-pass evaluation metrics (OTB protocol). Boxes are (N, 4) ``x, y, w, h`` arrays in pixels; NaN
ground-truth rows (target absent) are excluded from the box metrics and scored by :func:`presence` instead.

Definitions (as in the OTB toolkit and pytracking):

- success: share of frames with IoU > t for 21 thresholds t = 0, 0.05, ..., 1; its mean is the success AUC
  (so a perfect tracker scores 20/21, because no IoU exceeds 1).
- precision: share of frames whose centre error is <= t pixels; "precision" is the value at 20 px.
- normalised precision: centre error in units of the ground-truth width and height, per axis, before the
  distance; "norm_precision" is the share within 0.2 (its curve spans 0..0.5).
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0, 1, 21)
PRECISION_THRESHOLDS = np.arange(0, 51)
NORM_PRECISION_THRESHOLDS = np.linspace(0, 0.5, 51)
PRECISION_AT = 20.0  # pixels
NORM_PRECISION_AT = 0.2  # ground-truth sizes
# a sequence a tracker failed: success AUC below FAIL_AUC, or its box off the target (IoU 0 on a frame that shows
# it) within the first EARLY_SHARE of the frames tracked
FAIL_AUC = 0.1
EARLY_SHARE = 0.1


def ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) box arrays."""
    x0 = np.maximum(pred[:, 0], gt[:, 0])
    y0 = np.maximum(pred[:, 1], gt[:, 1])
    x1 = np.minimum(pred[:, 0] + pred[:, 2], gt[:, 0] + gt[:, 2])
    y1 = np.minimum(pred[:, 1] + pred[:, 3], gt[:, 1] + gt[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
    # (x + w) - x need not equal w in floating point: clip, so identical boxes never score above 1
    return np.clip(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0), 0.0, 1.0)


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


def success_auc(iou: np.ndarray) -> float:
    """Area under the success curve: the mean of the 21 success rates (0 for no frames)."""
    return float(success_curve(iou).mean())


def curves(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Success, precision and normalised-precision curves over frames whose ground truth is finite."""
    mask = np.isfinite(gt).all(1)
    p, g = pred[mask], gt[mask]
    return {
        "success": success_curve(ious(p, g)),
        "precision": precision_curve(centre_errors(p, g)),
        "norm_precision": precision_curve(centre_errors(p, g, normalise=True), NORM_PRECISION_THRESHOLDS),
    }


def summarise(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Success AUC, precision at 20 px, normalised precision at 0.2 and mean IoU over frames with a target."""
    mask = np.isfinite(gt).all(1)
    p, g = pred[mask], gt[mask]
    iou = ious(p, g)
    return {
        "auc": success_auc(iou),
        "precision": float((centre_errors(p, g) <= PRECISION_AT).mean()) if len(g) else 0.0,
        "norm_precision": float((centre_errors(p, g, normalise=True) <= NORM_PRECISION_AT).mean()) if len(g) else 0.0,
        "mean_iou": float(iou.mean()) if len(g) else 0.0,
        "frames": int(mask.sum()),
    }


def failure(pred: np.ndarray, gt: np.ndarray, auc: float) -> dict[str, object]:
    """Whether a tracker failed a sequence (``pred`` and ``gt`` (N, 4) from the first frame tracked on, ``auc``
    its success AUC there): ``lost_at``, the first frame index with the target in view and no overlap (None: never),
    and ``failed`` (AUC below :data:`FAIL_AUC`, or ``lost_at`` within the first :data:`EARLY_SHARE` of frames)."""
    mask = np.isfinite(gt).all(1)
    off = np.flatnonzero(mask & (ious(np.nan_to_num(pred), np.nan_to_num(gt)) <= 0))
    lost_at = int(off[0]) if len(off) else None
    early = lost_at is not None and lost_at < EARLY_SHARE * len(gt)
    return {"failed": bool(auc < FAIL_AUC or early), "lost_at": lost_at}


def presence(found: np.ndarray, visible: np.ndarray) -> dict[str, float | int | None]:
    """How well the ``found`` flags match the ground truth's presence, over the frames passed in.

    Returns counts and rates: ``absent_accuracy`` is the share of absent frames with ``found`` False and
    ``present_found`` the share of present frames with ``found`` True; a rate is None when it has no frames
    (most sequences never lose the target, and 0 would read as a failure).
    """
    found, visible = np.asarray(found, bool), np.asarray(visible, bool)
    absent, present = int((~visible).sum()), int(visible.sum())
    return {
        "absent_frames": absent,
        "absent_correct": int((~found & ~visible).sum()),
        "absent_accuracy": float((~found[~visible]).mean()) if absent else None,
        "present_frames": present,
        "present_found_frames": int((found & visible).sum()),
        "present_found": float(found[visible].mean()) if present else None,
    }


def pooled_presence(rows: list[dict]) -> dict[str, float | int | None]:
    """:func:`presence` over several sequences, pooled by frame (not averaged by sequence)."""
    absent = sum(r["absent_frames"] for r in rows)
    present = sum(r["present_frames"] for r in rows)
    correct = sum(r["absent_correct"] for r in rows)
    hits = sum(r["present_found_frames"] for r in rows)
    return {
        "absent_frames": absent,
        "absent_correct": correct,
        "absent_accuracy": correct / absent if absent else None,
        "present_frames": present,
        "present_found_frames": hits,
        "present_found": hits / present if present else None,
    }
