"""Core library: geometry, the similarity head, weights, and the whole tracking pipeline on synthetic video."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import make_sequence

from tracker import SiamFCTracker, TrackerConfig
from tracker.config import ModelConfig
from tracker.errors import InputError, NotInitializedError, WeightsError
from tracker.eval.metrics import centre_errors, ious
from tracker.geometry import Box, as_box, context_size, crop_and_resize
from tracker.model import SeparableMaxPool, SiamFC, SimilarityHead, inference_form, xcorr_grouped
from tracker.weights import load_weights, save_weights

# --- geometry -------------------------------------------------------------------------------------------------


def test_box_centre_round_trip():
    rng = np.random.default_rng(0)
    for x, y, w, h in rng.uniform(-50, 500, (100, 4)) * [1, 1, 0.2, 0.2] + [0, 0, 1, 1]:
        b = Box(x, y, w, h)
        assert np.allclose(Box.from_center(*b.center, b.w, b.h), b)


def test_box_clip_inside_and_positive():
    b = Box(-20, 470, 100, 50).clip(640, 480)
    assert b.x == 0 and b.y == 470 and b.w == 80 and b.h == 10
    tiny = Box(700, 500, 5, 5).clip(640, 480)  # entirely outside: still a valid 1-pixel box inside
    assert tiny.w >= 1 and tiny.h >= 1 and tiny.x + tiny.w <= 640 and tiny.y + tiny.h <= 480


@pytest.mark.parametrize("bad", [(1, 2, 3), (0, 0, 0, 5), (0, 0, -1, 5), (0, 0, float("nan"), 4), "abcd", None])
def test_as_box_rejects(bad):
    with pytest.raises(InputError):
        as_box(bad)


def test_context_size_matches_paper():
    w, h = 40.0, 20.0
    p = 0.5 * (w + h)
    assert context_size(w, h) == pytest.approx(np.sqrt((w + p) * (h + p)))


def test_crop_centre_and_scale():
    img = np.zeros((100, 120, 3), np.uint8)
    img[40:60, 50:70] = 255  # a 20x20 white square centred on (59.5, 49.5)
    crop = crop_and_resize(img, (59.5, 49.5), 40, 80)  # 2x zoom: the square becomes 40x40 in the middle
    ys, xs = np.nonzero(crop[:, :, 0] > 127)
    assert xs.min() == pytest.approx(20, abs=1) and xs.max() == pytest.approx(59, abs=1)
    assert ys.min() == pytest.approx(20, abs=1) and ys.max() == pytest.approx(59, abs=1)


def test_crop_beyond_border_uses_pad_value():
    img = np.full((50, 50, 3), 10, np.uint8)
    crop = crop_and_resize(img, (0, 0), 50, 50, pad_value=(1, 2, 3))
    assert tuple(crop[0, 0]) == (1, 2, 3)  # top-left is beyond the image
    assert tuple(crop[-1, -1]) == (10, 10, 10)  # bottom-right is inside


def test_displacement_mapping_recovers_shift(handset_weights):
    """A target moved by (dx, dy) between two frames is found at the moved position (crop -> response ->
    frame mapping), for shifts in every direction. No cosine window and one scale: the mapping alone."""
    frames, boxes = make_sequence(2, seed=3, scale_change=1.0)
    for dx, dy in [(12, 0), (-12, 0), (0, 10), (-9, -9)]:
        moved = np.roll(frames[0], (dy, dx), axis=(0, 1))
        t = SiamFCTracker(
            handset_weights, backend="torch", device="cpu", config=TrackerConfig(scale_num=1, window_influence=0.0)
        )
        t.init(frames[0], boxes[0])
        r = t.update(moved)
        expect = boxes[0] + [dx, dy, 0, 0]
        assert centre_errors(np.array([r.box]), expect[None])[0] < 2


# --- similarity head ------------------------------------------------------------------------------------------


def naive_xcorr(kernel: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
    n, c, k, _ = kernel.shape
    r = search.shape[-1] - k + 1
    out = torch.zeros(n, 1, r, r)
    for b in range(n):
        for i in range(r):
            for j in range(r):
                out[b, 0, i, j] = (kernel[b] * search[b, :, i : i + k, j : j + k]).sum()
    return out


def test_grouped_xcorr_equals_naive_loop():
    torch.manual_seed(0)
    kernel, search = torch.randn(3, 4, 6, 6), torch.randn(3, 4, 22, 22)
    assert torch.allclose(xcorr_grouped(kernel, search), naive_xcorr(kernel, search), atol=1e-4)


def test_head_repeats_kernel_per_scale():
    torch.manual_seed(0)
    head = SimilarityHead("xcorr", 1.0)
    kernel, search = torch.randn(2, 4, 6, 6), torch.randn(6, 4, 22, 22)  # 2 targets x 3 scales
    out = head(kernel, search)
    expect = naive_xcorr(kernel.repeat_interleave(3, 0), search)
    assert out.shape == (6, 1, 17, 17) and torch.allclose(out, expect, atol=1e-4)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "absdiff"])
def test_head_metrics_peak_at_the_exemplar(metric):
    torch.manual_seed(0)
    search = torch.randn(1, 8, 22, 22)
    kernel = search[:, :, 5:11, 9:15].clone()  # the exemplar sits at row 5, column 9
    out = SimilarityHead(metric, 1.0)(kernel, search)[0, 0]
    assert divmod(int(out.argmax()), out.shape[1]) == (5, 9)


@pytest.mark.parametrize("stem_kernel, groups", [(11, 1), (9, 1), (7, 2), (5, 4)])
def test_alexnet_shapes(stem_kernel, groups):
    model = SiamFC(ModelConfig(width=0.25, stem_kernel=stem_kernel, groups=groups)).eval()
    with torch.inference_mode():
        z = model.embed(torch.rand(2, 3, 127, 127) * 255)
        r = model.score(z, torch.rand(6, 3, 255, 255) * 255)["response"]
    assert z.shape[-2:] == (6, 6) and r.shape == (6, 1, 17, 17)


@pytest.mark.parametrize("bad", [{"stem_kernel": 8}, {"stem_kernel": 3}, {"groups": 3}, {"groups": 0}])
def test_model_config_rejects(bad):
    with pytest.raises(InputError, match=next(iter(bad))):
        ModelConfig(**bad)


def _with_bn_statistics(model: SiamFC) -> SiamFC:
    """Random BatchNorm statistics and affine parameters, so folding them is not a no-op."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("shape", [(2, 5, 123, 123), (1, 3, 57, 58), (1, 1, 3, 3)])
def test_separable_max_pool_equals_max_pool(shape):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    assert torch.equal(SeparableMaxPool(3, 2)(x), torch.nn.functional.max_pool2d(x, 3, 2))


def test_inference_form_matches_and_leaves_the_original():
    model = _with_bn_statistics(SiamFC(ModelConfig(width=0.25, groups=2)))
    fused = inference_form(model.backbone)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    x = torch.rand(2, 3, 255, 255) * 255
    with torch.inference_mode():
        ref, out = model.backbone(x), fused(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_torch_backend_fp32_matches_the_model(tmp_path):
    """The backend's inference form (BatchNorm folded, MatMul head on CPU) gives the training model's response."""
    from tracker.backends.torch_backend import TorchBackend

    model = _with_bn_statistics(SiamFC(ModelConfig(width=0.25, stem_kernel=7, groups=2, out_scale=1.0)))
    backend = TorchBackend(model, "cpu", "fp32")
    assert backend.model is not model and backend.model.head.impl == "matmul" and model.head.impl == "conv"
    rng = np.random.default_rng(0)
    exemplar = rng.integers(0, 256, (1, 127, 127, 3), dtype=np.uint8)
    search = rng.integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)
    out = backend.score(backend.embed(exemplar), search)["response"]
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float()  # noqa: E731
    with torch.inference_mode():
        ref = model(as_tensor(exemplar), as_tensor(search))["response"][:, 0].numpy()
    np.testing.assert_allclose(out, ref, rtol=2e-5)  # fp32 rounding: the folded weights are rounded once more


# --- weights --------------------------------------------------------------------------------------------------


def test_weights_round_trip_rebuilds_model(tmp_path):
    torch.manual_seed(0)
    model = SiamFC(ModelConfig(width=0.25, metric="cosine", out_scale=2.0)).eval()
    save_weights(model, tmp_path / "w.safetensors")
    loaded = load_weights(tmp_path / "w.safetensors")
    assert loaded.config == model.config
    x, z = torch.rand(3, 3, 255, 255) * 255, torch.rand(1, 3, 127, 127) * 255
    with torch.inference_mode():
        assert torch.equal(model(z, x)["response"], loaded(z, x)["response"])


def test_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError):
        load_weights(tmp_path / "junk.safetensors")


# --- the tracker ----------------------------------------------------------------------------------------------


def track(weights, frames, first_box, **kwargs):
    t = SiamFCTracker(weights, backend="torch", device="cpu", **kwargs)
    t.init(frames[0], first_box)
    return np.array([first_box] + [t.update(f).box for f in frames[1:]], dtype=float)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_tracks_moving_rescaling_object(handset_weights, seed):
    frames, gt = make_sequence(50, seed=seed)
    pred = track(handset_weights, frames, gt[0])
    assert centre_errors(pred, gt).mean() < 6
    assert ious(pred, gt).mean() > 0.6
    assert pred[-1, 2] > gt[0, 2] * 1.08  # the box grew with the object (true growth 1.3x, damped)


@pytest.mark.parametrize("shift", [(4, -3, 0, 0), pytest.param((-3, 4, 0, 0), marks=pytest.mark.slow)])
def test_tracks_from_shifted_first_box(handset_weights, shift):
    frames, gt = make_sequence(40, seed=2)
    pred = track(handset_weights, frames, gt[0] + shift)
    assert centre_errors(pred[10:], gt[10:]).mean() < 8 and ious(pred[10:], gt[10:]).mean() > 0.5


@pytest.mark.parametrize("factor", [0.85, pytest.param(1.2, marks=pytest.mark.slow)])
def test_tracks_from_rescaled_first_box(handset_weights, factor):
    frames, gt = make_sequence(40, seed=2)
    x, y, w, h = gt[0]
    first = (x + w * (1 - factor) / 2, y + h * (1 - factor) / 2, w * factor, h * factor)
    pred = track(handset_weights, frames, first)
    assert centre_errors(pred, gt).mean() < 8 and ious(pred, gt).mean() > 0.5


def test_result_contract(handset_weights):
    frames, gt = make_sequence(10, seed=0)
    t = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    t.init(frames[0], list(gt[0]))  # any sequence of 4 numbers
    for f in frames[1:]:
        r = t.update(f)
        x, y, w, h = r.box
        assert all(isinstance(v, float) and np.isfinite(v) for v in r.box)
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 320 and y + h <= 240
        assert isinstance(r.score, float) and 0 <= r.score <= 1 and isinstance(r.found, bool)


def test_update_before_init_raises(handset_weights):
    t = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    with pytest.raises(NotInitializedError, match="before init"):
        t.update(np.zeros((240, 320, 3), np.uint8))


def test_init_fully_resets(handset_weights):
    frames, gt = make_sequence(20, seed=0)
    t = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    t.init(frames[0], gt[0])
    first = [t.update(f).box for f in frames[1:]]
    t.init(frames[0], gt[0])
    again = [t.update(f).box for f in frames[1:]]
    assert np.array_equal(first, again)


def test_instances_are_independent(handset_weights):
    frames, gt = make_sequence(15, seed=0)
    a = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    b = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    a.init(frames[0], gt[0])
    b.init(frames[5], gt[5])
    ra = [a.update(f).box for f in frames[1:]]
    solo = SiamFCTracker(handset_weights, backend="torch", device="cpu")
    solo.init(frames[0], gt[0])
    assert np.array_equal(ra, [solo.update(f).box for f in frames[1:]])


def test_missing_default_weights_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("SIAMTRACK_WEIGHTS", str(tmp_path / "none.safetensors"))
    with pytest.raises(WeightsError, match=r"no default weights at .*--weights PATH"):
        SiamFCTracker()


def test_bf16_response_matches_fp32(alexnet_weights):
    """The fast CPU path (bf16 autocast + channels_last) stays within a stated tolerance of fp32:
    |bf16 - fp32| <= 2% of the fp32 response range."""
    from tracker.backends.torch_backend import TorchBackend

    rng = np.random.default_rng(0)
    exemplar = rng.integers(0, 256, (1, 127, 127, 3), dtype=np.uint8)
    search = rng.integers(0, 256, (3, 255, 255, 3), dtype=np.uint8)
    fp32 = TorchBackend(load_weights(alexnet_weights), "cpu", "fp32")
    bf16 = TorchBackend(load_weights(alexnet_weights), "cpu", "bf16")
    r32 = fp32.score(fp32.embed(exemplar), search)["response"]
    r16 = bf16.score(bf16.embed(exemplar), search)["response"]
    spread = r32.max() - r32.min()
    assert np.abs(r16 - r32).max() <= 0.02 * spread
