"""Backend selection: one place that turns a name and a weights file into a running backend."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import BackendError
from ..weights import load_weights
from .torch_backend import TorchBackend

BACKENDS = ("auto", "torch", "onnx", "tensorrt")


def create_backend(name: str, weights: Path, device: str | None = None, threads: int | None = None):
    """Build the backend ``name`` for ``weights``. Asking for an unavailable backend is an error, not a fallback.

    "auto" picks torch CUDA when a GPU is visible, else the torch CPU path.
    """
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if threads is not None:
        torch.set_num_threads(threads)
    if name in ("onnx", "tensorrt"):
        raise BackendError(f"the {name} backend is not available in this build")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_weights(weights, device="cpu")
    return TorchBackend(model, device=device)
