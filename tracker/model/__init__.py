"""SiameseNet (first named SiamFC): one backbone with shared weights for exemplar and search crops, and a head.

``embed(exemplar)`` runs once per target (in ``init``); ``score(kernel, search)`` runs every frame and returns
the head's named outputs (``ModelConfig.outputs``).
Inputs are float tensors of BGR pixel values in [0, 255], shape ``(N, 3, H, W)``. Every size (crops, stride,
response) comes from the :class:`~tracker.config.ModelConfig`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import HEADS, ModelConfig
from ..heads.box.net import BoxHead, pointwise_corr
from ..heads.fc.net import SimilarityHead, absdiff_shifted, xcorr_grouped, xcorr_matmul
from .backbones import AlexNet, HandSet, MobileNet, build_backbone
from .inference import SeparableMaxPool, inference_form

__all__ = [
    "AlexNet", "BoxHead", "HandSet", "MobileNet", "SeparableMaxPool", "SiamFC", "SiameseNet", "SimilarityHead",
    "absdiff_shifted",
    "build_backbone", "build_head", "inference_form", "pointwise_corr", "xcorr_grouped", "xcorr_matmul",
]  # fmt: skip


def build_head(config: ModelConfig, channels: int) -> nn.Module:
    """The head ``config.head`` names (:data:`tracker.heads.HEADS`), over backbone features of ``channels``
    channels."""
    return HEADS[config.head].impl().build(config, channels)


class SiameseNet(nn.Module):
    """``SiameseNet(config)``: one backbone for exemplar and search crops (shared weights) + a head
    (``config.head``). ``SiamFC`` is its first name."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.head = build_head(config, self.backbone.out_channels)

    def use_matmul_head(self) -> None:
        """Correlate as one MatMul where the head has that form (SiamFC's similarity head): the form that ONNX
        export needs and that runs fastest on CPU; the answers are the same (tests/test_export.py)."""
        if hasattr(self.head, "impl"):
            self.head.impl = "matmul"

    def head_outputs(self, kernel: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """The head on kernels and search features: its named outputs (``config.outputs``), each (N, 1, R, R) but
        ``box`` (N, 4, R, R)."""
        out = self.head(kernel, features)
        return out if isinstance(out, dict) else {"response": out}

    def embed(self, exemplar: torch.Tensor) -> torch.Tensor:
        """Exemplar crops (B, 3, E, E) -> kernels (B, C, k, k); E = ``config.exemplar_size``."""
        return self.backbone(exemplar)

    def maps(self, kernel: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`head_outputs` in float32 as the backends return them: (N, R, R) maps, ``box`` (N, 4, R, R)."""
        out = self.head_outputs(kernel, features)
        return {name: (v if name == "box" else v[:, 0]).float() for name, v in out.items()}

    def score(self, kernel: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        """Kernels (B, C, k, k) and search crops (B * S, 3, X, X) -> the named outputs (:meth:`head_outputs`), e.g.
        ``{"response": (B * S, 1, R, R)}``; X and R are ``config.search_size`` and ``config.response_size``."""
        return self.head_outputs(kernel, self.backbone(search))

    def forward(self, exemplar: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.score(self.embed(exemplar), search)


SiamFC = SiameseNet  # its first name, which the training code and tools use
