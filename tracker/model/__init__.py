"""SiamFC: one backbone with shared weights for exemplar and search crops, and a similarity head.

``SiamFC.embed(exemplar)`` runs once per target (in ``init``); ``SiamFC.score(kernel, search)`` runs every frame.
Inputs are float tensors of BGR pixel values in [0, 255], shape ``(N, 3, H, W)``. Every size (crops, stride,
response) comes from the :class:`~tracker.config.ModelConfig`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from .backbones import AlexNet, HandSet, MobileNet, build_backbone
from .heads import SimilarityHead, absdiff_shifted, xcorr_grouped, xcorr_matmul
from .inference import SeparableMaxPool, inference_form

__all__ = [
    "AlexNet", "HandSet", "MobileNet", "SeparableMaxPool", "SiamFC", "SimilarityHead", "absdiff_shifted",
    "build_backbone", "inference_form", "xcorr_grouped", "xcorr_matmul",
]  # fmt: skip


class SiamFC(nn.Module):
    """``SiamFC(config)``: backbone + similarity head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.head = SimilarityHead(config.metric, config.out_scale)

    def embed(self, exemplar: torch.Tensor) -> torch.Tensor:
        """Exemplar crops (B, 3, E, E) -> kernels (B, C, k, k); E = ``config.exemplar_size``."""
        return self.backbone(exemplar)

    def score(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """Kernels (B, C, k, k) and search crops (B * S, 3, X, X) -> responses (B * S, 1, R, R); X and R are
        ``config.search_size`` and ``config.response_size``."""
        return self.head(kernel, self.backbone(search))

    def forward(self, exemplar: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.score(self.embed(exemplar), search)
