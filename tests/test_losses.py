"""The classification losses (train.losses): their distances, the contrastive loss's pull and push, the triplet
loss against hand-computed values, both on the box head's cls map, and their selection in training."""

from __future__ import annotations

import math

import pytest
import torch

from tracker.config import ModelConfig
from tracker.model import SimilarityHead
from train.__main__ import build_config, parse_args
from train.labels import make_box_labels, make_labels
from train.losses import LOSSES, box_head_loss, centre_cells, contrastive, match_distance, triplet
from train.pairs import PairConfig


def logits_for(d: list[list[float]]) -> torch.Tensor:
    """A (1, 1, R, R) response whose :func:`match_distance` is ``d``: softplus(-logit) = d <=> logit =
    -log(e^d - 1)."""
    d_t = torch.tensor(d, dtype=torch.float64)
    return (-torch.log(torch.expm1(d_t))).float()[None, None]


def test_match_distance_is_the_negative_log_match_probability():
    logits = torch.tensor([-5.0, -1.0, 0.0, 1.0, 5.0, 30.0])
    d = match_distance(logits)
    torch.testing.assert_close(d, -torch.log(torch.sigmoid(logits)))
    assert d[2].item() == pytest.approx(math.log(2)) and d[-1].item() < 1e-12
    assert (d[1:] < d[:-1]).all() and (d >= 0).all()  # a larger logit (more similar) is a smaller distance
    torch.testing.assert_close(match_distance(logits_for([[0.2, 3.0]])), torch.tensor([[[[0.2, 3.0]]]]))


def test_contrastive_values():
    d = [[0.5, 1.0, 3.0]]
    labels, weights = torch.tensor([[[1.0, 0.0, 0.0]]]), torch.tensor([[[0.5, 0.25, 0.25]]])
    # similar: d^2 / 2 = 0.125; dissimilar: max(0, 2 - d)^2 / 2 = 0.5 and 0 (beyond the margin)
    expected = 0.5 * 0.125 + 0.25 * 0.5 + 0.25 * 0.0
    assert contrastive(logits_for(d), labels, weights).item() == pytest.approx(expected, rel=1e-5)
    soft = torch.tensor([[[0.25, 0.0, 0.0]]])  # a positive at the wrong scale mixes both terms
    mixed = 0.5 * (0.25 * 0.125 + 0.75 * 0.5 * 1.5**2) + 0.25 * 0.5
    assert contrastive(logits_for(d), soft, weights).item() == pytest.approx(mixed, rel=1e-5)


def test_contrastive_gradient_pulls_similar_and_pushes_dissimilar_windows():
    """Through a Euclidean head, on four windows that share no feature (the others weigh 0): one gradient step on
    the search features brings the similar window nearer the exemplar in feature space, the dissimilar ones
    inside the margin farther, and leaves the one beyond the margin as it was."""
    torch.manual_seed(0)
    kernel = torch.randn(1, 4, 3, 3)
    search = torch.randn(1, 4, 9, 9)
    search[:, :, 0:3, 0:3] = kernel[0] + 0.3 * torch.randn(4, 3, 3)  # window (0, 0): near the exemplar
    search[:, :, 6:9, 6:9] *= 4.0  # window (6, 6): far beyond the margin
    search.requires_grad_(True)
    head = SimilarityHead("euclidean", 0.02)
    head.bias.data.fill_(0.5)
    labels, weights = torch.zeros(1, 7, 7), torch.zeros(1, 7, 7)
    labels[0, 0, 0], weights[0, 0, 0] = 1.0, 0.5
    for i, j in [(0, 6), (6, 0), (6, 6)]:
        weights[0, i, j] = 0.5 / 3
    responses = head(kernel, search)
    d = match_distance(responses)[0, 0].detach()
    assert d[0, 6] < 2.0 and d[6, 0] < 2.0 < d[6, 6]  # margin 2
    contrastive(responses, labels, weights).backward()
    with torch.no_grad():
        moved = search - 0.05 * search.grad
    sq_dist = lambda x: -SimilarityHead("euclidean", 1.0)(kernel, x)[0, 0].detach()  # noqa: E731
    before, after = sq_dist(search.detach()), sq_dist(moved)
    assert after[0, 0] < before[0, 0]  # pulled together
    assert after[0, 6] > before[0, 6] and after[6, 0] > before[6, 0]  # pushed apart
    assert torch.equal(moved[:, :, 6:9, 6:9], search.detach()[:, :, 6:9, 6:9])  # beyond the margin: no force
    # on the logits: similar up (d down), dissimilar inside the margin down, beyond it untouched
    logits = logits_for([[0.5, 0.5, 3.0]]).requires_grad_()
    contrastive(logits, torch.tensor([[[1.0, 0.0, 0.0]]]), torch.full((1, 1, 3), 1 / 3)).backward()
    grad = logits.grad.flatten()
    assert grad[0] < 0 < grad[1] and grad[2] == 0


def test_triplet_values():
    # pair 0: positive at the centre (d = 0.2); hardest two negatives d = 0.5 and 0.9:
    #   (max(0, 0.2 - 0.5 + 1) + max(0, 0.2 - 0.9 + 1)) / 2 = (0.7 + 0.3) / 2 = 0.5
    # pair 1: a negative pair, its positive the exemplar itself (d = 0); hardest 0.3 and 0.6: (0.7 + 0.4) / 2
    # pair 2: as pair 0 at strength 0.5, its negatives beyond the margin but one: (0 + max(0, 0.2 - 1.1 + 1)) / 2
    d0 = [[2.0, 0.5, 3.0], [1.5, 0.2, 2.5], [4.0, 0.9, 1.0]]
    d1 = [[2.0, 0.6, 3.0], [1.5, 0.3, 2.5], [4.0, 0.9, 1.0]]
    d2 = [[2.0, 1.1, 3.0], [1.5, 0.2, 2.5], [4.0, 1.3, 1.2]]
    responses = -torch.tensor([d0, d1, d2])[:, None]  # d = -logit
    labels = torch.zeros(3, 3, 3)
    labels[0, 1, 1], labels[2, 1, 1] = 1.0, 0.5
    expected = (0.5 + 0.55 + 0.5 * 0.05) / 3
    loss = triplet(responses, labels, torch.ones(3, 3, 3), margin=1.0, hardest=2)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # every negative counted (hardest >= R * R): pair 0 alone, its 8 negatives
    negatives = [2.0, 0.5, 3.0, 1.5, 2.5, 4.0, 0.9, 1.0]
    all_neg = sum(max(0.0, 0.2 - n + 1.0) for n in negatives) / 8
    loss = triplet(-torch.tensor(d0)[None, None], labels[:1], torch.ones(1, 3, 3), margin=1.0, hardest=100)
    assert loss.item() == pytest.approx(all_neg, rel=1e-5)


def test_triplet_gradient_does_not_fade_where_every_window_looks_like_a_match():
    """Logits all near +5 (match probability 0.99): the hard negatives still get the full push (1 / hardest each,
    the positive the opposite), where a bounded distance such as -log p would pass on sigmoid(-5) = 0.007 of it."""
    responses = torch.full((1, 1, 3, 3), 5.0)
    responses[0, 0, 1, 1] = 5.2
    responses.requires_grad_(True)
    labels = torch.zeros(1, 3, 3)
    labels[0, 1, 1] = 1.0
    triplet(responses, labels, torch.ones(1, 3, 3), margin=1.0, hardest=8).backward()
    grad = responses.grad[0, 0]
    assert grad[1, 1].item() == pytest.approx(-1.0) and (grad.flatten()[[0, 1, 2, 3, 5, 6, 7, 8]] == 1 / 8).all()


def test_triplet_positive_is_the_target_centre_window():
    model = ModelConfig()  # 17 x 17 cells, 8 pixels apart
    targets = [(16.0, -8.0), (-40.0, 24.0), None]
    labels = torch.stack([torch.from_numpy(make_labels(model, PairConfig(), t, 1.0)[0]) for t in targets])
    assert labels[0].sum() > 1  # a disc of positives, not one cell
    assert centre_cells(labels).tolist() == [(8 - 1) * 17 + 8 + 2, (8 + 3) * 17 + 8 - 5, -1]


@pytest.mark.parametrize("name", ["contrastive", "triplet"])
def test_losses_train_the_box_heads_cls_map(name):
    """box_head_loss applies the chosen loss to ``cls``: a few steps on the maps lower the loss and raise the
    target-centre window's logit above every negative's (the box and quality terms as with the logistic loss)."""
    box = ModelConfig(backbone="mobilenetv2", width=0.35, stride=16, neck=16, head="box", tower=16)
    targets = [make_box_labels(box, PairConfig(), (5, -3, 50, 40)), make_box_labels(box, PairConfig(), None)]
    labels, weights, ltrb, quality = (torch.stack([torch.from_numpy(t[i]) for t in targets]) for i in range(4))
    torch.manual_seed(0)
    cls = (0.1 * torch.randn(2, 1, 16, 16)).requires_grad_()
    raw = torch.zeros(2, 4, 16, 16, requires_grad=True)
    q = torch.zeros(2, 1, 16, 16, requires_grad=True)
    optimizer = torch.optim.Adam([cls, raw, q], lr=0.1)
    losses = []
    for _ in range(60):
        outputs = {"cls": cls, "box": torch.exp(raw) * 16, "quality": q}
        loss = box_head_loss(outputs, labels, weights, ltrb, quality, classification=name)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert math.isfinite(losses[0]) and losses[-1] < 0.5 * losses[0]
    logits = cls.detach()[0, 0].flatten()  # the pair with a target: its centre window above every negative
    assert logits[centre_cells(labels)[0]] > logits[labels[0].flatten() == 0].max()


@pytest.mark.parametrize("name", ["logistic", "contrastive", "triplet"])
def test_every_loss_is_finite_with_a_gradient_on_real_labels(name):
    model = ModelConfig()
    targets = [(0.0, 0.0), (30.0, -20.0), None]
    pairs = [make_labels(model, PairConfig(), t, s) for t, s in zip(targets, (1.0, 0.3, 0.0), strict=True)]
    labels, weights = (torch.stack([torch.from_numpy(p[i]) for p in pairs]) for i in range(2))
    responses = torch.randn(3, 1, 17, 17, requires_grad=True)
    loss = LOSSES[name](responses, labels, weights)
    loss.backward()
    assert loss.ndim == 0 and math.isfinite(loss.item())
    assert torch.isfinite(responses.grad).all() and responses.grad.abs().sum(dim=(1, 2, 3)).min() > 0


def test_loss_and_metric_are_chosen_on_the_command_line():
    args = ["--data", "d", "--out", "o", "--loss", "triplet", "--metric", "cosine"]
    cfg = build_config(parse_args(args))
    assert cfg.loss == "triplet" and cfg.model.metric == "cosine" and cfg.model.out_scale == 10.0
    assert build_config(parse_args(["--data", "d", "--out", "o"])).loss == "logistic"
    with pytest.raises(SystemExit):
        parse_args([*args[:4], "--loss", "hinge"])
