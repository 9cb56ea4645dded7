"""Tracker (also ``SiamFCTracker``, its first name): a Siamese tracker in the SiamFC family (Bertinetto et al.
2016) over a pluggable backend, with the long-term re-detection of SiamRPN-LT (pysot) for targets that leave the
view or are occluded. Each head's decoder is in :mod:`tracker.heads`, what they share in ``search.py``, both
shared with :class:`~tracker.MultiTracker`.

Box convention at every boundary: 0-based ``x, y, w, h`` floats in pixels. Frames: ``H x W x 3`` uint8 BGR (as
OpenCV reads them), ``H x W`` or ``H x W x 1`` grey, or ``H x W x 4`` BGRA (alpha ignored); any strides.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import postprocess as pp
from .appearance import Embedding, embedding_path, to_array, with_redetect_check
from .backends import Backend, appearance_features, blend_kernel, joined_kernels
from .backends.select import create_backend
from .config import ConfigError, ModelConfig, TrackerConfig
from .errors import InputError, NotInitializedError, WeightsError, guard_runtime
from .geometry import as_frame
from .heads import crops_per_target, search_for
from .result import TrackResult
from .search import TargetSearch, TargetState
from .shipped import resolve_weights
from .timing import NO_CLOCK, StageClock
from .tuned import with_tuned

__all__ = ["SiamFCTracker", "TrackResult", "Tracker", "open_backend"]


class BackendInfo:
    """What runs the network, for trackers that hold a ``_backend``: shared by SiamFCTracker and MultiTracker."""

    _backend: Backend

    @property
    def backend_name(self) -> str:
        """The backend that runs the network, e.g. ``torch-cpu-bf16``."""
        return self._backend.name

    @property
    def backend_choice(self) -> str | None:
        """Why ``backend="auto"`` picked this backend on a CPU (its timings of each candidate); else None."""
        choice = getattr(self._backend, "auto_choice", None)
        return None if choice is None else choice.describe()

    def _run(self, fn: Callable[..., object], *args: object) -> object:
        """Call the backend; a runtime failure inside it (e.g. out of memory) becomes one BackendError."""
        return guard_runtime(fn, f"the {self.backend_name} backend failed")(*args)

    def _appearance_maps(self, crops: np.ndarray) -> np.ndarray:
        """The exemplar features (B, C, k, k) of exemplar-sized ``crops``, as float32: what the verifier embeds."""
        return to_array(self._run(appearance_features, self._backend, crops))


class Tracker(BackendInfo):
    """Single-object tracker: ``init(frame, box)`` once, then ``update(frame)`` every frame.

    Instances share nothing: several may run in parallel threads (one instance per thread at a time).

    Args:
        weights: a shipped model's name ("accurate", "fast", "classic": :data:`tracker.shipped.MODELS`), or a
            safetensors file written by ``train`` or a ``track-export`` folder (default: ``$SIAMTRACK_WEIGHTS``,
            else the default model, :func:`tracker.shipped.default_weights`).
        backend: "auto", "torch", "onnx", "openvino" (CPU) or "tensorrt".
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
        self.config, self.weights, self._backend = open_backend(weights, backend, device, config)
        self._model_config = self._backend.model_config
        self._search = search_for(self.config, self._model_config)
        self._embedding = load_embedding(self._search, self.weights)
        check_template(config, self._embedding)
        self._state: TargetState | None = None
        self._kernels: dict[int, object] = {}  # backend kernel handles by number of target copies (1 while tracking)
        self.stage_clock: StageClock | None = None  # set one to time update()'s stages (tracker.timing)

    @property
    def model_config(self) -> ModelConfig:
        """The network's configuration, as stored with the weights."""
        return self._model_config

    def init(self, frame: np.ndarray, box: Sequence[float]) -> None:
        """Start tracking the target inside ``box`` (x, y, w, h; 0-based pixels) of ``frame``; fully resets.

        A box partly outside the frame is clipped to it. On any error the tracker is left as it was.

        Raises:
            InputError: a malformed frame; a box that is not 4 finite numbers with w, h > 0, or that lies
                entirely outside the frame.
        """
        frame = as_frame(frame)
        state = self._search.start(frame, box)
        kernel = self._run(self._backend.embed, state.exemplar[None])
        calibration = self._search.calibration(frame, state)
        if calibration is not None:  # the head measures itself on the target's own frame
            outputs = self._run(self._backend.score, kernel, calibration.crops)
            calibration.decode(pp.finite_outputs(outputs))
        if self._embedding is not None:
            extent = self._search.appearance_extent(state.size)[None]
            self._search.remember(state, self._embedding(to_array(kernel), extent, state.exemplar[None])[0])
        self._state, self._kernels = state, {1: kernel}

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
        frame = self._search.check_frame(frame, st.frame_shape)
        # search: near the last position at several scales while tracking; a widening grid while lost
        plan = self._search.plan(frame, st)
        outputs = self._score(st, plan.crops)
        # decode the peak, judge whether it is the target, and follow it or hold the last box
        peak = plan.decode(outputs)
        clock.lap("decode")
        appearance = features = None
        if self._embedding is not None and self._search.wants_appearance(st, peak):
            # is it still the target? its box's appearance against the target's (while lost, each candidate's)
            judge = self._search.verify(frame, [(st, peak)], self._appearance_maps, self._embedding)
            ((peak, appearance, features),) = judge
        clock.lap("verify")
        result = self._search.conclude(peak, st, appearance)
        if st.remembered and self.config.template_rate:  # the kernel towards the target as it looks now
            self._kernels = {1: blend_kernel(self._kernels[1], features, self.config.template_rate)}
        clock.lap("post")
        return result

    def _require_state(self) -> TargetState:
        if self._state is None:
            raise NotInitializedError("update() called before init(frame, box)")
        return self._state

    def _score(self, st: TargetState, crops: np.ndarray) -> dict[str, np.ndarray]:
        """The network's finite outputs (``Backend.score``) for the exemplar on ``N`` search crops.

        Backends take the search's ``crops_per_target`` crops per target (exported graphs have that batch built
        in), so ``N`` crops are padded to a multiple of it and scored as that many copies of the target.
        """
        clock = self.stage_clock or NO_CLOCK
        clock.lap("crop")  # everything before the network: the frame check and the search crops
        n, per_target = len(crops), self._search.crops_per_target
        copies = -(-n // per_target)
        if copies * per_target > n:
            crops = np.concatenate([crops, np.repeat(crops[-1:], copies * per_target - n, axis=0)])
        if copies not in self._kernels:
            # an updated kernel repeated; else the first frame's exemplar embedded as that many targets
            repeated = joined_kernels([(self._kernels[1], copies)]) if self.config.template_rate else None
            if repeated is None:
                repeated = self._run(self._backend.embed, np.repeat(st.exemplar[None], copies, axis=0))
            self._kernels[copies] = repeated
        outputs = self._run(self._backend.score, self._kernels[copies], crops)
        outputs = pp.finite_outputs({name: v[:n] for name, v in outputs.items()})
        clock.lap("network")
        return outputs


def check_template(given: TrackerConfig | None, embedding: Embedding | None) -> None:
    """Raise ConfigError where the caller asks for a template update (``template_rate``) that cannot run: it
    updates the kernel from the appearance verifier's crops, and this tracker has no verifier (``verify=False``,
    or weights without an appearance embedding). A rate from the weights' own settings is simply not used then."""
    if given is not None and given.template_rate and embedding is None:
        raise ConfigError(
            "template_rate updates the kernel from the appearance verifier's crops: it needs verify_threshold or the "
            "weights' re-detection check (an appearance embedding beside the weights, and verify not False)"
        )


def load_embedding(search: TargetSearch, weights: Path) -> Embedding | None:
    """The appearance embedding of ``weights`` when ``search`` verifies (``TrackerConfig.verify_threshold``), else
    None.

    Raises:
        WeightsError: the embedding file is missing, unreadable or made for other weights.
    """
    return Embedding.load(embedding_path(weights), weights) if search.verifies else None


def open_backend(
    weights: str | os.PathLike | None, backend: str, device: str | None, config: TrackerConfig | None, targets: int = 1
) -> tuple[TrackerConfig, Path, Backend]:
    """A tracker's settings, weights path and running backend, the arguments checked (``targets``: targets per
    run of exported graphs).

    Raises:
        WeightsError: weights missing, unreadable, or not matching the model they describe.
        BackendError: the backend or device is unknown or unavailable.
        InputError: an argument of the wrong type.
    """
    if config is not None and not isinstance(config, TrackerConfig):
        raise InputError(f"config must be a TrackerConfig, got {type(config).__name__}")
    if device is not None and not isinstance(device, str):
        raise InputError(f"device must be a string such as 'cpu' or 'cuda:0', got {device!r}")
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise InputError(f"weights must be a path, got {type(weights).__name__}")
    config = config or TrackerConfig()
    default = weights is None
    weights = resolve_weights(weights)
    if default and not weights.is_file():
        raise WeightsError(
            f"no default weights at {weights}: pass weights=PATH (--weights PATH on the command line), "
            "set SIAMTRACK_WEIGHTS, or train them with `python -m train`"
        )
    config = with_tuned(config, weights)  # the weights' own decoder settings where the config leaves them unset
    config = with_redetect_check(config, weights)  # and their re-detection check, unless the config verifies itself
    running: Backend = guard_runtime(create_backend, f"cannot start the {backend!r} backend")(
        backend,
        Path(weights),
        device,
        threads=config.threads,
        scales=crops_per_target(weights, config),
        targets=targets,
        precision=config.precision,
    )
    return config, Path(weights), running


SiamFCTracker = Tracker  # the name users have had since the first release
