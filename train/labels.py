"""Training targets per head: SiamFC's balanced logistic labels (:func:`make_labels`) and the box head's
classification, box and quality targets (:func:`make_box_labels`), on the tracker's own cell grid."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tracker.config import ModelConfig
from tracker.geometry import grid_offsets

if TYPE_CHECKING:
    from .pairs import PairConfig


def make_labels(
    model: ModelConfig, cfg: PairConfig, target: tuple[float, float] | None, strength: float
) -> tuple[np.ndarray, ...]:
    """Balanced logistic-loss labels and weights (both (R, R) float32, R = ``model.response_size``) for a target
    centred at ``target`` (search-crop pixels from the crop centre), or no target (``None``). Positives and
    negatives each carry half the weight; without positives the negatives carry all of it."""
    r = model.response_size
    dx, dy = np.meshgrid(cell_offsets(model), cell_offsets(model))
    if target is None:
        pos = np.zeros((r, r), bool)
    else:
        pos = np.hypot(dx - target[0], dy - target[1]) <= cfg.radius
    return pos.astype(np.float32) * strength, balanced_weights(pos)


def balanced_weights(pos: np.ndarray) -> np.ndarray:
    """Loss weights (R, R) float32 of a map whose positive cells are ``pos``: positives and negatives each carry
    half the weight; without positives the negatives carry all of it."""
    weights = np.where(pos, 0.5 / max(pos.sum(), 1), 0.5 / max((~pos).sum(), 1)).astype(np.float32)
    return weights if pos.any() else weights * 2


def cell_offsets(model: ModelConfig) -> np.ndarray:
    """Each output cell's displacement from the search crop's centre, search-crop pixels (R,): the tracker's
    decoding convention (``ModelConfig.response_size``)."""
    return grid_offsets(model.response_size, model.stride)


def make_box_labels(
    model: ModelConfig, cfg: PairConfig, target: tuple[float, float, float, float] | None
) -> tuple[np.ndarray, ...]:
    """Box-head training targets for a target box ``(dx, dy, w, h)`` (centre from the crop centre, and size, in
    search-crop pixels), or no target (``None``).

    Returns classification labels and weights (R, R), balanced (:func:`balanced_weights`); box targets (4, R, R),
    the distances from each cell to the box's left, top, right and bottom sides (meaningful at positives); and
    quality targets (R, R), the centre-ness ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))``.
    """
    r = model.response_size
    px, py = np.meshgrid(cell_offsets(model), cell_offsets(model))
    if target is None:
        ltrb = np.zeros((4, r, r), np.float32)
        pos = np.zeros((r, r), bool)
    else:
        cx, cy, w, h = target
        ltrb = np.stack([px - (cx - w / 2), py - (cy - h / 2), cx + w / 2 - px, cy + h / 2 - py]).astype(np.float32)
        near = cfg.center_cells * model.stride
        pos = (ltrb.min(0) > 0) & (np.abs(px - cx) <= near) & (np.abs(py - cy) <= near)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr, tb = np.sort(ltrb[[0, 2]], 0), np.sort(ltrb[[1, 3]], 0)
        quality = np.where(pos, np.sqrt(np.abs(lr[0] / lr[1] * tb[0] / tb[1])), 0.0).astype(np.float32)
    return pos.astype(np.float32), balanced_weights(pos), ltrb, quality
