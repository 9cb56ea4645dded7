"""Drop-in adapters: siamtrack behind OpenCV's tracker API and behind the GOT-10k toolkit's ``Tracker``.

- :class:`CvTracker` speaks ``cv2.Tracker``: ``create()``, ``init(frame, rect)``, ``update(frame) -> (ok, rect)``
  with an integer rect, ``getTrackingScore()``. Frames are BGR, as OpenCV reads them.
- ``Got10kTracker`` (from ``tracker.compat_got10k``, re-exported here) subclasses ``got10k.trackers.Tracker``:
  PIL RGB images in, boxes in the toolkit's convention out. It needs the optional extra
  ``pip install 'siamtrack[got10k]'``; :class:`CvTracker` does not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from .config import TrackerConfig
from .errors import NotInitializedError
from .tracker import SiamFCTracker, TrackResult

# What OpenCV's trackers return as the rect when ``ok`` is False. Checked with opencv-contrib-python 5.1 on a
# target that leaves the view: KCF and CSRT, which report a loss, both give (0, 0, 0, 0); MIL and Nano never
# report one (ok stays True, the box drifts).
LOST_RECT = (0, 0, 0, 0)


def round_rect(box: Sequence[float]) -> tuple[int, int, int, int]:
    """``x, y, w, h`` floats as an integer rect whose corners are the box's corners rounded to the nearest
    pixel (half up), so both edges stay within half a pixel; width and height are at least 1."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = math.floor(x + 0.5), math.floor(y + 0.5)
    x1, y1 = math.floor(x + w + 0.5), math.floor(y + h + 0.5)
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


class CvTracker:
    """siamtrack with the interface of OpenCV's trackers (``cv2.TrackerNano`` and friends).

    ::

        t = CvTracker.create()                  # instead of cv2.TrackerNano_create(params)
        t.init(frame, (x, y, w, h))             # BGR frame; ints or floats, 0-based pixels
        ok, (x, y, w, h) = t.update(frame)      # ints; ok is TrackResult.found
        t.getTrackingScore()                    # peak score of the last update, in [0, 1]

    Where OpenCV's trackers agree, this one does the same: ``init`` fully resets and returns None; when ``ok`` is
    False the rect is ``(0, 0, 0, 0)`` (:data:`LOST_RECT`), as KCF and CSRT give it. The box siamtrack holds
    while the target is lost stays available in :attr:`result`. Where OpenCV misbehaves (MIL crashes on
    ``update`` before ``init``; ``init`` refuses float rects in OpenCV 5), siamtrack's typed errors apply:
    ``NotInitializedError``, ``InputError`` for a bad frame or box, ``WeightsError``, ``BackendError``.
    """

    def __init__(self, tracker: SiamFCTracker) -> None:
        self.tracker = tracker
        self.result: TrackResult | None = None  # the last update's full answer (float box, score, found)
        self._score: float | None = None

    @classmethod
    def create(
        cls,
        weights: str | os.PathLike | None = None,
        backend: str = "auto",
        device: str | None = None,
        config: TrackerConfig | None = None,
    ) -> CvTracker:
        """A new tracker; the options are :class:`~tracker.SiamFCTracker`'s."""
        return cls(SiamFCTracker(weights, backend=backend, device=device, config=config))

    def init(self, image: np.ndarray, boundingBox: Sequence[float]) -> None:  # noqa: N803 (OpenCV's name)
        """Start tracking ``boundingBox`` (x, y, w, h; ints or floats, 0-based pixels) in the BGR ``image``.

        Raises:
            InputError: a malformed frame or box, or a box entirely outside the frame.
        """
        self.tracker.init(image, boundingBox)
        self.result = None
        self._score = 1.0  # the given box is the target for sure, as in the `track` command's init row

    def update(self, image: np.ndarray) -> tuple[bool, tuple[int, int, int, int]]:
        """Track into the next BGR ``image``: ``(ok, (x, y, w, h))``, the rect in integer pixels; ``ok`` False
        gives ``(0, 0, 0, 0)``.

        Raises:
            NotInitializedError: before :meth:`init`.
            InputError: a malformed frame, or one of another size than at :meth:`init`.
        """
        result = self.tracker.update(image)
        self.result, self._score = result, result.score
        return result.found, round_rect(result.box) if result.found else LOST_RECT

    def getTrackingScore(self) -> float:  # noqa: N802 (OpenCV's name)
        """Peak score of the last :meth:`update` (a probability in [0, 1]); 1.0 right after :meth:`init`.

        Raises:
            NotInitializedError: before :meth:`init`.
        """
        if self._score is None:
            raise NotInitializedError("getTrackingScore() called before init(image, boundingBox)")
        return self._score


def __getattr__(name: str) -> object:
    """``Got10kTracker`` is imported on first use, so this module works without the GOT-10k toolkit."""
    if name == "Got10kTracker":
        from .compat_got10k import Got10kTracker

        return Got10kTracker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
