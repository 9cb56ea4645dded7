"""PyTorch backend: CPU (bf16 autocast + channels_last where the CPU has native bf16, else fp32) and CUDA."""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..model import SiamFC, inference_form
from . import BackendError


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN can use native bf16 instructions (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class TorchBackend:
    """Runs :class:`SiamFC` with PyTorch.

    ``precision``: "auto" (bf16 autocast on CUDA and on CPUs with native bf16, else fp32), "fp32", "bf16" or
    "fp16" (CUDA only).
    """

    def __init__(self, model: SiamFC, device: str = "cpu", precision: str = "auto") -> None:
        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise BackendError(f"invalid torch device {device!r}: {e}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("device 'cuda' asked for, but this PyTorch build has no CUDA or no GPU is visible")
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" or cpu_has_fast_bf16() else "fp32"
        if precision not in ("fp32", "bf16", "fp16"):
            raise BackendError(f"precision must be auto, fp32, bf16 or fp16; got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise BackendError("fp16 is for CUDA; on CPU use bf16 or fp32")
        self.precision = precision
        self.dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        model = copy.deepcopy(model).to(self.device).eval()  # the caller's model is left as it was
        # BatchNorm folded into the convolutions (model.inference_form); channels_last lets oneDNN pick its
        # blocked convolution kernels (about 2x on CPU, measured)
        model.backbone = inference_form(model.backbone)
        self.model = model.to(memory_format=torch.channels_last)
        if self.device.type == "cpu":
            # on CPU the head's MatMul form is ~4x faster than the grouped convolution (0.2 vs 0.8 ms for 3
            # crops, measured); both give the same response (tests/test_export.py)
            self.model.head.impl = "matmul"
        self.model_config = model.config
        self.name = f"torch-{self.device.type}-{precision}"

    def _tensor(self, crops: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
        # NHWC uint8 -> NCHW float, kept channels_last in memory (a free view, no copy)
        return x.permute(0, 3, 1, 2).float()

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.precision != "fp32")

    @torch.inference_mode()
    def embed(self, exemplars: np.ndarray) -> torch.Tensor:
        with self._autocast():
            return self.model.embed(self._tensor(exemplars)).float()

    @torch.inference_mode()
    def score(self, kernel: torch.Tensor, search: np.ndarray) -> np.ndarray:
        with self._autocast():
            features = self.model.backbone(self._tensor(search))
        # the head runs in fp32: it is cheap, and a bf16 response would be rounded to ~3 significant digits
        out = self.model.head(kernel, features.float())
        return out[:, 0].float().cpu().numpy()  # the .cpu() is a device sync point on CUDA
