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
