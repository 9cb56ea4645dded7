"""MultiTracker: many targets in one video, every target's search crops scored in one batched network call.

Each target follows exactly :class:`~tracker.SiamFCTracker`'s procedure (``search.py``: the same crops, the same
decoding, lost mode and re-detection included); only the network calls are shared. Stacking the targets' kernels
and crops into one :meth:`Backend.score` call pays the per-call cost of the network once per frame instead of
once per target, and lets the backend run one large batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from . import postprocess as pp
from .appearance import to_array
from .backends import blend_kernel, joined_kernels
from .config import TrackerConfig
from .errors import InputError, UnknownTargetError
from .geometry import as_frame
from .heads import search_for
from .result import TrackResult
from .search import SearchPlan, TargetState
from .tracker import BackendInfo, check_template, load_embedding, open_backend

RESTART = "remove every target, then add them on the new stream"  # how to start over, in a frame-size error


BOX_HEAD_PIXELS = 1.0  # a box head's boxes from MultiTracker and from SiamFCTracker agree within this (see below)


class MultiTracker(BackendInfo):
    """Tracks any number of targets in one stream of frames: :meth:`add` targets on any frame, then
    :meth:`update` every frame for all of them at once.

    ::

        mt = MultiTracker()                          # options as SiamFCTracker's
        ids = mt.add(frame, [(x, y, w, h), ...])     # stable integer ids, never reused
        results = mt.update(next_frame)              # {id: TrackResult}
        mt.remove(ids[0])

    Each target's results are those of a :class:`~tracker.SiamFCTracker` started on the same frame with the same
    box, lost mode and re-detection included: the same found / lost decisions, and for SiamFC's head boxes within
    1e-3 pixel and scores within 1e-4 (a larger network batch may round floats differently; on the torch CPU
    backend they came out identical). A box head carries those rounding differences through its regressed box
    into the next frame's crop: boxes within ``BOX_HEAD_PIXELS`` and scores within 0.05 while the target's peak is
    clear (tests/test_box_head.py); where two cells score alike (a target of flat background), the rounding can
    pick the other one.
    Frames and boxes are as for SiamFCTracker: BGR frames, 0-based ``x, y, w, h`` pixel boxes.
    Several MultiTrackers share nothing; one instance serves one thread at a time.

    Args:
        weights, backend, device, config: as for :class:`~tracker.Tracker`.
        batch_targets: target copies per network call (a tracked target is one, a lost one several): more run in
            calls of this many. Larger calls pay the per-call cost less often, but past about 8 targets (24 crops)
            the CPU slows down per crop (measured: README).
        graph_targets: targets per run of exported graphs (onnx, openvino, tensorrt backends, whose batch is fixed at
            export): more targets (a lost target counts as several) run in chunks of this many, the last chunk
            padded. 1 suits ONNX Runtime on a CPU, where a run of N targets costs N runs of one (measured: README);
            on a GPU a larger batch is what pays. The torch backend takes any batch and ignores it.

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
        batch_targets: int = 8,
        graph_targets: int = 1,
    ) -> None:
        for name, value in (("batch_targets", batch_targets), ("graph_targets", graph_targets)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be an integer >= 1, got {value!r}")
        self.config, self.weights, self._backend = open_backend(weights, backend, device, config, graph_targets)
        self._search = search_for(self.config, self._backend.model_config)
        self._embedding = load_embedding(self._search, self.weights)  # one appearance memory per target
        check_template(config, self._embedding)
        self._targets: dict[int, TargetState] = {}
        self._next_id = 0
        self._frame_shape: tuple[int, int] | None = None  # (H, W) of the stream, while there are targets
        self._batch_targets = batch_targets
        self._kernels: dict[int, object] = {}  # each target's own kernel handle (one copy), embedded once
        # the layout of the network calls, (id, copies) per target in call order, and each call's kernel
        self._layout: tuple[tuple[tuple[int, int], ...], ...] = ()
        self._call_kernels: list[object] = []

    @property
    def ids(self) -> list[int]:
        """The ids of the targets held, in the order they were added."""
        return list(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def add(self, frame: np.ndarray, boxes: Iterable[Sequence[float]]) -> list[int]:
        """Start tracking the targets inside ``boxes`` (each x, y, w, h; 0-based pixels) of ``frame``; their new
        ids, in the order of ``boxes``. The targets already held are not updated on this frame.

        All of the call's boxes are added, or none: on an error the tracker is left as it was, the targets it
        already holds included.

        Raises:
            InputError: a malformed frame, or one of another size than the targets held; ``boxes`` not a list of
                boxes; a box that is not 4 finite numbers with w, h > 0, or that lies entirely outside the frame
                (the message gives its index).
        """
        if self._frame_shape is None:
            frame = as_frame(frame)
        else:
            frame = self._search.check_frame(frame, self._frame_shape, RESTART)
        states = []
        for i, box in enumerate(_box_list(boxes)):
            try:
                states.append(self._search.start(frame, box))
            except InputError as e:
                raise InputError(f"box {i}: {e}") from None
        ids = list(range(self._next_id, self._next_id + len(states)))
        if states and self._embedding is not None:
            # the exemplars' kernels start each target's appearance memory, and are kept for its network calls
            exemplars = np.stack([st.exemplar for st in states])
            kernels = self._run(self._backend.embed, exemplars)
            extents = np.stack([self._search.appearance_extent(st.size) for st in states])
            for st, vector in zip(states, self._embedding(to_array(kernels), extents, exemplars), strict=True):
                self._search.remember(st, vector)
            self._kernels.update((i, kernels[j : j + 1]) for j, i in enumerate(ids))
        self._targets.update(zip(ids, states, strict=True))
        try:  # a head that calibrates itself on each target's own frame (box_calibration), all of them in one batch
            calibrations = {i: self._search.calibration(frame, st) for i, st in zip(ids, states, strict=True)}
            plans = {i: plan for i, plan in calibrations.items() if plan is not None}
            if plans:
                outputs = self._score(plans)
                for i, plan in plans.items():
                    plan.decode(outputs[i])
        except BaseException:
            for i in ids:
                self._targets.pop(i)
                self._kernels.pop(i, None)
            self._layout = ()  # the next call's kernels are built anew
            raise
        self._next_id += len(states)
        if self._targets:
            self._frame_shape = (frame.shape[0], frame.shape[1])
        return ids

    def remove(self, target_id: int) -> None:
        """Stop tracking target ``target_id``; the others go on as they were.

        Raises:
            UnknownTargetError: no target has this id (never added, or already removed).
        """
        try:
            held = target_id in self._targets
        except TypeError:  # unhashable: no id at all
            held = False
        if not held:
            ids = ", ".join(map(str, self._targets)) or "none"
            raise UnknownTargetError(f"no target with id {target_id!r} (ids held: {ids})")
        del self._targets[target_id]
        self._kernels.pop(target_id, None)
        if not self._targets:
            self._frame_shape = None  # a new stream may start, of any size

    def update(self, frame: np.ndarray) -> dict[int, TrackResult]:
        """Locate every target in the next frame: ``{id: TrackResult}``, in the order of :attr:`ids`. With no
        targets the answer is ``{}``.

        On an error no target's state changes.

        Raises:
            InputError: a malformed frame, or one of another size than the targets'.
        """
        if self._frame_shape is None:
            as_frame(frame)  # a bad frame is an error even with nothing to track
            return {}
        frame = self._search.check_frame(frame, self._frame_shape, RESTART)
        # search: each target plans its crops (several scales while tracking, a widening grid while lost) ...
        plans = {i: self._search.plan(frame, st) for i, st in self._targets.items()}
        # ... all of them are scored in batched network calls, then each target decodes its own outputs
        outputs = self._score(plans)
        peaks = {i: plans[i].decode(outputs[i]) for i in plans}
        vectors: dict[int, np.ndarray] = {}
        features: dict[int, np.ndarray] = {}
        wants = self._search.wants_appearance
        verified = [i for i in peaks if self._embedding is not None and wants(self._targets[i], peaks[i])]
        if verified:  # each verified target's box (while lost, each candidate) against its own memory, in one batch
            entries = [(self._targets[i], peaks[i]) for i in verified]
            judged = self._search.verify(frame, entries, self._appearance_maps, self._embedding)
            for i, (peak, vector, maps) in zip(verified, judged, strict=True):
                peaks[i], vectors[i], features[i] = peak, vector, maps
        results = {i: self._search.conclude(peaks[i], self._targets[i], vectors.get(i)) for i in peaks}
        rate = self.config.template_rate
        for i in features:
            if rate and self._targets[i].remembered:  # its kernel towards the target as it looks now
                self._kernels[i] = blend_kernel(self._kernels[i], features[i], rate)
                self._layout = ()  # the calls' kernels are built anew
        return results

    def _score(self, plans: dict[int, SearchPlan]) -> dict[int, dict[str, np.ndarray]]:
        """The network's finite outputs on each target's ``N_i`` crops, in calls of ``batch_targets``.

        Backends take the search's ``crops_per_target`` crops per target copy, so each target's crops are padded
        to a multiple of it and it is scored as that many copies (one while tracking, more while lost, as
        SiamFCTracker does). The calls' kernels are rebuilt only when that layout changes (a target added,
        removed, lost or found).
        """
        per_target = self._search.crops_per_target
        copies = {i: -(-len(p.crops) // per_target) for i, p in plans.items()}
        layout = _calls(copies, self._batch_targets)
        if layout != self._layout:
            self._call_kernels, self._layout = [self._layout_kernel(call) for call in layout], layout
        responses = {}
        for call, kernel in zip(layout, self._call_kernels, strict=True):
            crops = np.concatenate([_padded(plans[i].crops, c * per_target) for i, c in call])
            out = pp.finite_outputs(self._run(self._backend.score, kernel, crops))
            starts = np.cumsum([0] + [c * per_target for _, c in call])
            for (i, _), s in zip(call, starts, strict=False):
                responses[i] = {name: v[s : s + len(plans[i].crops)] for name, v in out.items()}
        return responses

    def _layout_kernel(self, layout: tuple[tuple[int, int], ...]) -> object:
        """The kernel handle of ``layout``'s targets and copies. Each target's exemplar is embedded once (those
        not embedded yet, in one batch) and its kernel repeated and joined with the others'; for a backend whose
        handles cannot be joined that way, the whole layout is embedded again."""
        new = [i for i, _ in layout if i not in self._kernels]
        if new:
            kernels = self._run(self._backend.embed, np.stack([self._targets[i].exemplar for i in new]))
            self._kernels.update((i, kernels[j : j + 1]) for j, i in enumerate(new))
        joined = joined_kernels([(self._kernels[i], c) for i, c in layout])
        if joined is not None:
            return joined
        exemplars = np.concatenate([np.repeat(self._targets[i].exemplar[None], c, axis=0) for i, c in layout])
        return self._run(self._backend.embed, exemplars)


def _calls(copies: dict[int, int], size: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Targets ``{id: copies}`` grouped, in order, into network calls of at most ``size`` copies (a target with
    more copies than that gets a call of its own)."""
    calls: list[list[tuple[int, int]]] = [[]]
    for i, c in copies.items():
        if calls[-1] and sum(n for _, n in calls[-1]) + c > size:
            calls.append([])
        calls[-1].append((i, c))
    return tuple(tuple(call) for call in calls if call)


def _padded(crops: np.ndarray, n: int) -> np.ndarray:
    """``crops`` grown to ``n`` by repeating the last one (real pixels: no NaN from an all-zero crop)."""
    return crops if len(crops) == n else np.concatenate([crops, np.repeat(crops[-1:], n - len(crops), axis=0)])


def _box_list(boxes: object) -> list[object]:
    """``boxes`` as a list of boxes (each still to be checked); a single box or a non-list is an InputError."""
    if isinstance(boxes, np.ndarray):
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise InputError(f"boxes must be an (N, 4) array of x, y, w, h rows, got shape {boxes.shape}")
        return list(boxes)
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Iterable):
        raise InputError(f"boxes must be a list of (x, y, w, h) boxes, got {type(boxes).__name__}")
    boxes = list(boxes)
    if boxes and all(isinstance(v, (int, float, np.number)) for v in boxes):
        raise InputError("boxes must be a list of (x, y, w, h) boxes; for one target pass [box], not box")
    return boxes
