"""Training losses. ``LOSSES`` maps a name to a classification loss, which takes responses (B, 1, R, R), labels
and weights (B, R, R) and returns a scalar: SiamFC's response map, or the box head's ``cls`` map.
:func:`box_head_loss` adds the box head's box (GIoU) and quality (BCE) terms."""

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


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean 1 - GIoU of boxes given as distances (P, 4) = (left, top, right, bottom) from the same points."""
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    inter = (torch.minimum(pl, tl) + torch.minimum(pr, tr)) * (torch.minimum(pt, tt) + torch.minimum(pb, tb))
    union = (pl + pr) * (pt + pb) + (tl + tr) * (tt + tb) - inter
    hull = (torch.maximum(pl, tl) + torch.maximum(pr, tr)) * (torch.maximum(pt, tt) + torch.maximum(pb, tb))
    giou = inter / union.clamp(min=1e-6) - (hull - union) / hull.clamp(min=1e-6)
    return (1 - giou).mean()


BOX_WEIGHT = 2.0  # weight of the GIoU term against the classification and quality terms


def box_head_loss(
    outputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    weights: torch.Tensor,
    boxes: torch.Tensor,
    quality: torch.Tensor,
    classification: str = "logistic",
) -> torch.Tensor:
    """The box head's loss (train.pairs.make_box_labels gives the targets): ``LOSSES[classification]`` on ``cls``,
    plus, at the positive cells, GIoU of ``box`` against ``boxes`` (B, 4, R, R) and BCE of ``quality`` against the
    centre-ness targets ``quality`` (B, R, R)."""
    loss = LOSSES[classification](outputs["cls"], labels, weights)
    pos = labels > 0.5
    if pos.any():
        pred = outputs["box"].float().permute(0, 2, 3, 1)[pos]
        loss = loss + BOX_WEIGHT * giou_loss(pred, boxes.permute(0, 2, 3, 1)[pos])
        q = outputs["quality"][:, 0].float()[pos]
        loss = loss + F.binary_cross_entropy_with_logits(q, quality[pos])
    return loss
