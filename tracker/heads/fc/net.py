"""SiamFC's head as a network: :class:`SimilarityHead`, one similarity map from a dense comparison of the kernel
(the exemplar's features) with every window of the search features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...config import ConfigError


def _windows(x: torch.Tensor, k: int) -> torch.Tensor:
    """All ``k x k`` windows of ``x`` (N, C, H, W) as (N, C * k * k, L), L = output positions."""
    return F.unfold(x, k)


class SimilarityHead(nn.Module):
    """Dense similarity between a kernel (exemplar features) and every window of the search features.

    ``kernel``: (B, C, k, k); ``search``: (B * S, C, H, W), S search crops per target. Returns (B * S, 1, R, R)
    logits with R = H - k + 1: ``scale * similarity + bias``, the bias learned. Cross-correlation keeps SiamFC's
    fixed ``scale = out_scale`` (a learned one diverged). Every other metric learns its scale, a temperature:
    ``scale = out_scale * exp(log_gain)``, ``log_gain`` a parameter starting at 0, so ``out_scale`` is where it
    starts (:data:`~tracker.config.METRIC_SCALES`). Cosine similarity needs this most: bounded in [-1, 1], it
    gives logits within ``bias +- out_scale``, and a fixed 0.001 kept them flat.
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
        # no parameter for xcorr: weights trained with its fixed scale hold head.bias alone
        self.log_gain = nn.Parameter(torch.zeros(1)) if metric != "xcorr" else None

    def scale(self) -> torch.Tensor | float:
        """The factor on the similarity: ``out_scale``, times the learned gain for every metric but xcorr."""
        return self.out_scale if self.log_gain is None else self.out_scale * self.log_gain.exp()

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        return self.scale() * self.similarity(kernel, search) + self.bias

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # weights saved before the gain was learned used out_scale alone: a gain of exp(0) gives them unchanged
        if self.log_gain is not None and prefix + "log_gain" not in state_dict and prefix + "bias" in state_dict:
            state_dict[prefix + "log_gain"] = torch.zeros(1)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def similarity(self, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        """The metric at every window, before scale and bias: (N, 1, R, R). xcorr: ``sum(z * x)``; cosine:
        ``sum(z * x) / (|z| |x|)``; euclidean: ``-sum((z - x)^2)``; absdiff: ``-sum(|z - x|)``, sums over the
        window's C * k * k features (so that larger is more similar for every metric)."""
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
