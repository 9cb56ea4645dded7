"""The inference form of a backbone: same features, less work (BatchNorm folded, cheaper pooling)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class SeparableMaxPool(nn.Module):
    """``nn.MaxPool2d(kernel, stride)`` (no padding) as a max over ``kernel`` strided row slices, then over
    ``kernel`` strided column slices. The result is identical (max is exact); on CPU in bf16 + channels_last it
    ran 2.3x faster than PyTorch's max_pool2d, which also computes the argmax indices (measured: 0.31 vs 0.73 ms
    for AlexNet's first pool on 3 search crops)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel, self.stride
        rows = (x.shape[-2] - k) // s + 1
        x = _max_of_slices([x[:, :, i : i + s * (rows - 1) + 1 : s] for i in range(k)])
        cols = (x.shape[-1] - k) // s + 1
        return _max_of_slices([x[..., j : j + s * (cols - 1) + 1 : s] for j in range(k)])


def _max_of_slices(slices: list[torch.Tensor]) -> torch.Tensor:
    out = slices[0]
    for other in slices[1:]:
        out = torch.maximum(out, other)
    return out


def _plain_max_pool(layer: nn.Module) -> bool:
    """A MaxPool2d that :class:`SeparableMaxPool` reproduces exactly: square, no padding, dilation or ceil mode."""
    if not isinstance(layer, nn.MaxPool2d) or layer.padding not in (0, (0, 0)) or layer.ceil_mode:
        return False
    return all(isinstance(v, int) for v in (layer.kernel_size, layer.stride)) and layer.dilation in (1, (1, 1))


def inference_form(backbone: nn.Module) -> nn.Module:
    """An inference copy of ``backbone`` that computes the same features with less work.

    In its ``features``, every Conv2d + BatchNorm2d pair is folded into one Conv2d (same outputs up to fp32
    rounding), every ReLU followed by a MaxPool2d is moved after it (max and ReLU commute, and the ReLU then
    runs on a quarter of the cells), and max-pools become :class:`SeparableMaxPool`. The copy is in eval mode
    and must not be trained; a backbone without ``features`` is copied unchanged.
    """
    fused = copy.deepcopy(backbone).eval()
    layers = list(getattr(fused, "features", []))
    if not layers:
        return fused
    out: list[nn.Module] = []
    for layer in layers:
        if isinstance(layer, nn.BatchNorm2d) and out and isinstance(out[-1], nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(out[-1], layer)
        elif _plain_max_pool(layer):
            pool = SeparableMaxPool(layer.kernel_size, layer.stride)
            if out and isinstance(out[-1], nn.ReLU):
                out.insert(len(out) - 1, pool)
            else:
                out.append(pool)
        else:
            out.append(layer)
    fused.features = nn.Sequential(*out)
    return fused
