"""SiamFCTracker: the SiamFC procedure (Bertinetto et al. 2016) over a pluggable backend, with the long-term
re-detection of SiamRPN-LT (pysot) for targets that leave the view or are occluded.

Box convention at every boundary: 0-based ``x, y, w, h`` floats in pixels. Frames: ``H x W x 3`` uint8 BGR (as
OpenCV reads them), ``H x W`` or ``H x W x 1`` grey, or ``H x W x 4`` BGRA (alpha ignored); any strides.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import postprocess as pp
from .backends import Backend
from .backends.select import create_backend
from .config import ModelConfig, TrackerConfig
from .errors import InputError, NotInitializedError, WeightsError, guard_runtime
from .geometry import Box, as_box, as_frame, context_size, crop_and_resize, grid_offsets, tiles_to_cover
from .shipped import default_weights
from .timing import NO_CLOCK, StageClock


@dataclass(frozen=True)
class TrackResult:
    """One frame's answer: ``box`` (x, y, w, h floats, 0-based pixels, inside the frame, w, h >= 1), ``score``
    (peak response as a probability in [0, 1]) and ``found`` (target judged present; when False, ``box`` is the
    last box where it was)."""

    box: Box
    score: float
    found: bool


@dataclass(frozen=True)
class _Peak:
    """A search's best candidate for the target."""

    center: np.ndarray  # (cx, cy), frame pixels
    size: np.ndarray  # (w, h), frame pixels
    score: float  # sigmoid of the peak response
    psr: float  # peak-to-sidelobe ratio of the raw response


@dataclass
class _TrackState:
    center: np.ndarray  # (cx, cy), frame pixels: the last confident position
    size: np.ndarray  # (w, h), frame pixels: the last confident size
    base_size: np.ndarray  # (w, h) at init, for the size clamp
    exemplar: np.ndarray  # exemplar crop, kept to embed it again as several targets for batched re-detection
    kernels: dict[int, object]  # backend kernel handles by number of target copies (1 while tracking)
    pad_value: tuple[float, ...]  # mean colour of the first frame, for crops beyond the border
    frame_shape: tuple[int, int]  # (H, W)
    lost_frames: int = 0  # consecutive frames without a confident peak; 0 while tracking


class SiamFCTracker:
    """Single-object tracker: ``init(frame, box)`` once, then ``update(frame)`` every frame.

    Instances share nothing: several may run in parallel threads (one instance per thread at a time).

    Args:
        weights: safetensors file written by ``train`` (default: ``$SIAMTRACK_WEIGHTS``, else the shipped
            weights, :func:`tracker.shipped.default_weights`).
        backend: "auto", "torch", "onnx" or "tensorrt".
        device: "cpu", "cuda" or "cuda:N"; None lets the backend choose.
        config: inference settings (:class:`TrackerConfig`).

    Raises:
        WeightsError: weights missing, unreadable, or not matching the model they describe.
        BackendError: the backend or device is unknown or unavailable.
        InputError: an argument of the wrong type.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        backend: str = "auto",
        device: str | None = None,
        config: TrackerConfig | None = None,
    ) -> None:
        if config is not None and not isinstance(config, TrackerConfig):
            raise InputError(f"config must be a TrackerConfig, got {type(config).__name__}")
        if device is not None and not isinstance(device, str):
            raise InputError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise InputError(f"weights must be a path, got {type(weights).__name__}")
        self.config = config or TrackerConfig()
        if weights is None:
            weights = default_weights()
            if not weights.is_file():
                raise WeightsError(
                    f"no default weights at {weights}: pass weights=PATH (--weights PATH on the command line), "
                    "set SIAMTRACK_WEIGHTS, or train them with `python -m train`"
                )
        self.weights = Path(weights)
        self._backend: Backend = guard_runtime(create_backend, f"cannot start the {backend!r} backend")(
            backend,
            self.weights,
            device,
            threads=self.config.threads,
            scales=self.config.scale_num,
            precision=self.config.precision,
        )
        self._model_config = self._backend.model_config
        self._window = pp.hann_window(self._model_config.response_size * self.config.response_up)
        n = self.config.scale_num
        self._scale_factors = self.config.scale_step ** (np.arange(n) - n // 2)
        self._state: _TrackState | None = None
        self.stage_clock: StageClock | None = None  # set one to time update()'s stages (tracker.timing)

    @property
    def model_config(self) -> ModelConfig:
        """The network's configuration, as stored with the weights."""
        return self._model_config

    @property
    def backend_name(self) -> str:
        """The backend that runs the network, e.g. ``torch-cpu-bf16``."""
        return self._backend.name

    @property
    def backend_choice(self) -> str | None:
        """Why ``backend="auto"`` picked this backend on a CPU (its timings of each candidate); else None."""
        choice = getattr(self._backend, "auto_choice", None)
        return None if choice is None else choice.describe()

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the target inside ``box`` (x, y, w, h; 0-based pixels) of ``frame``; fully resets.

        A box partly outside the frame is clipped to it. On any error the tracker is left as it was.

        Raises:
            InputError: a malformed frame; a box that is not 4 finite numbers with w, h > 0, or that lies
                entirely outside the frame.
        """
        frame = as_frame(frame)
        box = as_box(box)
        height, width = frame.shape[:2]
        if box.x >= width or box.y >= height or box.x + box.w <= 0 or box.y + box.h <= 0:
            raise InputError(f"box {tuple(box)} lies entirely outside the {width}x{height} frame")
        box = box.clip(width, height)
        size = np.array([box.w, box.h])
        pad = tuple(float(v) for v in frame.reshape(-1, 3).mean(0))
        z_sz = context_size(box.w, box.h, self.config.context)
        exemplar = crop_and_resize(frame, box.center, z_sz, self._model_config.exemplar_size, pad)
        kernel = self._run(self._backend.embed, exemplar[None])
        self._state = _TrackState(np.array(box.center), size, size.copy(), exemplar, {1: kernel}, pad, (height, width))

    def update(self, frame: np.ndarray) -> TrackResult:
        """Locate the target in the next frame, which must have the size of the frame given to :meth:`init`.

        While the target is judged absent (``found`` False) the box stays where it was last found, its size
        frozen, and the search widens frame by frame until the target is re-detected.

        Raises:
            NotInitializedError: before :meth:`init`.
            InputError: a malformed frame, or one of another size than at :meth:`init`.
        """
        clock = self.stage_clock or NO_CLOCK
        clock.start()
        st = self._require_state()
        frame = self._check_frame(frame, st)
        # search: near the last position at several scales while tracking; a widening grid while lost
        peak = self._redetect(frame, st) if st.lost_frames else self._track(frame, st)
        # found: the peak must be both high and sharp (thresholds calibrated on frames marked absent)
        found = self._is_found(peak)
        if found:
            # follow the peak; a re-detection keeps the held size (size updates stay frozen while lost)
            st.center, st.size = self._clamped(peak, st)
            st.lost_frames = 0
        else:
            # hold the last confident box rather than drift onto background; the next search reaches further
            st.lost_frames += 1
        result = TrackResult(self._box(st), peak.score, found)
        clock.lap("post")
        return result

    def _is_found(self, peak: _Peak) -> bool:
        """Peak score and sharpness both at or above their thresholds; a flat response (PSR 0) never counts:
        it says nothing about where the target is."""
        cfg = self.config
        return peak.score >= cfg.found_threshold and peak.psr >= cfg.found_psr and peak.psr > 0

    def _require_state(self) -> _TrackState:
        if self._state is None:
            raise NotInitializedError("update() called before init(frame, box)")
        return self._state

    def _check_frame(self, frame: object, st: _TrackState) -> np.ndarray:
        frame = as_frame(frame)
        if frame.shape[:2] != st.frame_shape:
            raise InputError(
                f"frame size changed from {st.frame_shape[1]}x{st.frame_shape[0]} to "
                f"{frame.shape[1]}x{frame.shape[0]}; call init() again for a new stream"
            )
        return frame

    def _search_side(self, size: np.ndarray) -> float:
        """Side, in frame pixels, of the search crop for a target of ``size`` (SiamFC: x_sz = z_sz * 255 / 127)."""
        mcfg = self._model_config
        return context_size(size[0], size[1], self.config.context) * mcfg.search_size / mcfg.exemplar_size

    def _track(self, frame: np.ndarray, st: _TrackState) -> _Peak:
        """SiamFC's search: crops at ``scale_num`` scales around the last position; the best (penalised) scale's
        upsampled response, blended with a cosine window, gives the new centre, and that scale the new size."""
        cfg, mcfg = self.config, self._model_config
        side = self._search_side(st.size)
        crops = np.stack(
            [crop_and_resize(frame, st.center, side * s, mcfg.search_size, st.pad_value) for s in self._scale_factors]
        )
        logits = self._score(st, crops)
        scores = pp.sigmoid(logits)
        scale_id = pp.select_scale(logits, cfg.scale_penalty)
        response = pp.upsample(scores[scale_id : scale_id + 1], cfg.response_up)[0]
        # locate target centre: response cells -> search-crop pixels -> frame pixels
        dx, dy = pp.locate_peak(response, self._window, cfg.window_influence)
        crop_to_frame = side * self._scale_factors[scale_id] / mcfg.search_size
        center = st.center + np.array([dx, dy]) * mcfg.stride / cfg.response_up * crop_to_frame
        # damped scale update
        size = st.size * ((1 - cfg.scale_lr) + cfg.scale_lr * self._scale_factors[scale_id])
        psr = pp.peak_to_sidelobe(logits[scale_id], cfg.psr_exclude)
        return _Peak(center, size, float(scores[scale_id].max()), psr)

    def _redetect(self, frame: np.ndarray, st: _TrackState) -> _Peak:
        """Long-term search while lost: crops at the held scale on a grid around the held centre.

        The grid reaches ``lost_search_growth`` times further per lost frame, up to ``lost_search_max`` times
        the tracking search's reach, never further than the frame's borders. Crops ``response_size * stride``
        crop pixels apart give response maps that abut into one map; its peak, without a cosine window (the
        target may be anywhere), is the candidate, its PSR taken over a tracking-sized window around it.
        """
        cfg, mcfg = self.config, self._model_config
        side = self._search_side(st.size)
        crop_to_frame = side / mcfg.search_size
        r, stride = mcfg.response_size, mcfg.stride
        tile_reach, spacing = (r - 1) / 2 * stride, r * stride  # search-crop pixels
        # growth ** lost_frames, in logs: it would overflow a float after a few thousand lost frames
        growth = math.exp(min(st.lost_frames * math.log(cfg.lost_search_growth), math.log(cfg.lost_search_max)))
        height, width = st.frame_shape
        to_border = np.maximum(st.center, [width - 1 - st.center[0], height - 1 - st.center[1]]) / crop_to_frame
        cols, rows = (tiles_to_cover(min(tile_reach * growth, b), tile_reach, spacing) for b in to_border)
        xs = st.center[0] + grid_offsets(cols, spacing * crop_to_frame)
        ys = st.center[1] + grid_offsets(rows, spacing * crop_to_frame)
        crops = np.stack([crop_and_resize(frame, (x, y), side, mcfg.search_size, st.pad_value) for y in ys for x in xs])
        logits = pp.mosaic(self._score(st, crops), rows, cols)
        iy, ix = np.unravel_index(int(np.argmax(logits)), logits.shape)
        offset = (np.array([ix, iy]) - (np.array([cols, rows]) * r - 1) / 2) * stride * crop_to_frame
        score = float(pp.sigmoid(logits[iy, ix]))
        psr = pp.peak_to_sidelobe(pp.peak_window(logits, r), cfg.psr_exclude)
        return _Peak(st.center + offset, st.size, score, psr)

    def _score(self, st: _TrackState, crops: np.ndarray) -> np.ndarray:
        """Finite raw responses ``(N, r, r)`` of the exemplar on ``N`` search crops.

        Backends take ``scale_num`` crops per target (exported graphs have that batch built in), so ``N`` crops
        are padded to a multiple of it and scored as that many copies of the target.
        """
        clock = self.stage_clock or NO_CLOCK
        clock.lap("crop")  # everything before the network: the frame check and the search crops
        n, per_target = len(crops), self.config.scale_num
        copies = -(-n // per_target)
        if copies * per_target > n:
            crops = np.concatenate([crops, np.repeat(crops[-1:], copies * per_target - n, axis=0)])
        if copies not in st.kernels:
            st.kernels[copies] = self._run(self._backend.embed, np.repeat(st.exemplar[None], copies, axis=0))
        logits = pp.finite(self._run(self._backend.score, st.kernels[copies], crops)[:n])
        clock.lap("network")
        return logits

    def _run(self, fn: Callable[..., object], *args: object) -> object:
        """Call the backend; a runtime failure inside it (e.g. out of memory) becomes one BackendError."""
        return guard_runtime(fn, f"the {self.backend_name} backend failed")(*args)

    def _clamped(self, peak: _Peak, st: _TrackState) -> tuple[np.ndarray, np.ndarray]:
        """Centre inside the frame; size within [min_scale, max_scale] x the initial size, 1 pixel and the frame."""
        height, width = st.frame_shape
        frame_size = np.array([width, height], dtype=np.float64)
        center = np.clip(peak.center, 0.0, frame_size - 1.0)
        low = np.maximum(st.base_size * self.config.min_scale, 1.0)
        high = np.minimum(st.base_size * self.config.max_scale, frame_size)
        return center, np.clip(peak.size, low, high)

    def _box(self, st: _TrackState) -> Box:
        height, width = st.frame_shape
        return Box.from_center(st.center[0], st.center[1], st.size[0], st.size[1]).clip(width, height)
