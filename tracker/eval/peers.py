"""OpenCV trackers behind the same ``init(frame, box)`` / ``update(frame)`` contract as SiamFCTracker, so the
evaluator can run them side by side. Boxes are 0-based ``x, y, w, h`` pixels; frames are BGR uint8.

KCF and CSRT come with ``opencv-contrib-python`` (the main API, or ``cv2.legacy`` in some builds); MIL and Nano
with plain OpenCV. Nano (NanoTrack v2) needs its two ONNX files, which are not shipped with this project.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..geometry import Box
from ..tracker import TrackResult

PEERS = ("KCF", "CSRT", "MIL", "Nano")
NANO_FILES = {"backbone": "nanotrack_backbone_sim.onnx", "neckhead": "nanotrack_head_sim.onnx"}


class OpenCVTracker:
    """Adapter over one ``cv2.Tracker`` made by ``create()``; a fresh one is made on every ``init``."""

    def __init__(self, name: str, create: Callable[[], object]) -> None:
        self.name = name
        self._create = create
        self._tracker: object | None = None
        self._last: Box | None = None

    def init(self, frame: np.ndarray, box: Box | tuple[float, ...]) -> None:
        """Start tracking ``box`` (x, y, w, h, 0-based pixels) in ``frame``; fully resets."""
        x, y, w, h = (float(v) for v in box)
        self._tracker = self._create()
        # the main API takes an integer Rect; rounding the corners keeps the box within half a pixel
        x0, y0 = round(x), round(y)
        rect = (x0, y0, max(1, round(x + w) - x0), max(1, round(y + h) - y0))
        self._tracker.init(frame, rect)
        self._last = Box(x, y, w, h)

    def update(self, frame: np.ndarray) -> TrackResult:
        """Track into ``frame``. When OpenCV reports a loss, the last box is kept (its rect is then meaningless)."""
        if self._tracker is None:
            raise RuntimeError(f"{self.name}: update() called before init(frame, box)")
        ok, rect = self._tracker.update(frame)
        if ok and rect[2] > 0 and rect[3] > 0:
            self._last = Box(*(float(v) for v in rect))
        score = float(self._tracker.getTrackingScore()) if hasattr(self._tracker, "getTrackingScore") else float(ok)
        return TrackResult(box=self._last, score=score, found=bool(ok))


def _contrib(name: str) -> Callable[[], object] | None:
    """``cv2.Tracker<name>_create`` from the main API, else from ``cv2.legacy``, else None."""
    for module in (cv2, getattr(cv2, "legacy", None)):
        create = getattr(module, f"Tracker{name}_create", None) if module is not None else None
        if create is not None:
            return create
    return None


def nano_files(nano_dir: str | Path | None) -> dict[str, Path]:
    """Paths of NanoTrack's backbone and neck-head ONNX files in ``nano_dir``.

    Raises:
        InputError: no directory given, or a file is missing.
    """
    if nano_dir is None:
        raise InputError("tracker Nano needs --nano-dir, a folder with " + " and ".join(NANO_FILES.values()))
    paths = {k: Path(nano_dir) / v for k, v in NANO_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise InputError(f"NanoTrack file(s) not found: {', '.join(missing)}")
    return paths


def peer_factory(name: str, nano_dir: str | Path | None = None) -> Callable[[], OpenCVTracker] | None:
    """A function making fresh adapters for OpenCV tracker ``name`` (one of :data:`PEERS`), or None when this
    OpenCV build lacks it.

    Raises:
        InputError: unknown name, or Nano without its ONNX files.
    """
    if name not in PEERS:
        raise InputError(f"unknown OpenCV tracker {name!r}; choose one of {', '.join(PEERS)}")
    if name == "Nano":
        paths = nano_files(nano_dir)
        if not (hasattr(cv2, "TrackerNano_create") and hasattr(cv2, "TrackerNano_Params")):
            return None

        def create() -> object:
            params = cv2.TrackerNano_Params()
            params.backbone, params.neckhead = str(paths["backbone"]), str(paths["neckhead"])
            return cv2.TrackerNano_create(params)

        return lambda: OpenCVTracker(name, create)
    create = _contrib(name)
    if create is None:
        return None
    return lambda: OpenCVTracker(name, create)
