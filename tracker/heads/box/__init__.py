"""The single-pass box head (SiamFC++'s design): one crop per frame, the box read off the regression at the best
cell.

The decoding is the usual pysot / SiamFC++ post-processing: the classification and quality probabilities
multiplied into a score per cell; a penalty on each cell's change of size and aspect ratio against the current
box; a cosine window against large jumps; and the box updated towards the chosen cell's by a rate weighted by its
penalised score. Lost mode, re-detection and the found decision are :class:`~tracker.search.TargetSearch`'s, on
the map of that score. Its network is :mod:`.net` (:class:`BoxHead`).
"""

from __future__ import annotations

import numpy as np

from ... import postprocess as pp
from ...config import ModelConfig, TrackerConfig
from ...geometry import crop_and_resize, grid_offsets
from ...search import Peak, SearchPlan, TargetSearch, TargetState

PROB_EPS = 1e-7  # probabilities are kept this far from 0 and 1 before they are turned back into logits
BOX_GAIN = (0.5, 2.0)  # the range of a target's width and height correction (TrackerConfig.box_calibration)


def build(config: ModelConfig, channels: int):  # -> BoxHead (torch, imported here only)
    """The head's network: the tower reads one channel per exemplar feature cell ("same" backbones)."""
    from .net import BoxHead

    cells = (-(-config.exemplar_size // config.stride)) ** 2
    return BoxHead(cells, config.tower, config.tower_layers, config.stride, config.separable_tower)


def crops_per_target(config: TrackerConfig) -> int:
    """Search crops per target a frame: one."""
    return 1


def decode_boxes(ltrb: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes ``(4, R, R)`` as centre and size ``(cx, cy, w, h)``, search-crop pixels from the crop's centre, from
    distances ``ltrb`` (4, R, R) to the left, top, right and bottom sides at cells ``offsets`` (R,) from it."""
    left, top, right, bottom = ltrb
    cx = offsets[None, :] + (right - left) / 2
    cy = offsets[:, None] + (bottom - top) / 2
    return np.stack([cx, cy, left + right, top + bottom])


class BoxSearch(TargetSearch):
    """Search for the box head (``ModelConfig(head="box")``): one search crop per frame while tracking."""

    # the score is the probability itself: classification x quality separates a target in view from one gone
    # better than the same relative to the first frame's (docs/ROBUSTNESS.md)
    # found_fraction and redetect_floor: a target scored low from the start keeps its track at a quarter of its
    # own level, and a re-detection never takes less than the old absolute found threshold
    FOUND = {"found_threshold": 0.05, "found_psr": 0.0, "redetect_threshold": 0.5, "redetect_fraction": 0.6,
             "found_fraction": 0.25, "redetect_floor": 0.05}  # fmt: skip
    RELATIVE_SCORE = False
    WINDOW_INFLUENCE = 0.21  # SiamFC++'s published value
    # where neither TrackerConfig nor the weights' settings file (tracker.tuned) sets them: SiamFC++'s published values
    PENALTY_K, BOX_LR = 0.04, 0.52
    ASPECT_RATE = 1.0  # the aspect ratio follows the regressed box as fast as the size does

    def __init__(self, config: TrackerConfig, model_config: ModelConfig) -> None:
        super().__init__(config, model_config)
        self.crops_per_target = crops_per_target(config)
        self.penalty_k = self.PENALTY_K if config.penalty_k is None else config.penalty_k
        self.box_lr = self.BOX_LR if config.box_lr is None else config.box_lr
        self.aspect_rate = self.ASPECT_RATE if config.aspect_rate is None else config.aspect_rate
        self.box_calibration = config.box_calibration or 0.0
        r = model_config.response_size
        self._offsets = grid_offsets(r, model_config.stride)  # each cell's displacement from the crop's centre
        window = pp.hann_window(r)
        self._cell_window = window / window.max()

    def response(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits of :meth:`probability`: the score map (N, R, R) that the found decision and lost-mode
        re-detection read."""
        return _logit(self.probability(outputs))

    def centre_shift(self, outputs: dict[str, np.ndarray], crop: int, cell: tuple[int, int]) -> np.ndarray:
        """The regressed box's centre at ``cell`` of crop ``crop``, relative to the cell (search-crop pixels)."""
        left, top, right, bottom = outputs["box"][crop][:, cell[0], cell[1]]
        return np.array([right - left, bottom - top], dtype=np.float64) / 2

    @staticmethod
    def probability(outputs: dict[str, np.ndarray]) -> np.ndarray:
        """``sigmoid(cls) * sigmoid(quality)`` (N, R, R), kept ``PROB_EPS`` from 0 and 1."""
        return np.clip(pp.sigmoid(outputs["cls"]) * pp.sigmoid(outputs["quality"]), PROB_EPS, 1 - PROB_EPS)

    def _track(self, frame: np.ndarray, st: TargetState) -> SearchPlan:
        """One crop around the last position, at the last size's scale; the best penalised cell's box, smoothed."""
        crop, to_crop = self._crop(frame, st)

        def decode(outputs: dict[str, np.ndarray]) -> Peak:
            score, (cx, cy, w, h), penalty, (iy, ix) = self._best(outputs, st, to_crop)
            best = float(score[iy, ix])
            rate = float(penalty * score[iy, ix] * self.box_lr)
            center = st.center + np.array([cx, cy]) / to_crop
            regressed = np.array([w, h]) / to_crop
            size = st.size * (1 - rate) + regressed * rate
            if self.aspect_rate != 1.0:  # the size as above, the aspect ratio at its own rate (in log space)
                log_aspect = np.log(st.size[0] / st.size[1])
                regressed = np.maximum(regressed, 1e-6)
                log_aspect += self.aspect_rate * rate * (np.log(regressed[0] / regressed[1]) - log_aspect)
                size = np.sqrt(size[0] * size[1]) * np.exp(np.array([0.5, -0.5]) * log_aspect)
            psr = pp.peak_to_sidelobe(_logit(score), self.config.psr_exclude)
            return Peak(center, size, best, psr)

        return SearchPlan(crop[None], decode)

    def calibration(self, frame: np.ndarray, st: TargetState) -> SearchPlan | None:
        """With ``box_calibration``, the first frame's crop around the given box; its decode sets ``st.box_gain``
        to that share (in log space) of the given box's width and height over the regressed box's, kept within
        ``BOX_GAIN``. None without it."""
        if not self.box_calibration:
            return None
        crop, to_crop = self._crop(frame, st)

        def decode(outputs: dict[str, np.ndarray]) -> Peak:
            score, (cx, cy, w, h), _, (iy, ix) = self._best(outputs, st, to_crop, gain=False)
            regressed = np.maximum(np.array([w, h]) / to_crop, 1e-6)
            gain = np.exp(self.box_calibration * np.log(st.size / regressed))
            st.box_gain = np.clip(gain, *BOX_GAIN)
            center = st.center + np.array([cx, cy]) / to_crop
            return Peak(center, regressed, float(score[iy, ix]), 0.0)

        return SearchPlan(crop[None], decode)

    def _crop(self, frame: np.ndarray, st: TargetState) -> tuple[np.ndarray, float]:
        """The search crop around the last position at the last size's scale, and its scale (crop px / frame px)."""
        side = self._search_side(st.size)
        crop = crop_and_resize(frame, st.center, side, self.model_config.search_size, st.pad_value)
        return crop, self.model_config.search_size / side

    def _best(
        self, outputs: dict[str, np.ndarray], st: TargetState, to_crop: float, gain: bool = True
    ) -> tuple[np.ndarray, tuple[float, float, float, float], np.float32, tuple[int, int]]:
        """The score map, the box ``(cx, cy, w, h)`` at the best penalised cell (crop pixels from its centre; w and
        h times the target's ``box_gain`` where ``gain``), the size and aspect penalty there, and that cell
        ``(iy, ix)``. Only the sizes are decoded at every cell: the penalty needs them."""
        cfg = self.config
        score = self.probability(outputs)[0]
        left, top, right, bottom = outputs["box"][0]
        w, h = left + right, top + bottom
        if gain and st.box_gain is not None:
            w, h = w * st.box_gain[0], h * st.box_gain[1]
        tw, th = st.size * to_crop
        # penalty on the change of size (of the context square, as SiamFC measures it) and of aspect ratio
        size_change = _change(_context_side(w, h, cfg.context) / _context_side(tw, th, cfg.context))
        ratio_change = _change((tw / th) / np.maximum(w / np.maximum(h, 1e-6), 1e-6))
        penalty = np.exp(-(size_change * ratio_change - 1) * self.penalty_k)
        influence = self.window_influence
        pscore = penalty * score * (1 - influence) + self._cell_window * influence
        iy, ix = divmod(int(np.argmax(pscore)), pscore.shape[1])
        offsets = self._offsets
        cx = offsets[ix] + (right[iy, ix] - left[iy, ix]) / 2
        cy = offsets[iy] + (bottom[iy, ix] - top[iy, ix]) / 2
        box = (float(cx), float(cy), float(w[iy, ix]), float(h[iy, ix]))
        return score, box, penalty[iy, ix], (iy, ix)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _context_side(w: np.ndarray, h: np.ndarray, context: float) -> np.ndarray:
    pad = context * (w + h)
    return np.sqrt(np.maximum((w + pad) * (h + pad), 1e-12))


def _change(ratio: np.ndarray) -> np.ndarray:
    return np.maximum(ratio, 1.0 / np.maximum(ratio, 1e-12))


Search = BoxSearch
