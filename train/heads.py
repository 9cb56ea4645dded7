"""Training's side of each head (:mod:`tracker.heads` has the network and the decoder): its label maker and its
loss, by head name. A new head is one entry here beside its entry in ``tracker.heads.HEADS``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .labels import make_box_labels, make_labels
from .losses import LOSSES, box_head_distill, box_head_loss, fc_head_distill


@dataclass(frozen=True)
class TrainHead:
    # (model config, pair config, target (dx, dy, w, h) in search-crop pixels or None, search scale) -> the
    # label arrays the loss takes after the outputs
    labels: Callable[..., tuple[np.ndarray, ...]]
    # (outputs by name, *labels, classification=LOSSES key) -> scalar loss
    loss: Callable[..., torch.Tensor]
    # (student outputs, teacher outputs on the same pairs) -> scalar distillation loss (TrainConfig.teacher)
    distill: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]


def _fc_labels(model, cfg, target, scale: float) -> tuple:  # noqa: ANN001
    # a positive's strength falls with the search crop's scale error: the response learns to prefer the right scale
    strength = math.exp(-0.5 * (math.log(scale) / cfg.scale_sigma) ** 2)
    return make_labels(model, cfg, None if target is None else target[:2], strength)


def _fc_loss(outputs: dict[str, torch.Tensor], *labels: torch.Tensor, classification: str) -> torch.Tensor:
    return LOSSES[classification](outputs["response"], *labels)


TRAIN_HEADS = {
    "fc": TrainHead(_fc_labels, _fc_loss, fc_head_distill),
    "box": TrainHead(
        lambda model, cfg, target, scale: make_box_labels(model, cfg, target), box_head_loss, box_head_distill
    ),
}
