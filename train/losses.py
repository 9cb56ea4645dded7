"""Training losses. ``LOSSES`` maps a name to a classification loss, which takes responses (B, 1, R, R), labels
and weights (B, R, R) and returns a scalar: SiamFC's response map, or the box head's ``cls`` map.
:func:`box_head_loss` adds the box head's box (GIoU) and quality (BCE) terms.

Every loss is dense: each response cell is one exemplar / search-window pair. The labels (train.pairs) mark the
windows near the target's centre as similar (label > 0; the label is the pair's strength, below 1 where the
search scale is off), the windows beyond and every window of a negative pair as dissimilar (label 0); the
weights give positives and negatives equal halves per pair.

The contrastive and triplet losses need a distance d between the exemplar and a window. Both take it from the
window's logit l, as a fixed decreasing function of it. The head's logit is ``scale * similarity + bias`` with
``scale > 0``, so d orders windows as the metric's own distance does (for the Euclidean head d grows with
``|z - x|^2``, for the cosine head with ``1 - cos``); one definition serves every metric, cross-correlation (no
distance of its own) and the box head's ``cls`` map; and the loss trains the head's scale and bias with the
features, so the tracker's score (the logit's sigmoid p) keeps its meaning whatever loss trained it.

- contrastive: :func:`match_distance`, ``d = softplus(-l) = -log p``, the negative log-probability of a match:
  >= 0 and 0 only for a certain match, as the ``d^2 / 2`` term needs. The margin is in nats: a dissimilar
  window is pushed until ``p <= exp(-margin)``. The push on a dissimilar window that already looks like a
  certain match fades with the gradient of d, ``sigmoid(-l)``: the price of a distance with a zero.
- triplet: :func:`nonmatch_log_odds`, ``d = -l = log((1 - p) / p)``, the log-odds against a match. The triplet
  compares two distances from one anchor, so it needs no zero, and this d's gradient never fades (close to
  the contrastive d for clear non-matches). With the bounded d, windows that all looked like matches (a cosine
  head from scratch starts at logits near +3) gave a flat loss; with this one the same run trains. The margin
  is in logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

CONTRASTIVE_MARGIN = 2.0  # dissimilar windows are pushed to a match probability of e^-2 = 0.14 or below
TRIPLET_MARGIN = 1.0  # the target-centre window's logit must beat each hard negative's by 1
TRIPLET_HARDEST = 8  # hard negatives per pair: the off-centre windows (or negative pair's windows) nearest in d


def match_distance(responses: torch.Tensor) -> torch.Tensor:
    """The contrastive loss's distance: ``softplus(-logit) = -log sigmoid(logit)`` (same shape as ``responses``;
    >= 0, 0 for a certain match, log 2 at logit 0)."""
    return F.softplus(-responses.float())


def nonmatch_log_odds(responses: torch.Tensor) -> torch.Tensor:
    """The triplet loss's distance: ``-logit = log((1 - p) / p)``, p the match probability (same shape as
    ``responses``; 0 at even odds, negative for likely matches)."""
    return -responses.float()


def balanced_logistic(responses: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """SiamFC's logistic loss, positives and negatives weighted to equal halves per pair (weights do that)."""
    loss = F.binary_cross_entropy_with_logits(responses[:, 0].float(), labels, reduction="none")
    return (loss * weights).sum() / responses.shape[0]


def contrastive(
    responses: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, margin: float = CONTRASTIVE_MARGIN
) -> torch.Tensor:
    """Contrastive loss (Hadsell, Chopra and LeCun, 2006) at every window, on d = :func:`match_distance`.

    Label convention: ``y = 1`` means similar (the window holds the target's centre), ``y = 0`` dissimilar, and
    ``L = y * d^2 / 2 + (1 - y) * max(0, margin - d)^2 / 2``: similar pairs are pulled together (d -> 0),
    dissimilar ones pushed apart until d >= margin. A label between 0 and 1 (a positive at the wrong scale) mixes
    the two terms. Weighted by ``weights`` and summed per pair, averaged over the batch, as the logistic loss.
    """
    d = match_distance(responses[:, 0])
    loss = labels * 0.5 * d**2 + (1 - labels) * 0.5 * F.relu(margin - d) ** 2
    return (loss * weights).sum() / responses.shape[0]


def centre_cells(labels: torch.Tensor) -> torch.Tensor:
    """Per pair, the flat index of the positive cell nearest the positives' centroid (the target-centre window;
    the positives are a disc around the target's centre): (B,) long, -1 for a pair without positives."""
    b, r, _ = labels.shape
    pos = (labels > 0).flatten(1).float()
    ys, xs = torch.meshgrid(torch.arange(r, dtype=torch.float32), torch.arange(r, dtype=torch.float32), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()], 1).to(labels.device)  # (R * R, 2)
    centroid = pos @ coords / pos.sum(1, keepdim=True).clamp(min=1)  # (B, 2)
    dist = torch.cdist(centroid, coords) ** 2  # (B, R * R)
    nearest = torch.where(pos > 0, dist, torch.inf).argmin(1)
    return torch.where(pos.sum(1) > 0, nearest, -1)


def triplet(
    responses: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    margin: float = TRIPLET_MARGIN,
    hardest: int = TRIPLET_HARDEST,
) -> torch.Tensor:
    """Triplet loss ``max(0, d(a, p) - d(a, n) + margin)`` on d = :func:`nonmatch_log_odds`, per pair.

    The anchor is the exemplar; the positive the target-centre window (:func:`centre_cells`); the negatives the
    ``hardest`` windows of smallest d among the dissimilar ones (label 0): off-centre windows of a positive
    pair, any window of a negative pair. A negative pair has no window of its target, so its positive is a
    window at even odds (d = 0): its term is ``max(0, margin - d(a, n))``, pushing its windows below logit
    ``-margin`` (this anchors the logits' level, which positive pairs alone leave free). Each pair's term is the
    mean over its negatives, times the positive's label (its strength; 1 for a negative pair); the loss is the
    mean over the batch. ``weights`` are not used: the hardest negatives, not a balance of all, carry the loss.
    """
    del weights  # same signature as every loss in LOSSES
    d = nonmatch_log_odds(responses[:, 0]).flatten(1)  # (B, R * R)
    flat = labels.flatten(1)
    centre = centre_cells(labels)
    has_pos = centre >= 0
    idx = centre.clamp(min=0).unsqueeze(1)
    d_pos = torch.where(has_pos, d.gather(1, idx)[:, 0], torch.zeros_like(d[:, 0]))
    strength = torch.where(has_pos, flat.gather(1, idx)[:, 0], torch.ones_like(d[:, 0]))
    d_neg = torch.where(flat == 0, d, torch.inf)
    hard, _ = d_neg.topk(min(hardest, d.shape[1]), dim=1, largest=False)
    valid = torch.isfinite(hard)
    hinge = torch.where(valid, F.relu(d_pos.unsqueeze(1) - hard + margin), torch.zeros_like(hard))
    per_pair = hinge.sum(1) / valid.sum(1).clamp(min=1)
    return (strength * per_pair).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "logistic": balanced_logistic,
    "contrastive": contrastive,
    "triplet": triplet,
}


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean 1 - GIoU of boxes given as distances (P, 4) = (left, top, right, bottom) from the same points."""
    return giou_distance(pred, target).mean()


def giou_distance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - GIoU (P,) of boxes given as distances (P, 4) = (left, top, right, bottom) from the same points."""
    pl, pt, pr, pb = pred.unbind(1)
    tl, tt, tr, tb = target.unbind(1)
    inter = (torch.minimum(pl, tl) + torch.minimum(pr, tr)) * (torch.minimum(pt, tt) + torch.minimum(pb, tb))
    union = (pl + pr) * (pt + pb) + (tl + tr) * (tt + tb) - inter
    hull = (torch.maximum(pl, tl) + torch.maximum(pr, tr)) * (torch.maximum(pt, tt) + torch.maximum(pb, tb))
    giou = inter / union.clamp(min=1e-6) - (hull - union) / hull.clamp(min=1e-6)
    return 1 - giou


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
    centre-ness targets ``quality`` (B, R, R); positives whose ``boxes`` are NaN (pairs without a known box,
    ``PairConfig.region_boxes``) train ``cls`` only."""
    loss = LOSSES[classification](outputs["cls"], labels, weights)
    pos = (labels > 0.5) & torch.isfinite(boxes).all(1)  # a pair whose box is unknown (NaN) trains cls only
    if pos.any():
        pred = outputs["box"].float().permute(0, 2, 3, 1)[pos]
        loss = loss + BOX_WEIGHT * giou_loss(pred, boxes.permute(0, 2, 3, 1)[pos])
        q = outputs["quality"][:, 0].float()[pos]
        loss = loss + F.binary_cross_entropy_with_logits(q, quality[pos])
    return loss


def box_head_distill(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Distillation of the box head from a teacher's maps on the same pairs (the response-based distillation of
    "Distilled Siamese Networks for Visual Tracking"): BCE of ``cls`` against the teacher's probabilities at every
    cell; and, at each cell in proportion to the teacher's belief that it holds the target (its ``cls`` times its
    ``quality`` probability), GIoU of ``box`` against the teacher's box and BCE of ``quality`` against its
    centre-ness. The weighting keeps the teacher's boxes where it has no opinion (the background) out of it."""
    p_cls = torch.sigmoid(teacher["cls"].float())
    p_quality = torch.sigmoid(teacher["quality"].float())
    loss = F.binary_cross_entropy_with_logits(student["cls"].float(), p_cls)
    w = (p_cls * p_quality)[:, 0].flatten()  # (B * R * R,)
    if w.sum() > 1e-6:
        pred = student["box"].float().permute(0, 2, 3, 1).reshape(-1, 4)
        target = teacher["box"].float().permute(0, 2, 3, 1).reshape(-1, 4)
        quality = F.binary_cross_entropy_with_logits(
            student["quality"].float().flatten(), p_quality.flatten(), reduction="none"
        )
        loss = loss + ((BOX_WEIGHT * giou_distance(pred, target) + quality) * w).sum() / w.sum()
    return loss


def feature_distill(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Distillation of features (FitNets' hint, the feature term of "Distilled Siamese Networks for Visual
    Tracking"): the mean squared difference of the model's backbone outputs and the teacher's on the same crops, over
    the teacher's mean square, so that its weight does not depend on the features' scale."""
    t = teacher.float()
    return F.mse_loss(student.float(), t) / t.pow(2).mean().clamp_min(1e-6)


def fc_head_distill(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor:
    """Distillation of SiamFC's response map: BCE against the teacher's probabilities at every cell."""
    return F.binary_cross_entropy_with_logits(student["response"].float(), torch.sigmoid(teacher["response"].float()))
