"""SiamFC: one backbone with shared weights for exemplar and search crops, and a similarity head.

``SiamFC.embed(exemplar)`` runs once per target (in ``init``); ``SiamFC.score(kernel, search)`` runs every frame.
Inputs are float tensors of BGR pixel values in [0, 255], shape ``(N, 3, H, W)``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .config import ConfigError, ModelConfig


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, k, stride, groups=groups)
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout, eps=1e-6, momentum=0.05)]
    return layers + [nn.ReLU(inplace=True)] if relu else layers


class AlexNet(nn.Module):
    """SiamFC's AlexNet (Bertinetto et al. 2016) with BatchNorm; ``width`` scales every layer's channels.

    127 -> 6x6 and 255 -> 22x22 features, total stride 8, for any odd ``stem_kernel`` from 5 to 11 (the first
    layer's kernel; SiamFC's is 11). ``groups`` splits conv2, conv4 and conv5 into that many groups, as the
    original AlexNet did with 2 (conv1 and conv3 stay dense so that every group sees every channel).
    """

    def __init__(self, width: float = 1.0, stem_kernel: int = 11, groups: int = 1) -> None:
        super().__init__()
        c = [max(8, int(round(n * width / 8)) * 8) for n in (96, 256, 384, 384, 256)]
        self.out_channels = c[4]
        self.features = nn.Sequential(
            *_conv_bn(3, c[0], stem_kernel, 2), nn.MaxPool2d(3, 2),
            *_conv_bn(c[0], c[1], 5, groups=groups), nn.MaxPool2d(3, 2),
            *_conv_bn(c[1], c[2], 3),
            *_conv_bn(c[2], c[3], 3, groups=groups),
            nn.Conv2d(c[3], c[4], 3, groups=groups),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (x - 128) / 64 keeps the first layer's inputs near unit scale without a dataset mean
        return self.features((x - 128.0) / 64.0)


class HandSet(nn.Module):
    """Fixed, hand-set features (no training): grey level and its gradients, 8x8-pooled.

    Fully convolutional like AlexNet (127 -> 6x6, 255 -> 22x22, stride 8), so the tracking pipeline can be
    tested without learned weights.
    """

    out_channels = 3

    def __init__(self) -> None:
        super().__init__()
        grey = torch.tensor([0.114, 0.587, 0.299]).view(1, 3, 1, 1)  # BGR
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        self.register_buffer("grey", grey)
        self.register_buffer("sobel", torch.stack([sobel, sobel.t()]).unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = (x * self.grey).sum(1, keepdim=True) / 255.0
        g = g - F.avg_pool2d(g, 31, 1, 15, count_include_pad=False)  # local contrast, not brightness
        grad = F.conv2d(g, self.sobel, padding=1)
        f = F.avg_pool2d(torch.cat([g, grad.abs()], 1), 8, 8)  # 127 -> 15, 255 -> 31
        return f[:, :, 4:-5, 4:-5]  # same trim on both branches keeps it translation-equivariant: 6 and 22


def _windows(x: torch.Tensor, k: int) -> torch.Tensor:
    """All ``k x k`` windows of ``x`` (N, C, H, W) as (N, C * k * k, L), L = output positions."""
    return F.unfold(x, k)


class SimilarityHead(nn.Module):
    """Dense similarity between a kernel (exemplar features) and every window of the search features.

    ``kernel``: (B, C, k, k); ``search``: (B * S, C, H, W), S search crops per target. Returns (B * S, 1, R, R)
    with R = H - k + 1. Response = out_scale * similarity + bias (bias learned, scale fixed).
    """

    def __init__(self, metric: str = "xcorr", out_scale: float = 0.001, impl: str = "conv") -> None:
        super().__init__()
        if impl not in ("conv", "matmul"):
            raise ConfigError(f"impl must be conv or matmul, got {impl!r}")
        self.metric = metric
        self.out_scale = out_scale
        # "matmul" is for exported graphs: a convolution whose weights are a runtime input (the kernel) breaks
        # TensorRT's ONNX parser (NVIDIA/TensorRT#137, #1104); MatMul and static slices parse everywhere
        self.impl = impl
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.out_scale * self.similarity(kernel, search) + self.bias

    def similarity(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        b, c, k, _ = kernel.shape
        n, _, h, w = search.shape
        s = n // b
        kernel = kernel.repeat_interleave(s, 0) if s > 1 else kernel
        if self.metric == "absdiff" and self.impl == "matmul":
            return -absdiff_shifted(kernel, search)
        if self.metric == "absdiff":
            win = _windows(search, k)  # (n, c*k*k, L); costly, but the only exact way for |z - x|
            out = -(win - kernel.reshape(n, -1, 1)).abs().sum(1)
            return out.view(n, 1, h - k + 1, w - k + 1)
        xcorr = xcorr_matmul(kernel, search) if self.impl == "matmul" else xcorr_grouped(kernel, search)
        if self.metric == "xcorr":
            return xcorr
        z2 = kernel.pow(2).sum((1, 2, 3)).view(n, 1, 1, 1)
        x2 = F.avg_pool2d(search.pow(2).sum(1, keepdim=True), k, 1) * (k * k)
        if self.metric == "cosine":
            return xcorr / (z2.sqrt() * x2.sqrt() + 1e-6)
        return -(z2 - 2 * xcorr + x2)  # euclidean: negative squared distance


def xcorr_grouped(kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Cross-correlation of each search map with its own kernel, as one grouped convolution.

    ``kernel``: (N, C, k, k); ``search``: (N, C, H, W) -> (N, 1, H - k + 1, W - k + 1).
    """
    n, c, h, w = search.shape
    out = F.conv2d(search.reshape(1, n * c, h, w), kernel, groups=n)
    return out.view(n, 1, out.shape[-2], out.shape[-1])


def xcorr_matmul(kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """:func:`xcorr_grouped` as one batched MatMul plus k * k static slices, with no convolution.

    ``P = kernel^T @ search`` correlates every kernel cell with every search cell over channels, (N, k*k, H*W);
    the response is the sum over kernel cells (i, j) of P's plane (i, j) shifted by (i, j). This costs about
    1.7x the MACs of the convolution but materialises only (N, k*k, H, W), not the (N, C*k*k, R*R) unfolding.
    """
    n, c, k, _ = kernel.shape
    h, w = search.shape[-2:]
    rh, rw = h - k + 1, w - k + 1
    planes = torch.matmul(kernel.reshape(n, c, k * k).transpose(1, 2), search.reshape(n, c, h * w))
    planes = planes.view(n, k * k, h, w)
    out = planes[:, 0:1, 0:rh, 0:rw]
    for i in range(k):
        for j in range(k):
            if i or j:
                out = out + planes[:, i * k + j : i * k + j + 1, i : i + rh, j : j + rw]
    return out


def absdiff_shifted(kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Sum of ``|kernel - window|`` over every window, from k * k static slices (no unfold op): (N, 1, R, R)."""
    k = kernel.shape[-1]
    h, w = search.shape[-2:]
    rh, rw = h - k + 1, w - k + 1
    out = torch.zeros_like(search[:, :1, :rh, :rw])
    for i in range(k):
        for j in range(k):
            diff = search[:, :, i : i + rh, j : j + rw] - kernel[:, :, i : i + 1, j : j + 1]
            out = out + diff.abs().sum(1, keepdim=True)
    return out


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


def build_backbone(config: ModelConfig) -> nn.Module:
    if config.backbone == "handset":
        return HandSet()
    return AlexNet(config.width, config.stem_kernel, config.groups)


class SiamFC(nn.Module):
    """``SiamFC(config)``: backbone + similarity head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        self.head = SimilarityHead(config.metric, config.out_scale)

    def embed(self, exemplar: torch.Tensor) -> torch.Tensor:
        """Exemplar crops (B, 3, 127, 127) -> kernels (B, C, 6, 6)."""
        return self.backbone(exemplar)

    def score(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """Kernels (B, C, 6, 6) and search crops (B * S, 3, 255, 255) -> responses (B * S, 1, 17, 17)."""
        return self.head(kernel, self.backbone(search))

    def forward(self, exemplar: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.score(self.embed(exemplar), search)
