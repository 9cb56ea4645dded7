"""One target's search around the network, whatever its head: the long-term re-detection of SiamRPN-LT (pysot)
for targets that leave the view or are occluded, and the found decision; each head's tracking step is its
decoder's (:mod:`tracker.heads`).

Everything here is numpy and geometry: which crops to score, and how to turn their responses into the target's
next box. The network runs elsewhere (:class:`~tracker.SiamFCTracker` for one target,
:class:`~tracker.MultiTracker` for many in one batch), so a plan's crops can be scored alone or stacked with
other targets'. Boxes are 0-based ``x, y, w, h`` floats in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from . import postprocess as pp
from .appearance import Embedding, Memory
from .config import ModelConfig, TrackerConfig
from .errors import InputError
from .geometry import Box, as_box, as_frame, context_size, crop_and_resize, grid_offsets, tiles_to_cover
from .result import TrackResult

MEMORY_EVERY = 10  # frames between two appearances a verifying tracker remembers (while tracking, verified)
SCAN_BLOCK = 3  # tiles a side of each block of the whole-frame scan while lost (9 crops, as the capped local grid)


@dataclass(frozen=True)
class Peak:
    """A search's best candidate for the target."""

    center: np.ndarray  # (cx, cy), frame pixels
    size: np.ndarray  # (w, h), frame pixels
    score: float  # sigmoid of the peak response
    psr: float  # peak-to-sidelobe ratio of the raw response
    # while lost, the re-detection's next separate peaks, for the verifier to judge too (redetect_candidates)
    alternates: tuple[Peak, ...] = ()


@dataclass
class TargetState:
    center: np.ndarray  # (cx, cy), frame pixels: the last confident position
    size: np.ndarray  # (w, h), frame pixels: the last confident size
    base_size: np.ndarray  # (w, h) at init, for the size clamp
    exemplar: np.ndarray  # exemplar crop, kept to embed it again as several targets for batched re-detection
    pad_value: tuple[float, ...]  # mean colour of the first frame, for crops beyond the border
    frame_shape: tuple[int, int]  # (H, W)
    lost_frames: int = 0  # consecutive frames without a confident peak; 0 while tracking
    reference: float | None = None  # peak score on the first frame tracked after the start: score's unit
    tracked: int = 0  # frames concluded since the start
    level: float = 0.0  # the target's own level: its highest score over its first reference_frames frames
    memory: Memory | None = None  # the target's appearances, when the tracker verifies (tracker.appearance)
    similarity: float | None = None  # the last similarity the verifier measured
    verified: int = 0  # the value of ``tracked`` at the last frame the verifier ran on
    verified_box: tuple[np.ndarray, np.ndarray] | None = None  # (center, size) at the last frame found and verified
    box_gain: np.ndarray | None = None  # (w, h) factors on every regressed box, set at init (box_calibration)
    # (center, size, lost_frames) held before a re-detection not yet confirmed (redetect_confirm), and its frames
    held: tuple[np.ndarray, np.ndarray, int] | None = None
    confirming: int = 0
    # (lost_frames before the last re-detection, frames left in which a loss resumes them: redetect_keep_reach)
    resume: tuple[int, int] | None = None
    remembered: bool = False  # whether the last frame concluded added its appearance to the memory


@dataclass(frozen=True)
class SearchPlan:
    """The search crops of one target for one frame, and how to read their responses."""

    crops: np.ndarray  # (N, search, search, 3) uint8 BGR
    decode: Callable[[dict[str, np.ndarray]], Peak]  # the network's finite outputs on the crops -> the best candidate


class TargetSearch:
    """One target's search, for any head: :meth:`start` on the first frame, then every frame :meth:`plan` the
    crops, score them with the network, and :meth:`conclude` with the decoded peak.

    Lost mode, re-detection and the found decision are here; what a head searches while tracking (``_track``),
    the map re-detection reads (``response``), its found thresholds (``FOUND``) and its score's unit
    (``RELATIVE_SCORE``) are its decoder's, a subclass in the head's module (:mod:`tracker.heads`). The trackers
    use nothing else than ``crops_per_target``, ``start``, ``check_frame``, ``plan`` (crops plus a ``decode`` of
    the network's outputs on them) and ``conclude``, so every head plugs into SiamFCTracker and MultiTracker alike.
    """

    # the found thresholds (TrackerConfig's fields of these names) where the config leaves them None, for this
    # head's score; calibrated with the absence benchmark (docs/ROBUSTNESS.md)
    FOUND: dict[str, float]
    # score: the peak probability relative to the first tracked frame's (True), or the probability itself
    RELATIVE_SCORE: bool
    crops_per_target: int  # the crops of one target copy in a network call while tracking
    WINDOW_INFLUENCE: float  # the cosine window's weight where TrackerConfig.window_influence is None

    def __init__(self, config: TrackerConfig, model_config: ModelConfig) -> None:
        self.config, self.model_config = config, model_config
        given = {name: getattr(config, name) for name in self.FOUND}
        self.found = {name: self.FOUND[name] if value is None else value for name, value in given.items()}
        given_window = config.window_influence
        self.window_influence = self.WINDOW_INFLUENCE if given_window is None else given_window

    def start(self, frame: np.ndarray, box: Sequence[float]) -> TargetState:
        """The state of a target inside ``box`` of a frame already checked by ``as_frame``.

        A box partly outside the frame is clipped to it.

        Raises:
            InputError: a box that is not 4 finite numbers with w, h > 0, or that lies entirely outside the frame.
        """
        box = as_box(box)
        height, width = frame.shape[:2]
        if box.x >= width or box.y >= height or box.x + box.w <= 0 or box.y + box.h <= 0:
            raise InputError(f"box {tuple(box)} lies entirely outside the {width}x{height} frame")
        box = box.clip(width, height)
        size = np.array([box.w, box.h])
        pad = tuple(float(v) for v in frame.reshape(-1, 3).mean(0))
        z_sz = context_size(box.w, box.h, self.config.context)
        exemplar = crop_and_resize(frame, box.center, z_sz, self.model_config.exemplar_size, pad)
        return TargetState(np.array(box.center), size, size.copy(), exemplar, pad, (height, width))

    @staticmethod
    def check_frame(
        frame: object, frame_shape: tuple[int, int], restart: str = "call init() again for a new stream"
    ) -> np.ndarray:
        """``frame`` as a BGR array of the size ``frame_shape`` (H, W) the targets were started on (``restart``
        says how to start on a new stream, in the error).

        Raises:
            InputError: a malformed frame, or one of another size.
        """
        frame = as_frame(frame)
        if frame.shape[:2] != frame_shape:
            raise InputError(
                f"frame size changed from {frame_shape[1]}x{frame_shape[0]} to "
                f"{frame.shape[1]}x{frame.shape[0]}; {restart}"
            )
        return frame

    def calibration(self, frame: np.ndarray, st: TargetState) -> SearchPlan | None:
        """The crops to score on the first frame, right after :meth:`start`, for a head that calibrates itself on
        the target (its decode updates ``st``); None for a head that does not, or with calibration off."""
        return None

    def plan(self, frame: np.ndarray, st: TargetState) -> SearchPlan:
        """The crops to score: near the last position at several scales while tracking; a widening grid while
        lost."""
        return self._redetect(frame, st) if st.lost_frames else self._track(frame, st)

    @property
    def verifies(self) -> bool:
        """Whether the found decision asks the appearance verifier too (``TrackerConfig.verify_threshold`` or
        ``verify_redetect``)."""
        return self.config.verify_threshold is not None or self.config.verify_redetect is not None

    def remember(self, st: TargetState, vector: np.ndarray) -> None:
        """Start ``st``'s appearance memory with the unit vector of its exemplar (``tracker.appearance``)."""
        st.memory = Memory(vector, self.config.verify_memory, distractors=self.config.redetect_distractors)

    def wants_appearance(self, st: TargetState, peak: Peak | None = None) -> bool:
        """Whether the verifier runs on the frame about to be concluded for ``st`` (with ``peak``): on every frame
        while the target is lost (a re-detection must verify), over the first ``reference_frames``, on the frames
        that add to the memory, at least every ``verify_every``-th frame while tracking, and on an ambiguous one
        (``verify_ambiguous``)."""
        if not self.verifies or st.memory is None:
            return False
        n = st.tracked + 1
        return bool(
            st.lost_frames
            or n <= self.config.reference_frames
            or n % MEMORY_EVERY == 0
            or n - st.verified >= (self.config.verify_every or 1)
            or (peak is not None and self._ambiguous(self._score_of(peak, st), st))
        )

    def appearance_crop(self, frame: np.ndarray, peak: Peak, st: TargetState) -> tuple[np.ndarray, np.ndarray]:
        """The exemplar-sized crop of the box ``peak`` would give, and that box's extent in it
        (:meth:`appearance_extent`): what the verifier embeds."""
        center, size = self._clamped(peak, st)
        z_sz = context_size(size[0], size[1], self.config.context)
        crop = crop_and_resize(frame, center, z_sz, self.model_config.exemplar_size, st.pad_value)
        return crop, self.appearance_extent(size)

    def appearance_extent(self, size: np.ndarray) -> np.ndarray:
        """A box of ``size`` (w, h) as fractions of the side of its exemplar crop (the context square around it):
        the cells of the exemplar features that the box covers (``tracker.appearance.box_cells``)."""
        return np.asarray(size, dtype=np.float64) / context_size(size[0], size[1], self.config.context)

    def conclude(self, peak: Peak, st: TargetState, appearance: np.ndarray | None = None) -> TrackResult:
        """Update ``st`` with the decoded ``peak`` and give the frame's answer; ``appearance``: the unit vector of
        :meth:`appearance_crop` when the tracker verifies on this frame (:meth:`wants_appearance`); on a frame it
        skips, the score carries the last similarity measured.

        While the target is judged absent the box stays where it was last found, its size frozen, and the next
        search reaches further.
        """
        # score: SiamFC's peak relative to the target's first tracked peak (targets differ in how high a good match
        # peaks); found: the score high enough for this target, and the peak sharp (thresholds calibrated with the
        # absence benchmark); a re-detection asks for a higher score than keeping track does
        if st.reference is None:
            st.reference = max(peak.score, 1e-6)
        score = self._score_of(peak, st)
        ambiguous = self._ambiguous(score, st)
        # lost, or a re-detection still being confirmed: the re-detection's bars
        lost = bool(st.lost_frames) or st.held is not None
        st.tracked += 1
        if st.tracked <= self.config.reference_frames:
            # the target's own level is still being measured: no evidence of a loss yet
            st.level = max(st.level, score)
            found = peak.psr > 0
        else:
            found = self._is_found(score, peak.psr, lost, st.level)
        similarity, st.remembered = None, False
        if appearance is not None and st.memory is not None:
            # "is this still my target?": the box's appearance against the target's own; the score carries it so
            # that a look-alike the network scores high is still scored low. Over the first reference_frames the
            # verifier measures too and vetoes nothing (the first frame's crop alone can be far from the target's
            # look a few frames on); the last of them is the first appearance remembered, then one every
            # MEMORY_EVERY frames while tracking and verified
            similarity = st.memory.similarity(appearance)
            measuring = st.tracked <= self.config.reference_frames
            # an ambiguous tracked frame is judged as a re-detection is, or at its own bar
            bar = self.config.verify_ambiguous_bar
            if ambiguous and bar is not None:  # ambiguous: tracked, never lost
                looks_like = similarity >= bar
            else:
                looks_like = self._looks_like(similarity, appearance, st.memory, lost or ambiguous, self._far(peak, st))
            if lost and found and not measuring and not looks_like:
                st.memory.refuse(appearance)  # a look-alike the score would have taken
            found = found and (measuring or looks_like)
            remember = st.tracked == self.config.reference_frames or st.tracked % MEMORY_EVERY == 0
            st.remembered = found and not st.lost_frames and remember and self._confident(score, st)
            if st.remembered:
                st.memory.add(appearance)
            st.similarity, st.verified = similarity, st.tracked
        if st.similarity is not None:
            score *= max(st.similarity, 0.0)
        if found:
            self._confirm(st, peak)
            self._keep_reach(st)
            # follow the peak; a re-detection keeps the held size (size updates stay frozen while lost)
            st.center, st.size = self._clamped(peak, st)
            st.lost_frames = 0
            if similarity is not None:
                st.verified_box = (st.center.copy(), st.size.copy())
        elif st.held is not None:
            # a re-detection lost again before it was confirmed: back to the box held before it, the search's reach
            # where it was
            center, size, lost = st.held
            st.center, st.size, st.lost_frames, st.held = center.copy(), size.copy(), lost + 1, None
        else:
            # hold the last confident box rather than drift onto background; the next search reaches further. A
            # tracker whose verifier judges tracked frames holds the last box it verified: the frames it skipped
            # since may have followed something else (one that judges re-detections only has judged none of them)
            judged = self.config.verify_threshold is not None
            if not st.lost_frames and judged and st.verified_box is not None:
                st.center, st.size = (v.copy() for v in st.verified_box)
            if not st.lost_frames and st.resume is not None:  # lost again soon after a re-detection
                st.lost_frames = st.resume[0]
            st.resume = None
            st.lost_frames += 1
        return TrackResult(self.box(st), score, found, similarity)

    def candidates(self, peak: Peak, st: TargetState) -> tuple[Peak, ...]:
        """The peaks the verifier judges for ``st`` on this frame: ``peak``, and while the target is lost (past its
        first ``reference_frames``, no re-detection being confirmed) its alternates (``redetect_candidates``)."""
        return (peak, *peak.alternates) if st.lost_frames and self._judged(st) else (peak,)

    def verify(
        self,
        frame: np.ndarray,
        entries: Sequence[tuple[TargetState, Peak]],
        features: Callable[[np.ndarray], np.ndarray],
        embedding: Embedding,
    ) -> list[tuple[Peak, np.ndarray, np.ndarray]]:
        """The verifier on one or more targets' frames, in one batch: per ``(state, peak)`` entry its
        :meth:`candidates`' appearance crops, their ``features`` (the network's exemplar branch, (B, C, k, k)) and
        ``embedding``'s unit vectors; per entry, the candidate :meth:`choose` takes, its unit vector and its feature
        map (1, C, k, k), for :meth:`conclude` and the template update."""
        candidates = [self.candidates(peak, st) for st, peak in entries]
        views = [self.appearance_crop(frame, p, st) for (st, _), own in zip(entries, candidates, strict=True)
                 for p in own]  # fmt: skip
        crops, extents = (np.stack(v) for v in zip(*views, strict=True))
        maps = features(crops)
        vectors = embedding(maps, extents, crops)
        chosen, start = [], 0  # each entry's candidates are consecutive rows
        for (st, _), own in zip(entries, candidates, strict=True):
            k = start + self.choose(own, vectors[start : start + len(own)], st)
            chosen.append((own[k - start], vectors[k], maps[k : k + 1]))
            start += len(own)
        return chosen

    def choose(self, peaks: Sequence[Peak], vectors: Sequence[np.ndarray], st: TargetState) -> int:
        """Which of :meth:`candidates` ``peaks`` (with the unit vectors of their appearance crops) to conclude with:
        the one most like the target among those whose score and similarity pass the re-detection's bars; the first
        where none does (it is then judged not found, as it would be alone)."""
        if len(peaks) == 1 or st.memory is None or st.reference is None:
            return 0
        index, best = 0, -math.inf
        for i, (peak, vector) in enumerate(zip(peaks, vectors, strict=True)):
            score = self._score_of(peak, st)
            similarity = st.memory.similarity(vector)
            scored = self._is_found(score, peak.psr, True, st.level)
            looks_like = self._looks_like(similarity, vector, st.memory, True, self._far(peak, st))
            if scored and looks_like and similarity > best:
                index, best = i, similarity
        return index

    def _confirm(self, st: TargetState, peak: Peak) -> None:
        """Count a found frame towards confirming a re-detection (``redetect_confirm``): a re-detection beyond the
        tracking search's reach of the held box keeps that box until it has been found that many frames in a row;
        one within it counts at once."""
        # while lost nothing is held: a re-detection lost again before it was confirmed has returned the held box
        if st.lost_frames and self.config.redetect_confirm:
            # within the reach: the target coming back where it left, not a jump to something else
            if self._far(peak, st):
                st.held, st.confirming = (st.center.copy(), st.size.copy(), st.lost_frames), 0
        elif st.held is not None:
            st.confirming += 1
            if st.confirming >= self.config.redetect_confirm:
                st.held = None

    def _keep_reach(self, st: TargetState) -> None:
        """On a found frame, before ``st`` follows it: a re-detection (``st`` lost) remembers how long the target had
        been lost, for ``redetect_keep_reach`` frames; each later found frame counts one of them down."""
        keep = self.config.redetect_keep_reach
        if st.lost_frames and keep:
            st.resume = (st.lost_frames, keep)
        elif st.resume is not None:
            st.resume = (st.resume[0], st.resume[1] - 1) if st.resume[1] > 1 else None

    def _far(self, peak: Peak, st: TargetState) -> bool:
        """Whether ``peak`` is a re-detection (``st`` lost) beyond the tracking search's reach of the held box: a jump
        to somewhere else rather than the target coming back where it left."""
        return bool(st.lost_frames) and bool(np.abs(peak.center - st.center).max() > self._reach(st))

    def _reach(self, st: TargetState) -> float:
        """How far from the held centre, in frame pixels, a tracking search's response reaches (either axis)."""
        return self._tiling()[0] * self._search_side(st.size) / self.model_config.search_size

    def _tiling(self) -> tuple[float, float]:
        """In search-crop pixels: how far one search crop's response reaches from its centre (either axis), and
        the spacing of crops whose response maps abut into one map."""
        r, stride = self.model_config.response_size, self.model_config.stride
        return (r - 1) / 2 * stride, r * stride

    def _score_of(self, peak: Peak, st: TargetState) -> float:
        """``peak``'s score as ``TrackResult.score`` gives it before the similarity: relative to the target's first
        peak for a head whose ``RELATIVE_SCORE`` says so, capped at 1."""
        return min(1.0, peak.score / st.reference if self.RELATIVE_SCORE else peak.score)

    def _ambiguous(self, score: float, st: TargetState) -> bool:
        """Whether a tracked frame (past the target's first ``reference_frames``) at ``score`` is below
        ``verify_ambiguous`` x the target's own level."""
        share = self.config.verify_ambiguous
        tracked = not st.lost_frames and self._judged(st)
        return share is not None and tracked and st.reference is not None and score < share * st.level

    def _confident(self, score: float, st: TargetState) -> bool:
        """Whether a frame at ``score`` (before the similarity) is confident enough for its appearance to join the
        memory: at least ``memory_confidence`` x the target's own level; any frame where that is None, and over the
        target's first ``reference_frames``, while its level is measured."""
        share = self.config.memory_confidence
        return share is None or st.tracked <= self.config.reference_frames or score >= share * st.level

    def _judged(self, st: TargetState) -> bool:
        """Whether the frame about to be concluded for ``st`` is past the target's first ``reference_frames`` (no
        veto while its level is measured) with no re-detection being confirmed."""
        return st.held is None and st.tracked >= self.config.reference_frames

    def _looks_like(
        self, similarity: float, vector: np.ndarray, memory: Memory, lost: bool, far: bool = False
    ) -> bool:
        """Whether a box whose appearance ``vector`` has ``similarity`` with the target's memory passes the
        similarity's bar (:meth:`_similarity_needed`); while ``lost``, one short of it by at most
        ``distractor_margin`` passes where it is that much nearer the target than every refused look-alike."""
        needed = self._similarity_needed(lost, far)
        if similarity >= needed:
            return True
        margin = self.config.distractor_margin
        nearest = memory.distractor_similarity(vector) if lost else None
        return nearest is not None and similarity >= needed - margin and similarity >= nearest + margin

    def _similarity_needed(self, lost: bool, far: bool = False) -> float:
        """The appearance similarity a found target needs: ``verify_threshold`` while tracking; while ``lost``,
        ``verify_redetect`` where it is set, and ``verify_redetect_far`` for a candidate ``far`` from the held box
        where that is set; -1 (any) where none applies."""
        cfg = self.config
        if lost and far and cfg.verify_redetect_far is not None:
            return cfg.verify_redetect_far
        needed = cfg.verify_redetect if lost and cfg.verify_redetect is not None else cfg.verify_threshold
        return -1.0 if needed is None else needed

    def box(self, st: TargetState) -> Box:
        """The target's current box, inside the frame."""
        height, width = st.frame_shape
        return Box.from_center(st.center[0], st.center[1], st.size[0], st.size[1]).clip(width, height)

    def _is_found(self, score: float, psr: float, lost: bool, level: float) -> bool:
        """Score and sharpness both at or above their thresholds, the score's relative to the target's own
        ``level``: while tracking, the lower of ``found_threshold`` and ``found_fraction`` x ``level``; while
        ``lost``, the lower of ``redetect_threshold`` and ``redetect_fraction`` x ``level``, but at least
        ``redetect_floor``. A flat response (PSR 0) never counts: it says nothing about where the target is."""
        f = self.found
        if not lost:
            threshold = min(f["found_threshold"], f["found_fraction"] * level)
        else:
            threshold = max(f["redetect_floor"], min(f["redetect_threshold"], f["redetect_fraction"] * level))
        return score >= threshold and psr >= f["found_psr"] and psr > 0

    def _search_side(self, size: np.ndarray) -> float:
        """Side, in frame pixels, of the search crop for a target of ``size`` (SiamFC: x_sz = z_sz * 255 / 127)."""
        mcfg = self.model_config
        return context_size(size[0], size[1], self.config.context) * mcfg.search_size / mcfg.exemplar_size

    def _track(self, frame: np.ndarray, st: TargetState) -> SearchPlan:
        """The head's own search while tracking: crops near the last position and how to read their outputs."""
        raise NotImplementedError

    def _redetect(self, frame: np.ndarray, st: TargetState) -> SearchPlan:
        """Long-term search while lost: crops at the held scale on a grid, around the held centre or, every other
        frame once the target has been lost for more than ``lost_scan_after`` frames, on one block of a grid
        covering the whole frame (the next block each time, round robin), so a target that comes back anywhere is
        found within one sweep.

        The local grid reaches ``lost_search_growth`` times further per lost frame, up to ``lost_search_max`` times
        the tracking search's reach, never further than the frame's borders. Crops ``response_size * stride``
        crop pixels apart give response maps that abut into one map; its peak, without a cosine window (the
        target may be anywhere), is the candidate, its PSR taken over a tracking-sized window around it.
        """
        cfg, mcfg = self.config, self.model_config
        side = self._search_side(st.size)
        crop_to_frame = side / mcfg.search_size
        r, stride = mcfg.response_size, mcfg.stride
        tile_reach, spacing = self._tiling()
        height, width = st.frame_shape
        after = cfg.lost_scan_after
        scanning = after is not None and st.lost_frames > after and (st.lost_frames - after) % 2 == 1
        if scanning:
            center, cols, rows = self._scan_block(st, crop_to_frame, (st.lost_frames - after - 1) // 2)
        else:
            # growth ** lost_frames, in logs: it would overflow a float after a few thousand lost frames
            growth = math.exp(min(st.lost_frames * math.log(cfg.lost_search_growth), math.log(cfg.lost_search_max)))
            to_border = np.maximum(st.center, [width - 1 - st.center[0], height - 1 - st.center[1]]) / crop_to_frame
            cols, rows = (tiles_to_cover(min(tile_reach * growth, b), tile_reach, spacing) for b in to_border)
            center = st.center
        xs = center[0] + grid_offsets(cols, spacing * crop_to_frame)
        ys = center[1] + grid_offsets(rows, spacing * crop_to_frame)
        crops = np.stack([crop_and_resize(frame, (x, y), side, mcfg.search_size, st.pad_value) for y in ys for x in xs])

        # frame pixels of each cell of the joined map: a cell centred beyond the frame's border is no candidate
        # (the padding's edge against the background can make a sharp peak there)
        cell_x = center[0] + grid_offsets(cols * r, stride * crop_to_frame)
        cell_y = center[1] + grid_offsets(rows * r, stride * crop_to_frame)
        outside = ((cell_y < 0) | (cell_y > height - 1))[:, None] | ((cell_x < 0) | (cell_x > width - 1))[None, :]

        def decode(outputs: dict[str, np.ndarray]) -> Peak:
            logits = pp.mosaic(self.response(outputs), rows, cols)
            if outside.any() and not outside.all():
                logits = np.where(outside, logits.min(), logits)
            middle = (np.array([cols, rows]) * r - 1) / 2
            iy, ix = np.unravel_index(int(np.argmax(logits)), logits.shape)
            held_cell: tuple[tuple[int, int], ...] = ()
            if not scanning:  # the local grid is centred on the held box
                # a candidate away from the held box must beat what is there by a margin, or the held box stays
                # the candidate: a jump needs evidence, not the best of many weak peaks
                hx, hy = np.round(middle).astype(int)
                held_cell = (held_best(logits, hy, hx),)
                far = np.abs(np.array([ix, iy]) - middle).max() > (r - 1) / 2
                if far and pp.sigmoid(logits[iy, ix]) < cfg.redetect_margin * pp.sigmoid(logits[held_cell[0]]):
                    iy, ix = held_cell[0]

            def peak(cell: tuple[int, int]) -> Peak:
                offset = (np.array(cell[::-1]) - middle) * stride
                if cfg.redetect_refine:  # the head's own centre at that cell of its tile
                    tile = cell[0] // r * cols + cell[1] // r
                    offset = offset + self.centre_shift(outputs, tile, (cell[0] % r, cell[1] % r))
                offset = offset * crop_to_frame
                psr = pp.peak_to_sidelobe(pp.peak_window(logits, r, cell), cfg.psr_exclude)
                return Peak(center + offset, st.size, float(pp.sigmoid(logits[cell])), psr)

            if cfg.redetect_candidates == 1 or not self.verifies:
                return peak((iy, ix))
            # the verifier judges the next separate peaks too: the held box's best cell (when the local grid did not
            # take it), then the highest cells left, each at least the target's half-size from those taken
            radius = max(1, math.ceil(float(st.size.max()) / crop_to_frame / stride / 2))
            cells = separate_peaks(np.where(outside, -np.inf, logits), (iy, ix), held_cell, cfg.redetect_candidates,
                                   radius)  # fmt: skip
            return replace(peak(cells[0]), alternates=tuple(peak(c) for c in cells[1:]))

        return SearchPlan(crops, decode)

    def response(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The single map (N, r, r) of logits that lost-mode re-detection searches, from the head's outputs."""
        raise NotImplementedError

    def centre_shift(self, outputs: dict[str, np.ndarray], crop: int, cell: tuple[int, int]) -> np.ndarray:
        """(dx, dy), search-crop pixels: where the head puts the target's centre relative to ``cell`` (row, col) of
        crop ``crop``'s map (``redetect_refine``); a head that regresses no box: none."""
        return np.zeros(2)

    def _scan_block(self, st: TargetState, crop_to_frame: float, step: int) -> tuple[np.ndarray, int, int]:
        """Centre and tiles (cols, rows) of the ``step``-th block (round robin, row by row) of up to
        ``SCAN_BLOCK`` x ``SCAN_BLOCK`` tiles of the grid that covers the whole frame at the held scale."""
        tile_reach, spacing = self._tiling()
        height, width = st.frame_shape
        middle = np.array([(width - 1) / 2, (height - 1) / 2])
        cols, rows = (tiles_to_cover(m / crop_to_frame, tile_reach, spacing) for m in middle)
        bc, br = min(SCAN_BLOCK, cols), min(SCAN_BLOCK, rows)
        across = -(-cols // bc)
        k = step % (across * -(-rows // br))
        x0, y0 = min(k % across * bc, cols - bc), min(k // across * br, rows - br)
        xs = grid_offsets(cols, spacing * crop_to_frame)[x0 : x0 + bc]
        ys = grid_offsets(rows, spacing * crop_to_frame)[y0 : y0 + br]
        return middle + np.array([xs.mean(), ys.mean()]), bc, br

    def _clamped(self, peak: Peak, st: TargetState) -> tuple[np.ndarray, np.ndarray]:
        """Centre inside the frame; size within [min_scale, max_scale] x the initial size, 1 pixel and the frame."""
        height, width = st.frame_shape
        frame_size = np.array([width, height], dtype=np.float64)
        center = np.clip(peak.center, 0.0, frame_size - 1.0)
        low = np.maximum(st.base_size * self.config.min_scale, 1.0)
        high = np.minimum(st.base_size * self.config.max_scale, frame_size)
        return center, np.clip(peak.size, low, high)


def held_best(logits: np.ndarray, hy: int, hx: int) -> tuple[int, int]:
    """The highest cell (row, col) of ``logits`` within one cell of the held box's cell (``hy``, ``hx``)."""
    y0, x0 = max(0, hy - 1), max(0, hx - 1)
    window = logits[y0 : hy + 2, x0 : hx + 2]
    iy, ix = np.unravel_index(int(np.argmax(window)), window.shape)
    return int(iy) + y0, int(ix) + x0


def separate_peaks(
    logits: np.ndarray, first: tuple[int, int], also: Sequence[tuple[int, int]], count: int, radius: int
) -> list[tuple[int, int]]:
    """Up to ``count`` cells (row, col) of ``logits``: ``first``, then each of ``also``, then the highest cells
    left, each more than ``radius`` cells (either axis) from every cell taken before it; cells at -inf are none."""
    taken = [(int(first[0]), int(first[1]))]
    left = np.array(logits, dtype=np.float64)

    def take(cell: tuple[int, int]) -> None:
        y, x = cell
        left[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = -np.inf

    take(taken[0])
    for cell in also:
        if len(taken) < count and np.isfinite(left[cell]):
            taken.append((int(cell[0]), int(cell[1])))
            take(taken[-1])
    while len(taken) < count:
        iy, ix = np.unravel_index(int(np.argmax(left)), left.shape)
        if not np.isfinite(left[iy, ix]):
            break
        taken.append((int(iy), int(ix)))
        take(taken[-1])
    return taken
