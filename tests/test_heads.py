"""The similarity head's four metrics: each against a naive per-window computation, the logits each gives at
initialisation and after a few optimisation steps, and its learned scale in weights files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save
from synthetic import texture

from tracker.config import METRIC_SCALES, METRICS, ConfigError, ModelConfig
from tracker.model import SiamFC, SimilarityHead
from tracker.weights import FORMAT_VERSION, load_weights, save_weights
from train.losses import balanced_logistic


def naive_similarity(metric: str, kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    """Each metric the plain way, one window at a time: (N, C, k, k), (N, C, H, W) -> (N, 1, R, R)."""
    n, _, k, _ = kernel.shape
    r = search.shape[-1] - k + 1
    out = torch.zeros(n, 1, r, r, dtype=torch.float64)
    for b in range(n):
        z = kernel[b].double()
        for i in range(r):
            for j in range(r):
                x = search[b, :, i : i + k, j : j + k].double()
                if metric == "xcorr":
                    out[b, 0, i, j] = (z * x).sum()
                elif metric == "cosine":
                    out[b, 0, i, j] = (z * x).sum() / (z.norm() * x.norm())
                elif metric == "euclidean":
                    out[b, 0, i, j] = -((z - x) ** 2).sum()
                else:
                    out[b, 0, i, j] = -(z - x).abs().sum()
    return out


@pytest.mark.parametrize("impl", ["conv", "matmul"])
@pytest.mark.parametrize("metric", METRICS)
def test_each_metric_equals_the_naive_per_window_computation(metric, impl):
    torch.manual_seed(0)
    kernel, search = torch.randn(2, 5, 4, 4), torch.randn(6, 5, 12, 12)  # 2 targets x 3 scales
    head = SimilarityHead(metric, 0.3, impl=impl)
    with torch.no_grad():
        head.bias.fill_(-0.4)
        if head.log_gain is not None:
            head.log_gain.fill_(0.5)
    gain = 1.0 if metric == "xcorr" else np.exp(0.5)
    expected = 0.3 * gain * naive_similarity(metric, kernel.repeat_interleave(3, 0), search) - 0.4
    out = head(kernel, search)
    assert out.shape == (6, 1, 9, 9)
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_only_cross_correlation_keeps_a_fixed_scale():
    assert set(SiamFC(ModelConfig()).head.state_dict()) == {"bias"}  # as in every shipped weights file
    for metric in METRICS[1:]:
        head = SiamFC(ModelConfig(metric=metric)).head
        assert set(head.state_dict()) == {"bias", "log_gain"} and head.scale().item() == pytest.approx(
            METRIC_SCALES[metric]
        )
    assert ModelConfig().out_scale == 0.001 and ModelConfig(metric="cosine").out_scale == 10.0
    assert ModelConfig(metric="cosine", out_scale=1.5).out_scale == 1.5
    for bad in (0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ConfigError, match="out_scale"):
            ModelConfig(out_scale=bad)


def crops(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` textured search crops (255 px) and the exemplars (127 px) at their centres, float BGR."""
    rng = np.random.default_rng(seed)
    search = np.stack([texture(rng, 255, 255, 12) for _ in range(n)])
    search = torch.from_numpy(search).permute(0, 3, 1, 2).float()
    return search[:, :, 64:191, 64:191], search


@pytest.mark.parametrize("metric", METRICS)
def test_logits_spread_at_initialisation(metric):
    """The default scale gives logits that differ across the map from the first step (the cosine head's fixed
    0.001 gave a spread of 1e-5: no gradient step could tell windows apart)."""
    exemplar, search = crops(4)
    torch.manual_seed(0)
    model = SiamFC(ModelConfig(metric=metric, width=0.25)).train()  # training's BatchNorm statistics
    with torch.no_grad():
        spread = model(exemplar, search)["response"].flatten(1).std(1)
    assert spread.min() > 0.01
    if metric == "cosine":
        torch.manual_seed(0)
        fixed = SiamFC(ModelConfig(metric=metric, width=0.25, out_scale=0.001)).train()
        with torch.no_grad():
            assert fixed(exemplar, search)["response"].flatten(1).std(1).max() < 1e-3  # the old head


@pytest.mark.parametrize("metric", METRICS)
def test_a_few_steps_separate_the_positive_from_the_negatives(metric):
    """A shared 1x1 embedding and the head, trained by the logistic loss on one exemplar: the window it came
    from (with noise) must score above 0.5, every other window below."""
    torch.manual_seed(0)
    features = torch.randn(1, 8, 22, 22)
    exemplar = features[:, :, 5:11, 9:15] + 0.5 * torch.randn(1, 8, 6, 6)
    embed, head = torch.nn.Conv2d(8, 16, 1), SimilarityHead(metric, METRIC_SCALES[metric])
    labels = torch.zeros(1, 17, 17)
    labels[0, 5, 9] = 1.0
    weights = torch.where(labels > 0, 0.5, 0.5 / (17 * 17 - 1))
    optimizer = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=0.05)
    for _ in range(60):
        loss = balanced_logistic(head(embed(exemplar), embed(features)), labels, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        p = torch.sigmoid(head(embed(exemplar), embed(features)))[0, 0]
    negatives = p[labels[0] == 0]
    assert p[5, 9] > 0.6 and negatives.max() < 0.45, (float(p[5, 9]), float(negatives.max()))


def test_learned_gain_round_trips_and_old_files_load_unchanged(tmp_path):
    """The gain is saved with the weights; a file saved before the gain existed (head.bias alone) loads with
    gain 1, i.e. exactly the fixed scale it was trained with."""
    model = SiamFC(ModelConfig(backbone="handset", metric="cosine", out_scale=1.5)).eval()
    with torch.no_grad():
        model.head.bias.fill_(0.2)
        model.head.log_gain.fill_(0.7)
    save_weights(model, tmp_path / "new.safetensors")
    exemplar, search = crops(1)
    with torch.no_grad():
        ref = model(exemplar, search)["response"]
        assert torch.equal(load_weights(tmp_path / "new.safetensors")(exemplar, search)["response"], ref)
        model.head.log_gain.zero_()
        old_ref = model(exemplar, search)["response"]
    tensors = {k: v for k, v in model.state_dict().items() if k != "head.log_gain"}
    meta = {"format_version": FORMAT_VERSION, "model_config": json.dumps(model.config.to_dict())}
    (tmp_path / "old.safetensors").write_bytes(save(tensors, metadata=meta))
    old = load_weights(tmp_path / "old.safetensors")
    with torch.no_grad():
        assert old.head.log_gain.item() == 0.0 and torch.equal(old(exemplar, search)["response"], old_ref)
