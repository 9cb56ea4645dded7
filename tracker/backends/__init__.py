"""Inference backends behind one protocol, chosen once per tracker."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..config import ModelConfig
from ..errors import BackendError

__all__ = ["Backend", "BackendError"]


class Backend(Protocol):
    """Runs the network. Crops are uint8 BGR arrays ``(N, H, W, 3)``; outputs are named float32 maps (the head's,
    ``ModelConfig.outputs``): ``(N, R, R)`` each, but ``box`` ``(N, 4, R, R)``."""

    name: str  # e.g. "torch-cpu-bf16", reported to users
    model_config: ModelConfig

    def embed(self, exemplars: np.ndarray) -> object:
        """Exemplar crops (B, 127, 127, 3) -> an opaque kernel handle for :meth:`score`."""
        ...

    # optional: ``embed_appearance(crops)``, the verifier's crops through the exemplar branch by a faster path than
    # embed() where a backend has one (appearance_features); backends without it embed them with embed()

    def score(self, kernel: object, search: np.ndarray) -> dict[str, np.ndarray]:
        """Kernel of B targets and search crops (B * S, 255, 255, 3) -> the named outputs, e.g. the fc head's
        ``{"response": (B * S, 17, 17)}``, float32."""
        ...


def appearance_features(backend: Backend, crops: np.ndarray) -> object:
    """The appearance verifier's exemplar-sized crops through ``backend``'s exemplar branch: its
    ``embed_appearance`` where it has one, else :meth:`Backend.embed`."""
    return getattr(backend, "embed_appearance", backend.embed)(crops)


def joined_kernels(parts: list[tuple[object, int]]) -> object | None:
    """One kernel handle from single-target handles, each repeated for its copies: the handles of the shipped
    backends are ``(1, C, k, k)`` arrays, numpy (onnx, openvino, tensorrt) or torch (torch), joined along the first
    axis; None for any other kind of handle."""
    handles = [h for h, _ in parts]
    if all(isinstance(h, np.ndarray) for h in handles):
        return np.concatenate([np.repeat(h, c, axis=0) for h, c in parts])
    if all(type(h).__module__.startswith("torch") for h in handles):
        import torch  # already imported by the backend that made these handles

        return torch.cat([h.expand(c, *h.shape[1:]) for h, c in parts])
    return None


def blend_kernel(kernel: object, features: np.ndarray, rate: float) -> object:
    """``(1 - rate) * kernel + rate * features``, a kernel handle of ``kernel``'s kind (numpy or torch), from the
    exemplar features (float32, as ``tracker.appearance.to_array`` gives them) of another crop of the target."""
    if hasattr(kernel, "detach"):  # torch, without importing it
        return kernel * (1 - rate) + kernel.new_tensor(features) * rate
    return (np.asarray(kernel, np.float32) * (1 - rate) + features * rate).astype(np.float32)
