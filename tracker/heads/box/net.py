"""The single-pass box head as a network (SiamFC++'s design): :class:`BoxHead`, classification, box and quality
maps from a point-wise correlation of the kernel (the exemplar's features) with the search features."""

from __future__ import annotations

import torch
from torch import nn


def pointwise_corr(kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Point-wise (pixel-wise) correlation: every kernel cell's feature vector against every search cell's.

    ``kernel``: (N, C, k, k); ``search``: (N, C, H, W) -> (N, k * k, H, W), divided by C. One batched MatMul: no
    convolution with runtime weights (which TensorRT's parser refuses), and the maps keep the search features'
    resolution, which the box regression needs.
    """
    n, c, k, _ = kernel.shape
    h, w = search.shape[-2:]
    out = torch.matmul(kernel.reshape(n, c, k * k).transpose(1, 2), search.reshape(n, c, h * w))
    return out.view(n, k * k, h, w) / c


class BoxHead(nn.Module):
    """Single-pass box head: point-wise correlation, a shared conv tower (3x3 convolutions, or depthwise-separable
    ones with ``separable``), then three 3x3 convolutions.

    ``kernel``: (B, C, k, k); ``search``: (B * S, C, H, W). Returns, on the search features' grid (R = H):
    ``cls`` (B * S, 1, R, R) logits that the target's centre region covers the cell; ``box`` (B * S, 4, R, R)
    distances in search-crop pixels from the cell to the box's left, top, right and bottom sides (positive, finite);
    ``quality`` (B * S, 1, R, R) logits of the box's centre-ness at the cell (how central the cell is in it).
    """

    def __init__(self, cells: int, tower: int, layers: int, stride: int, separable: bool = False) -> None:
        super().__init__()
        self.stride = stride
        blocks: list[nn.Module] = []
        for i in range(layers):
            c = cells if i == 0 else tower
            if separable:  # a depthwise 3x3, then a 1x1 across channels
                depthwise = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
                conv: nn.Module = nn.Sequential(depthwise, nn.Conv2d(c, tower, 1, bias=False))
            else:
                conv = nn.Conv2d(c, tower, 3, padding=1, bias=False)
            blocks += [conv, nn.BatchNorm2d(tower), nn.ReLU(inplace=True)]
        self.tower = nn.Sequential(*blocks)
        self.cls = nn.Conv2d(tower, 1, 3, padding=1)
        self.box = nn.Conv2d(tower, 4, 3, padding=1)
        self.quality = nn.Conv2d(tower, 1, 3, padding=1)
        for conv in (self.cls, self.box, self.quality):
            nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(self.cls.bias)
        nn.init.constant_(self.box.bias, 1.0)  # e^1 * stride: a box about 5 cells wide at the start
        nn.init.zeros_(self.quality.bias)

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        s = search.shape[0] // kernel.shape[0]
        kernel = kernel.repeat_interleave(s, 0) if s > 1 else kernel
        t = self.tower(pointwise_corr(kernel, search))
        # exp keeps the distances positive; the clamp keeps them finite (e^6 * 8 px is far beyond any crop)
        box = torch.exp(self.box(t).float().clamp(-6.0, 6.0)) * self.stride
        return {"cls": self.cls(t), "box": box, "quality": self.quality(t)}
