"""Training losses behind a name -> function table. Each takes responses (B, 1, R, R), labels and weights
(B, R, R) and returns a scalar."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def balanced_logistic(responses: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """SiamFC's logistic loss, positives and negatives weighted to equal halves per pair (weights do that)."""
    loss = F.binary_cross_entropy_with_logits(responses[:, 0].float(), labels, reduction="none")
    return (loss * weights).sum() / responses.shape[0]


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "logistic": balanced_logistic,
}
