"""SiamFCTracker: the SiamFC procedure (Bertinetto et al. 2016) over a pluggable backend.

Box convention at every boundary: 0-based ``x, y, w, h`` floats in pixels. Frames: ``H x W x 3`` uint8 BGR (as
OpenCV reads them), ``H x W`` grey, or ``H x W x 4`` BGRA (alpha ignored).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import postprocess as pp
from .backends import Backend
from .backends.select import create_backend
from .config import TrackerConfig
from .errors import InputError, NotInitializedError, WeightsError
from .geometry import Box, as_box, context_size, crop_and_resize

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "siamfc.safetensors"


@dataclass(frozen=True)
class TrackResult:
    """One frame's answer: ``box`` (x, y, w, h floats, 0-based pixels, inside the frame, w, h > 0), ``score``
    (peak response as a probability in [0, 1]) and ``found`` (target judged present)."""

    box: Box
    score: float
    found: bool


@dataclass
class _TrackState:
    center: np.ndarray  # (cx, cy), frame pixels
    size: np.ndarray  # (w, h), frame pixels
    base_size: np.ndarray  # (w, h) at init, for the size clamp
    exemplar_side: float  # z_sz: exemplar crop side in frame pixels
    kernel: object  # backend's exemplar features
    pad_value: tuple[float, ...]  # mean colour of the first frame, for crops beyond the border
    frame_shape: tuple[int, int]  # (H, W)


def as_frame(frame: object) -> np.ndarray:
    """Validate a frame and return it as a C-contiguous ``H x W x 3`` uint8 BGR array.

    Raises:
        InputError: not a numpy array, not uint8, or not ``H x W``, ``H x W x 1|3|4``, or empty.
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
        raise InputError(f"frame is too small: {frame.shape[1]}x{frame.shape[0]} pixels")
    return np.ascontiguousarray(frame)


class SiamFCTracker:
    """Single-object tracker: ``init(frame, box)`` once, then ``update(frame)`` every frame.

    Args:
        weights: safetensors file written by ``train`` (default: the shipped ``weights/siamfc.safetensors``,
            or ``$SIAMTRACK_WEIGHTS``).
        backend: "auto", "torch", "onnx" or "tensorrt".
        device: "cpu", "cuda" or "cuda:N"; None lets the backend choose.
        config: inference settings (:class:`TrackerConfig`).
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        backend: str = "auto",
        device: str | None = None,
        config: TrackerConfig | None = None,
    ) -> None:
        self.config = config or TrackerConfig()
        if weights is None:
            weights = os.environ.get("SIAMTRACK_WEIGHTS") or DEFAULT_WEIGHTS
            if not Path(weights).is_file():
                raise WeightsError(
                    f"no default weights at {weights}: train them with `python -m train` "
                    "or pass weights=PATH (or set SIAMTRACK_WEIGHTS)"
                )
        self.weights = Path(weights)
        self._backend: Backend = create_backend(backend, self.weights, device, threads=self.config.threads)
        self._model_config = self._backend.model_config
        self._window = pp.hann_window(self._model_config.response_size * self.config.response_up)
        n = self.config.scale_num
        self._scale_factors = self.config.scale_step ** (np.arange(n) - n // 2)
        self._state: _TrackState | None = None

    @property
    def backend_name(self) -> str:
        """The backend that runs the network, e.g. ``torch-cpu-bf16``."""
        return self._backend.name

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the target inside ``box`` (x, y, w, h; 0-based pixels) of ``frame``; fully resets.

        A box partly outside the frame is clipped to it; one entirely outside raises :class:`InputError`.
        """
        frame = as_frame(frame)
        box = as_box(box)
        height, width = frame.shape[:2]
        if box.x >= width or box.y >= height or box.x + box.w <= 0 or box.y + box.h <= 0:
            raise InputError(f"box {tuple(box)} lies entirely outside the {width}x{height} frame")
        box = box.clip(width, height)
        cfg, mcfg = self.config, self._model_config
        center, size = np.array(box.center), np.array([box.w, box.h])
        z_sz = context_size(box.w, box.h, cfg.context)
        pad = tuple(float(v) for v in frame.reshape(-1, 3).mean(0))
        exemplar = crop_and_resize(frame, box.center, z_sz, mcfg.exemplar_size, pad)
        kernel = self._backend.embed(exemplar[None])
        self._state = _TrackState(center, size, size.copy(), z_sz, kernel, pad, (height, width))

    def update(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in the next frame. Returns a :class:`TrackResult`."""
        st = self._state
        if st is None:
            raise NotInitializedError("update() called before init(frame, box)")
        frame = as_frame(frame)
        if frame.shape[:2] != st.frame_shape:
            raise InputError(
                f"frame size changed from {st.frame_shape[1]}x{st.frame_shape[0]} to "
                f"{frame.shape[1]}x{frame.shape[0]}; call init() again for a new stream"
            )
        cfg, mcfg = self.config, self._model_config
        search_side = st.exemplar_side * mcfg.search_size / mcfg.exemplar_size
        # search crops at each scale
        crops = np.stack(
            [crop_and_resize(frame, st.center, search_side * s, mcfg.search_size, st.pad_value)
             for s in self._scale_factors]
        )  # fmt: skip
        # responses -> scores, peak scale (penalised), then upsample that scale only
        scores = pp.sigmoid(self._backend.score(st.kernel, crops))
        scale_id = pp.select_scale(scores, cfg.scale_penalty)
        response = pp.upsample(scores[scale_id : scale_id + 1], cfg.response_up)[0]
        score = float(np.clip(response.max(), 0.0, 1.0))
        # locate target centre: response cells -> search-crop pixels -> frame pixels
        dx, dy = pp.locate_peak(response, self._window, cfg.window_influence)
        crop_to_frame = search_side * self._scale_factors[scale_id] / mcfg.search_size
        shift = np.array([dx, dy]) * mcfg.stride / cfg.response_up * crop_to_frame
        height, width = st.frame_shape
        st.center = np.clip(st.center + shift, 0.0, [width - 1.0, height - 1.0])
        # damped scale update, clamped to [min_scale, max_scale] x the initial size
        scale = (1 - cfg.scale_lr) + cfg.scale_lr * self._scale_factors[scale_id]
        new_size = np.clip(st.size * scale, st.base_size * cfg.min_scale, st.base_size * cfg.max_scale)
        st.exemplar_side *= float(new_size[0] / st.size[0])
        st.size = new_size
        box = Box.from_center(st.center[0], st.center[1], st.size[0], st.size[1]).clip(width, height)
        return TrackResult(box=box, score=score, found=score >= cfg.found_threshold)
