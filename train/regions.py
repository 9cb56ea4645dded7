"""Pairs around *any* region of a cached crop, not only the annotated target: they teach the network to match the
exemplar it is given rather than to recognise the kinds of object in the training videos.

- ``self``: one frame and a differently augmented copy of it (scale, shift, aspect, a small rotation; the pair
  sampler adds light, blur and occlusion), around a random region: a corner of a building, a patch of road, part
  of a boat.
- ``region``: the same region in a neighbouring frame. The cache records each crop's scale and the target's
  centre in frame pixels, which place the region in the other crop if the scene stood still; a local phase
  correlation then measures how it actually moved. Where that measurement is weak (a featureless patch) the pair
  falls back to ``self``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from tracker.geometry import context_size

PATCH = 64  # side of the grey patches that phase correlation compares, cache pixels
MIN_RESPONSE = 0.2  # phase correlation peak below this: the motion is not measured, use a self pair
MAX_SHIFT = 20.0  # measured shift beyond this many patch pixels: not trusted either
MIN_CONTRAST = 4.0  # grey-level standard deviation below which a patch has nothing to correlate


@dataclass(frozen=True)
class Region:
    """An object to track in cache pixels: its centre and size in the exemplar image and in the search image."""

    exemplar_center: tuple[float, float]
    search_center: tuple[float, float]
    size: tuple[float, float]  # w, h in the exemplar image
    search_size: tuple[float, float]  # w, h in the search image
    context: float  # SiamFC context side in the exemplar image

    @property
    def search_context(self) -> float:
        return self.context * self.search_size[0] / self.size[0]


def random_region(
    rng: np.random.Generator, cache_size: int, exemplar: int, reach: float = 0.2, avoid: list | None = None
) -> Region:
    """A random box (cache pixels) whose context square is 0.4-1x the target's (``exemplar`` px) and whose centre
    lies within ``reach`` x ``cache_size`` of the crop's centre, so its search region stays mostly inside; off
    the annotated target of manifest entry ``avoid`` where a few draws find such a place."""
    c = (cache_size - 1) / 2
    for _ in range(8):
        aspect = math.exp(rng.uniform(-0.8, 0.8))
        ctx = exemplar * rng.uniform(0.4, 1.0)
        # context_size(w, h) is linear in the box's scale: size a box of this aspect to the chosen context side
        w = ctx / context_size(aspect, 1 / aspect) * aspect
        h = w / aspect**2
        center = tuple(c + rng.uniform(-reach, reach, 2) * cache_size)
        region = Region(center, center, (w, h), (w, h), context_size(w, h))
        if avoid is None or not _overlaps_target(region, avoid, c):
            break
    return region


def rotate(image: np.ndarray, region: Region, degrees: float) -> tuple[np.ndarray, Region]:
    """``image`` rotated by ``degrees`` about the region's search centre, and the region's new (axis-aligned,
    bounding) size: the box an annotator would draw around the turned object."""
    m = cv2.getRotationMatrix2D(region.search_center, degrees, 1.0)
    pad = tuple(float(v) for v in image.reshape(-1, 3).mean(0))
    turned = cv2.warpAffine(image, m, image.shape[1::-1], flags=cv2.INTER_LINEAR, borderValue=pad)
    w, h = region.search_size
    co, si = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    return turned, Region(region.exemplar_center, region.search_center, region.size, (w * co + h * si, w * si + h * co),
                          region.context)  # fmt: skip


def _grey_without_target(image: np.ndarray, frame: list) -> np.ndarray:
    """The crop in grey, the annotated target's box (+20%, centred) filled with the mean: the target moves
    against the scene, and its texture must not decide the scene's motion."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    c, w, h = (grey.shape[0] - 1) / 2, 0.6 * frame[1], 0.6 * frame[2]
    grey[int(max(0, c - h)) : int(c + h) + 1, int(max(0, c - w)) : int(c + w) + 1] = grey.mean()
    return grey


def _patch(grey: np.ndarray, center: tuple[float, float], side: float) -> np.ndarray:
    s = PATCH / side
    m = np.array([[s, 0, (PATCH - 1) / 2 - s * center[0]], [0, s, (PATCH - 1) / 2 - s * center[1]]])
    return cv2.warpAffine(grey, m, (PATCH, PATCH), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _overlaps_target(region: Region, frame: list, c: float) -> bool:
    (x, y), (w, h) = region.exemplar_center, region.size
    return abs(x - c) < 0.6 * frame[1] + w / 2 and abs(y - c) < 0.6 * frame[2] + h / 2


def follow(region: Region, image_a: np.ndarray, frame_a: list, image_b: np.ndarray, frame_b: list) -> Region | None:
    """Where ``region`` of cached crop ``image_a`` is in the neighbouring crop ``image_b`` (manifest entries
    ``[name, w, h, scale, cx, cy]``), or None where its motion cannot be measured: the region overlaps the
    annotated target (which moves on its own), the patch is featureless, the correlation is weak, or measuring
    back from ``image_b`` does not return to the start."""
    c = (image_a.shape[0] - 1) / 2
    if _overlaps_target(region, frame_a, c):
        return None
    scale_a, scale_b = frame_a[3], frame_b[3]
    ratio = scale_b / scale_a
    # a still scene: cache a -> frame pixels -> cache b
    px, py = region.exemplar_center
    guess = (c + ((px - c) / scale_a + frame_a[4] - frame_b[4]) * scale_b,
             c + ((py - c) / scale_a + frame_a[5] - frame_b[5]) * scale_b)  # fmt: skip
    side = 1.5 * region.context
    grey_a, grey_b = _grey_without_target(image_a, frame_a), _grey_without_target(image_b, frame_b)
    a = _patch(grey_a, region.exemplar_center, side)
    b = _patch(grey_b, guess, side * ratio)
    if min(a.std(), b.std()) < MIN_CONTRAST:
        return None
    window = cv2.createHanningWindow((PATCH, PATCH), cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    if not (response >= MIN_RESPONSE and math.hypot(dx, dy) <= MAX_SHIFT):
        return None
    k = side * ratio / PATCH  # patch pixels -> cache b pixels
    center = (guess[0] + dx * k, guess[1] + dy * k)
    (bx, by), _ = cv2.phaseCorrelate(_patch(grey_b, center, side * ratio), a, window)  # and back again
    if math.hypot(bx, by) > 1.5:
        return None
    size = (region.size[0] * ratio, region.size[1] * ratio)
    lo, hi = 0.0, image_b.shape[0] - 1.0
    if not (lo <= center[0] <= hi and lo <= center[1] <= hi):
        return None
    return Region(region.exemplar_center, center, region.size, size, region.context)
