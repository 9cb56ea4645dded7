"""PyTorch backend: CPU (bf16 autocast + channels_last where the CPU has native bf16, else fp32) and CUDA.

Threads: PyTorch's intra-op thread count is a process-wide setting, and its OpenMP pool spin-waits between
operators. On a busy CPU the spinning threads take the cores the working ones need: with 2 threads on 2 cores
beside other jobs, update() went from 45 to 300-1000 ms and burnt 6x the CPU time of 1 thread (docs/DEPLOY.md,
"Threads and busy machines"). So on CPU this backend runs with ``threads`` threads (default 1) set around each
of its own calls and restored afterwards: the rest of the process keeps its own setting.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import numpy as np
import torch

from ..machine import default_precision
from ..model import SiamFC, inference_form
from . import BackendError

CPU_THREADS = 1  # default intra-op threads on CPU: more spin-wait and collapse on a busy machine (see above)


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` PyTorch intra-op threads and restore the previous count afterwards (None:
    leave it). Costs well under a microsecond. OpenMP keeps the count per calling thread, so other threads of
    the process are not affected, except MKL's count and threads started inside the block."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchBackend:
    """Runs :class:`SiamFC` with PyTorch.

    ``precision``: "auto" (bf16 autocast on CUDA and on CPUs with native bf16, else fp32), "fp32", "bf16" or
    "fp16" (CUDA only). ``threads``: intra-op threads for this backend's calls; None: :data:`CPU_THREADS` on
    CPU, PyTorch's process setting on CUDA. The count is set around each call and restored after it.
    """

    def __init__(self, model: SiamFC, device: str = "cpu", precision: str = "auto", threads: int | None = None) -> None:
        try:
            self.device = torch.device(device)
        except RuntimeError as e:
            raise BackendError(f"invalid torch device {device!r}: {e}") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("device 'cuda' asked for, but this PyTorch build has no CUDA or no GPU is visible")
        if precision == "auto":
            precision = default_precision(self.device.type)
        if precision == "int8":
            raise BackendError("int8 is a precision of the onnx backend (--backend onnx --precision int8), not torch's")
        if precision not in ("fp32", "bf16", "fp16"):
            raise BackendError(f"the torch backend's precision must be auto, fp32, bf16 or fp16; got {precision!r}")
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
            # crops, measured)
            self.model.use_matmul_head()
        self.model_config = model.config
        self.threads = CPU_THREADS if threads is None and self.device.type == "cpu" else threads
        self.name = f"torch-{self.device.type}-{precision}"

    def _tensor(self, crops: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device, non_blocking=True)
        # NHWC uint8 -> NCHW float, kept channels_last in memory (a free view, no copy)
        return x.permute(0, 3, 1, 2).float()

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.precision != "fp32")

    @torch.inference_mode()
    def embed(self, exemplars: np.ndarray) -> torch.Tensor:
        with intra_op_threads(self.threads), self._autocast():
            return self.model.embed(self._tensor(exemplars)).float()

    @torch.inference_mode()
    def score(self, kernel: torch.Tensor, search: np.ndarray) -> dict[str, np.ndarray]:
        with intra_op_threads(self.threads):
            with self._autocast():
                features = self.model.backbone(self._tensor(search))
            # the head runs in fp32: it is cheap, and a bf16 response would be rounded to ~3 significant digits
            out = self.model.maps(kernel, features.float())
            return {name: v.cpu().numpy() for name, v in out.items()}  # the .cpu() is a device sync point on CUDA
