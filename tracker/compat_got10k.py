"""siamtrack as a tracker of the GOT-10k toolkit (``pip install 'siamtrack[got10k]'``).

The toolkit's experiments pass each dataset's annotations through unchanged, so the box convention is the
dataset's: OTB's ground truth (from MATLAB) counts pixels from 1, siamtrack from 0. ``Got10kTracker`` shifts
``x, y`` by that origin on the way in and back on the way out; forgetting it puts every box a pixel off.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .config import TrackerConfig
from .errors import InputError
from .geometry import as_box
from .tracker import SiamFCTracker, TrackResult

try:
    import six  # noqa: F401  (an undeclared dependency of got10k's datasets: fail here, not mid-experiment)
    from got10k.trackers import Tracker as _ToolkitTracker
    from PIL import Image
except ImportError as e:
    raise ImportError(
        f"Got10kTracker needs the GOT-10k toolkit: pip install 'siamtrack[got10k]' (missing: {e.name or e})"
    ) from None


class Got10kTracker(_ToolkitTracker):
    """siamtrack as a ``got10k.trackers.Tracker`` (name "siamtrack", deterministic), for the toolkit's
    experiments::

        from got10k.experiments import ExperimentOTB
        from tracker.compat import Got10kTracker
        ExperimentOTB("data/OTB100", version=2015).run(Got10kTracker())

    ``init(image, box)`` and ``update(image) -> box`` take PIL images (any mode; the toolkit gives RGB) or
    ``H x W x 3`` uint8 RGB arrays. Boxes are ``x, y, w, h`` in the toolkit's convention: 1-based pixels by
    default (OTB's ground truth); ``one_based=False`` for datasets annotated from 0. While the
    target is lost, ``update`` returns the box where it was last found; :attr:`result` holds the last full
    answer (0-based box, score, found).

    Args:
        weights, backend, device, config: as for :class:`~tracker.Tracker`.
        one_based: the boxes count pixels from 1 (True) or from 0 (False).
        name: the folder name of the results in the toolkit's ``result_dir`` (default "siamtrack").

    Raises:
        WeightsError, BackendError, InputError: as :class:`~tracker.Tracker`.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        backend: str = "auto",
        device: str | None = None,
        config: TrackerConfig | None = None,
        *,
        one_based: bool = True,
        name: str = "siamtrack",
    ) -> None:
        super().__init__(name=name, is_deterministic=True)
        self.tracker = SiamFCTracker(weights, backend=backend, device=device, config=config)
        self.origin = 1.0 if one_based else 0.0
        self.result: TrackResult | None = None

    def init(self, image: Image.Image | np.ndarray, box: Sequence[float]) -> None:
        """Start tracking ``box`` (x, y, w, h in the toolkit's convention) in ``image``; fully resets.

        Raises:
            InputError: a malformed image or box, or a box entirely outside the image.
        """
        x, y, w, h = as_box(box)
        self.tracker.init(_bgr(image), (x - self.origin, y - self.origin, w, h))
        self.result = None

    def update(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """The target's box ``[x, y, w, h]`` (float64, the toolkit's convention) in the next ``image``.

        Raises:
            NotInitializedError: before :meth:`init`.
            InputError: a malformed image, or one of another size than at :meth:`init`.
        """
        self.result = self.tracker.update(_bgr(image))
        x, y, w, h = self.result.box
        return np.array([x + self.origin, y + self.origin, w, h], dtype=np.float64)


def _bgr(image: object) -> np.ndarray:
    """A PIL image (any mode) or an RGB uint8 array as the BGR array siamtrack takes."""
    if isinstance(image, Image.Image):
        image = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    elif not isinstance(image, np.ndarray):
        raise InputError(f"image must be a PIL image or an RGB numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[:, :, 2::-1]  # RGB(A) -> BGR, alpha dropped
    return np.ascontiguousarray(image)
