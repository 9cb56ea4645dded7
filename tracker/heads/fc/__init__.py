"""SiamFC's head (Bertinetto et al. 2016): a similarity map of the exemplar against every window of the search
region, searched at several scales. Its network is :mod:`.net` (:class:`SimilarityHead`); its decoder is
:class:`SiamFCSearch`."""

from __future__ import annotations

import numpy as np

from ... import postprocess as pp
from ...config import ModelConfig, TrackerConfig
from ...geometry import crop_and_resize
from ...search import Peak, SearchPlan, TargetSearch, TargetState


def build(config: ModelConfig, channels: int):  # -> SimilarityHead (torch, imported here only)
    """The head's network over backbone features of ``channels`` channels."""
    from .net import SimilarityHead

    return SimilarityHead(config.metric, config.out_scale)


def crops_per_target(config: TrackerConfig) -> int:
    """Search crops per target a frame: one per scale."""
    return config.scale_num


class SiamFCSearch(TargetSearch):
    """SiamFC's search: ``scale_num`` crops around the last position, the best scale's upsampled response."""

    FOUND = {"found_threshold": 0.2, "found_psr": 2.0, "redetect_threshold": 0.6, "redetect_fraction": 1.0,
             "found_fraction": 1.0, "redetect_floor": 0.0}  # fmt: skip
    RELATIVE_SCORE = True
    WINDOW_INFLUENCE = 0.3  # chosen on dev for the classic weights (tracker.config)

    def __init__(self, config: TrackerConfig, model_config: ModelConfig) -> None:
        super().__init__(config, model_config)
        self.crops_per_target = crops_per_target(config)
        self._window = pp.hann_window(model_config.response_size * config.response_up)
        n = config.scale_num
        self._scale_factors = config.scale_step ** (np.arange(n) - n // 2)

    def _track(self, frame: np.ndarray, st: TargetState) -> SearchPlan:
        """SiamFC's search: crops at ``scale_num`` scales around the last position; the best (penalised) scale's
        upsampled response, blended with a cosine window, gives the new centre, and that scale the new size."""
        cfg, mcfg = self.config, self.model_config
        side = self._search_side(st.size)
        crops = np.stack(
            [crop_and_resize(frame, st.center, side * s, mcfg.search_size, st.pad_value) for s in self._scale_factors]
        )

        def decode(outputs: dict[str, np.ndarray]) -> Peak:
            logits = outputs["response"]
            scores = pp.sigmoid(logits)
            scale_id = pp.select_scale(logits, cfg.scale_penalty)
            response = pp.upsample(scores[scale_id : scale_id + 1], cfg.response_up)[0]
            # locate target centre: response cells -> search-crop pixels -> frame pixels
            dx, dy = pp.locate_peak(response, self._window, self.window_influence)
            crop_to_frame = side * self._scale_factors[scale_id] / mcfg.search_size
            center = st.center + np.array([dx, dy]) * mcfg.stride / cfg.response_up * crop_to_frame
            # damped scale update
            size = st.size * ((1 - cfg.scale_lr) + cfg.scale_lr * self._scale_factors[scale_id])
            psr = pp.peak_to_sidelobe(logits[scale_id], cfg.psr_exclude)
            return Peak(center, size, float(scores[scale_id].max()), psr)

        return SearchPlan(crops, decode)

    def response(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The single map (N, r, r) of logits that lost-mode re-detection searches: the response itself."""
        return outputs["response"]


Search = SiamFCSearch
