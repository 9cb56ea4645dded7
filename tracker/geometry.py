"""Frames, box geometry and crops. One box convention everywhere: 0-based ``x, y, w, h`` floats in pixels.

Internally the tracker works with centres ``(cx, cy)`` and sizes ``(w, h)``; conversions live only here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from .errors import InputError


class Box(NamedTuple):
    """Axis-aligned box: top-left corner ``x, y`` and size ``w, h``, 0-based pixels."""

    x: float
    y: float
    w: float
    h: float

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(cx, cy)`` in pixels (the centre of pixel 0 is 0.0; a box [0, w) has centre (w-1)/2)."""
        return self.x + (self.w - 1) / 2, self.y + (self.h - 1) / 2

    @classmethod
    def from_center(cls, cx: float, cy: float, w: float, h: float) -> Box:
        """Inverse of :attr:`center`: a box of size ``w, h`` centred on ``cx, cy``."""
        return cls(float(cx - (w - 1) / 2), float(cy - (h - 1) / 2), float(w), float(h))

    def clip(self, width: int, height: int, min_size: float = 1.0) -> Box:
        """The part of the box inside a ``width`` x ``height`` image, at least ``min_size`` pixels a side."""
        x0 = min(max(self.x, 0.0), width - min_size)
        y0 = min(max(self.y, 0.0), height - min_size)
        x1 = max(min(self.x + self.w, float(width)), x0 + min_size)
        y1 = max(min(self.y + self.h, float(height)), y0 + min_size)
        # max(): x1 - x0 can round to just under min_size (0.9999999999999999 for 1)
        return Box(float(x0), float(y0), float(max(x1 - x0, min_size)), float(max(y1 - y0, min_size)))


def as_box(box: Sequence[float]) -> Box:
    """Validate any 4-number sequence as a finite box of positive size.

    Raises:
        InputError: wrong length, non-numeric, NaN/inf, or non-positive width/height.
    """
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int too large for a float
        raise InputError(f"box must be 4 numbers x, y, w, h; got {box!r}") from None
    if len(values) != 4:
        raise InputError(f"box must be 4 numbers x, y, w, h; got {len(values)} values")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"box has a NaN or infinite value: {values}")
    if values[2] <= 0 or values[3] <= 0:
        raise InputError(f"box width and height must be > 0; got w={values[2]}, h={values[3]}")
    return Box(*values)


def as_frame(frame: object) -> np.ndarray:
    """Validate a frame and return it as a C-contiguous ``H x W x 3`` uint8 BGR array.

    Raises:
        InputError: not a numpy array, not uint8, not ``H x W`` / ``H x W x 1|3|4``, or smaller than 2 x 2.
    """
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame must be uint8 (as OpenCV reads images), got dtype {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim == 2:
        frame = np.repeat(frame[:, :, None], 3, axis=2)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        frame = frame[:, :, :3]
    elif not (frame.ndim == 3 and frame.shape[2] == 3):
        raise InputError(f"frame must be HxW grey, HxWx3 BGR or HxWx4 BGRA; got shape {frame.shape}")
    if frame.shape[0] < 2 or frame.shape[1] < 2:
        raise InputError(f"frame is too small: {frame.shape[1]}x{frame.shape[0]} pixels (at least 2x2)")
    return np.ascontiguousarray(frame)


def context_size(w: float, h: float, context: float = 0.5) -> float:
    """SiamFC's exemplar side in frame pixels: ``sqrt((w + p) * (h + p))`` with ``p = context * (w + h)``."""
    p = context * (w + h)
    return math.sqrt((w + p) * (h + p))


def grid_offsets(count: int, spacing: float) -> np.ndarray:
    """Offsets of ``count`` tiles ``spacing`` apart, centred on 0: 2 -> ``[-s/2, s/2]``, 3 -> ``[-s, 0, s]``."""
    return (np.arange(count) - (count - 1) / 2) * spacing


def tiles_to_cover(reach: float, tile_reach: float, spacing: float) -> int:
    """Fewest tiles in a row, ``spacing`` apart and centred on 0, that together reach ``reach`` either side of 0
    when each reaches ``tile_reach`` either side of its own centre (all in the same units)."""
    extra = (reach - tile_reach) / (spacing / 2)  # half-spacings beyond one tile's reach
    return 1 + max(0, math.ceil(extra - 1e-9))  # 1e-9: an exact fit needs no further tile


def crop_and_resize(
    image: np.ndarray,
    center: tuple[float, float],
    size: float,
    out_size: int,
    pad_value: Sequence[float] | float = 0.0,
    interp: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """Crop a square of side ``size`` (frame pixels) centred on ``center`` and resize it to ``out_size``.

    Parts beyond the image are filled with ``pad_value`` (SiamFC pads with the frame's mean colour). One affine
    warp does crop, pad and resize together, so the cost does not depend on where the crop lies.
    """
    scale = out_size / size
    cx, cy = center
    # maps the crop's centre pixel to the output's centre pixel ((out_size - 1) / 2)
    c = (out_size - 1) / 2
    matrix = np.array([[scale, 0.0, c - scale * cx], [0.0, scale, c - scale * cy]], dtype=np.float64)
    if isinstance(pad_value, (int, float)):
        border = (float(pad_value),) * 4
    else:
        border = tuple(float(v) for v in pad_value) + (0.0,) * (4 - len(pad_value))
    return cv2.warpAffine(
        image, matrix, (out_size, out_size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )
