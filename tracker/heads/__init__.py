"""The heads, one module each (:mod:`.fc`, :mod:`.box`), and the one table that everything else reads.

A head is what turns the exemplar's features (the kernel) and the search features into the network's named
outputs, and what turns those outputs back into the target's box. Its module holds:

- ``build(config, channels)``: its ``nn.Module`` over backbone features of ``channels`` channels;
- ``Search``: its decoder, a :class:`~tracker.search.TargetSearch` whose tracking step reads its outputs (lost
  mode and re-detection are shared);
- ``crops_per_target(tracker_config)``: the search crops per target a frame (exported graphs are made for it).

Its label maker and loss are training's (``train/heads.py``, the same names). The table of heads,
:data:`~tracker.config.HEADS`, is plain data in :mod:`tracker.config`, so a model is checked against it without
importing torch; a head's module is imported when it is used (:meth:`~tracker.config.HeadSpec.impl`). A new head
is one module here and one entry in that table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import HEADS, ModelConfig, TrackerConfig
from ..errors import TrackerError

if TYPE_CHECKING:
    from ..search import TargetSearch

__all__ = ["HEADS", "crops_per_target", "search_for"]


def search_for(config: TrackerConfig, model_config: ModelConfig) -> TargetSearch:
    """The decoder of the network's head: its one-target search (:class:`~tracker.search.TargetSearch`)."""
    return HEADS[model_config.head].impl().Search(config, model_config)


def crops_per_target(weights: str | os.PathLike, config: TrackerConfig) -> int:
    """Search crops per target a frame for the network in ``weights`` (a weights file or an export folder), by
    its head. Unreadable weights count as SiamFC's head (the backend reports what is wrong with them)."""
    try:
        if Path(weights).is_dir():  # exported graphs: read without torch, which the onnx backend runs without
            from ..backends.graphs import read_graph_meta

            model_config = read_graph_meta(weights).model_config
        else:
            from ..weights import read_metadata

            model_config = ModelConfig.from_dict(json.loads(read_metadata(weights)["model_config"]))
    except (TrackerError, KeyError, TypeError, ValueError):
        return config.scale_num
    return HEADS[model_config.head].impl().crops_per_target(config)
