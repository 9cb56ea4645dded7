"""The single-pass box head: its training targets, its decoder, its export, and the tracker on it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tracker import SiamFCTracker
from tracker.backends import select
from tracker.config import ConfigError, ModelConfig, TrackerConfig
from tracker.heads.box import BoxSearch, decode_boxes
from tracker.model import SiamFC
from train.curate import curate
from train.labels import cell_offsets, make_box_labels
from train.losses import box_head_distill, box_head_loss, giou_loss
from train.pairs import PairConfig, PairDataset

BOX = ModelConfig(backbone="mobilenetv2", width=0.35, stride=16, neck=16, head="box", tower=16)


def test_box_head_config():
    assert BOX.response_size == 16 and BOX.outputs == ("cls", "box", "quality")
    assert ModelConfig().outputs == ("response",)
    with pytest.raises(ConfigError, match="MobileNet"):
        ModelConfig(head="box")
    with pytest.raises(ConfigError, match="head must be"):
        ModelConfig(backbone="mobilenetv2", head="rpn")
    with pytest.raises(ConfigError, match="metric 'cosine' is for the fc head"):
        ModelConfig(backbone="mobilenetv2", stride=16, head="box", metric="cosine")


def test_model_outputs_shapes():
    with torch.inference_mode():
        out = SiamFC(BOX).eval()(torch.rand(2, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "cls": (2, 1, 16, 16), "box": (2, 4, 16, 16), "quality": (2, 1, 16, 16)
    }  # fmt: skip
    assert bool((out["box"] > 0).all()) and bool(torch.isfinite(out["box"]).all())


@pytest.mark.parametrize("target", [(0.0, 0.0, 64.0, 48.0), (-37.5, 21.25, 90.0, 30.0), (70.0, -60.0, 20.0, 110.0)])
def test_box_labels_decode_back_to_the_ground_truth(target):
    labels, weights, ltrb, quality = make_box_labels(BOX, PairConfig(), target)
    pos = labels > 0
    assert pos.any() and weights.sum() == pytest.approx(1.0)
    boxes = decode_boxes(ltrb, cell_offsets(BOX))  # the tracker's decoding of the training targets
    np.testing.assert_allclose(boxes[:, pos].T, np.tile(target, (pos.sum(), 1)), atol=1e-4)
    assert (quality[pos] > 0).all() and (quality[pos] <= 1).all() and (quality[~pos] == 0).all()
    # the most central positive has the highest quality
    px, py = np.meshgrid(cell_offsets(BOX), cell_offsets(BOX))
    nearest = np.argmin(np.where(pos, np.hypot(px - target[0], py - target[1]), np.inf))
    assert quality.flat[nearest] == quality.max()


def test_box_labels_without_target_are_all_negative():
    labels, weights, _, quality = make_box_labels(BOX, PairConfig(), None)
    assert labels.sum() == 0 and quality.sum() == 0 and weights.sum() == pytest.approx(1.0)


def test_giou_loss_values():
    box = torch.tensor([[10.0, 10.0, 10.0, 10.0]])
    assert giou_loss(box, box).item() == pytest.approx(0.0, abs=1e-6)
    # same point, half the width on the right: IoU 0.75, the hull is the larger box
    assert giou_loss(torch.tensor([[10.0, 10.0, 0.0, 10.0]]) + torch.tensor([[0, 0, 5.0, 0]]), box).item() == (
        pytest.approx(0.25)
    )


def test_box_head_loss_pulls_the_box_to_the_target():
    labels, weights, ltrb, quality = (
        torch.from_numpy(a)[None] for a in make_box_labels(BOX, PairConfig(), (5, -3, 50, 40))
    )
    raw = torch.zeros(1, 4, 16, 16, requires_grad=True)
    cls = torch.zeros(1, 1, 16, 16, requires_grad=True)
    q = torch.zeros(1, 1, 16, 16, requires_grad=True)
    opt = torch.optim.Adam([raw, cls, q], lr=0.1)
    first = None
    for _ in range(200):
        loss = box_head_loss({"cls": cls, "box": torch.exp(raw) * 16, "quality": q}, labels, weights, ltrb, quality)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pos = labels[0] > 0
    pred = (torch.exp(raw) * 16)[0].permute(1, 2, 0)[pos]
    assert loss.item() < 0.5 * first
    assert torch.allclose(pred, ltrb[0].permute(1, 2, 0)[pos], rtol=0.05)


def test_distillation_pulls_the_maps_to_the_teachers():
    torch.manual_seed(0)
    teacher = {"cls": torch.randn(2, 1, 16, 16) * 3, "box": torch.rand(2, 4, 16, 16) * 60 + 5,
               "quality": torch.randn(2, 1, 16, 16)}  # fmt: skip
    raw = torch.zeros(2, 4, 16, 16, requires_grad=True)
    cls = torch.zeros(2, 1, 16, 16, requires_grad=True)
    q = torch.zeros(2, 1, 16, 16, requires_grad=True)
    opt = torch.optim.Adam([raw, cls, q], lr=0.05)
    for _ in range(300):
        loss = box_head_distill({"cls": cls, "box": torch.exp(raw) * 16, "quality": q}, teacher)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert torch.allclose(torch.sigmoid(cls), torch.sigmoid(teacher["cls"]), atol=0.05)
    confident = (torch.sigmoid(teacher["cls"]) * torch.sigmoid(teacher["quality"]))[:, 0] > 0.5
    pred, want = (t.permute(0, 2, 3, 1)[confident] for t in (torch.exp(raw) * 16, teacher["box"]))
    assert confident.any() and torch.allclose(pred, want, rtol=0.1)
    assert torch.isfinite(loss)


def write_bright_box_sequence(root: Path, n: int = 8) -> None:
    """A white rectangle on black, moving and changing shape: its pixels show where the box is in any crop."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True)
    lines = []
    for i in range(n):
        frame = np.zeros((240, 320, 3), np.uint8)
        w, h = int(rng.integers(30, 70)), int(rng.integers(30, 70))
        x, y = int(rng.integers(60, 320 - 60 - w)), int(rng.integers(60, 240 - 60 - h))
        frame[y : y + h, x : x + w] = 255
        cv2.imwrite(str(root / "img" / f"{i + 1:06d}.png"), frame)
        lines.append(f"{x},{y},{w},{h}")
    (root / "groundtruth.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("stretch, shape", [(0.4, 0.0), (0.15, 0.6)])
def test_box_targets_follow_scale_shift_stretch_and_flip(tmp_path, stretch, shape):
    for k in range(2):
        write_bright_box_sequence(tmp_path / "data" / f"seq{k}")
    cache = curate([tmp_path / "data"], tmp_path / "cache", workers=1)
    # every geometric augmentation on (strong stretch or pair shape, scale and shift; flips half the time),
    # nothing that hides the rectangle (pastes, occluders, negatives)
    pairs = PairConfig(p_paste=0.0, p_neg=0.0, p_occlude=0.0, p_grey=0.0, stretch=stretch, shape=shape, scale_range=0.4)
    data = PairDataset(cache, 40, BOX, pairs, seed=3)
    checked, aspects = 0, []
    for i in range(len(data)):
        exemplar, search, labels, _, ltrb, _ = (t.numpy() for t in data[i])
        ys, xs = np.nonzero(exemplar.mean(0) > 127)
        aspects.append((xs.max() + 1 - xs.min()) / (ys.max() + 1 - ys.min()))  # the object's shape as shown
        pos = labels > 0
        cx, cy, w, h = decode_boxes(ltrb, cell_offsets(BOX))[:, pos][:, 0]
        x0, y0 = cx - w / 2 + (BOX.search_size - 1) / 2, cy - h / 2 + (BOX.search_size - 1) / 2
        if x0 < 2 or y0 < 2 or x0 + w > BOX.search_size - 2 or y0 + h > BOX.search_size - 2:
            continue  # partly outside the crop: the visible pixels do not show the whole box
        ys, xs = np.nonzero(search.mean(0) > 127)
        seen = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
        assert np.abs(seen - [x0, y0, x0 + w, y0 + h]).max() < 3.0, (i, seen, (x0, y0, w, h))
        checked += 1
    assert checked >= 20
    # the exemplars show the annotated shapes (their log-aspect spread 0.24 here); shape on: other shapes too (0.59)
    spread = np.std(np.log(aspects))
    assert spread > 0.45 if shape else spread < 0.35, spread


def test_decoder_reads_the_box_at_the_best_cell():
    cfg = TrackerConfig(window_influence=0.0, penalty_k=0.0, box_lr=1.0)
    search = BoxSearch(cfg, BOX)
    frame = np.zeros((240, 320, 3), np.uint8)
    st = search.start(frame, (100, 80, 40, 30))
    plan = search.plan(frame, st)
    assert plan.crops.shape == (1, 255, 255, 3) and search.crops_per_target == 1
    cls = np.full((1, 16, 16), -5.0, np.float32)
    cls[0, 4, 11] = 5.0  # cell (row 4, column 11): (11 - 7.5) * 16 = +56, (4 - 7.5) * 16 = -56 crop pixels
    ltrb = np.broadcast_to(np.array([30.0, 20.0, 10.0, 40.0], np.float32)[:, None, None], (4, 16, 16))[None]
    peak = plan.decode({"cls": cls, "box": ltrb.copy(), "quality": np.full((1, 16, 16), 5.0, np.float32)})
    to_crop = 255 / search._search_side(st.size)
    expected_center = st.center + np.array([56 + (10 - 30) / 2, -56 + (40 - 20) / 2]) / to_crop
    np.testing.assert_allclose(peak.center, expected_center, atol=1e-6)
    score = 1 / (1 + np.exp(-5.0)) ** 2
    assert peak.score == pytest.approx(score)
    # the size moves towards the regressed one at box_lr x the cell's (penalised) score
    np.testing.assert_allclose(peak.size, st.size * (1 - score) + np.array([40.0, 60.0]) / to_crop * score, atol=1e-6)


@pytest.mark.parametrize("aspect_rate", [0.0, 0.5])
def test_aspect_rate_slows_the_aspect_ratio_and_keeps_the_size_update(aspect_rate):
    frame = np.zeros((240, 320, 3), np.uint8)
    outputs = {"cls": np.full((1, 16, 16), 5.0, np.float32), "quality": np.full((1, 16, 16), 5.0, np.float32)}
    outputs["box"] = np.broadcast_to(np.array([30.0, 20.0, 10.0, 40.0], np.float32)[:, None, None], (4, 16, 16))[None]
    peaks = []
    for rate in (None, aspect_rate):
        search = BoxSearch(TrackerConfig(window_influence=0.0, penalty_k=0.0, box_lr=0.5, aspect_rate=rate), BOX)
        st = search.start(frame, (100, 80, 40, 30))
        peaks.append(search.plan(frame, st).decode({k: v.copy() for k, v in outputs.items()}))
    assert np.prod(peaks[1].size) == pytest.approx(np.prod(peaks[0].size))  # the same size (sqrt(w h))...
    rate = 0.5 / (1 + np.exp(-5.0)) ** 2  # box_lr x the cell's score
    # ...and the aspect ratio at aspect_rate x that rate, in log space, from the first box's 4:3 to the regressed 2:3
    log_aspect = np.log(4 / 3) + aspect_rate * rate * (np.log(40 / 60) - np.log(4 / 3))
    assert np.log(peaks[1].size[0] / peaks[1].size[1]) == pytest.approx(log_aspect)
    assert peaks[0].size[0] / peaks[0].size[1] < peaks[1].size[0] / peaks[1].size[1] <= 4 / 3 + 1e-9
    with pytest.raises(ConfigError, match="aspect_rate"):
        TrackerConfig(aspect_rate=1.5)


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_box_calibration_corrects_the_regressed_box_by_its_error_on_the_first_frame(share):
    """A network that regresses the 40x30 target as 40x60 on its first frame is corrected by that error's share."""
    frame = np.zeros((240, 320, 3), np.uint8)
    config = TrackerConfig(window_influence=0.0, penalty_k=0.0, box_lr=1.0, box_calibration=share)
    search = BoxSearch(config, BOX)
    st = search.start(frame, (100, 80, 40, 30))
    to_crop = BOX.search_size / search._search_side(st.size)  # frame pixels -> search-crop pixels
    regressed = np.array([40.0, 60.0]) * to_crop  # crop pixels: the right width, twice the height
    outputs = {"cls": np.full((1, 16, 16), 5.0, np.float32), "quality": np.full((1, 16, 16), 5.0, np.float32)}
    ltrb = np.array([regressed[0] / 2, regressed[1] / 2] * 2, np.float32)
    outputs["box"] = np.broadcast_to(ltrb[:, None, None], (4, 16, 16))[None]
    search.calibration(frame, st).decode(outputs)
    np.testing.assert_allclose(st.box_gain, [1.0, 0.5**share], rtol=1e-5)
    peak = search.plan(frame, st).decode(outputs)  # the next frame: the same regression, corrected
    rate = 1 / (1 + np.exp(-5.0)) ** 2  # box_lr x the cell's score
    np.testing.assert_allclose(peak.size, st.size * (1 - rate) + np.array([40, 60]) * st.box_gain * rate, rtol=1e-5)
    # off by default, and for a share of 0
    for off in (None, 0.0):
        assert BoxSearch(TrackerConfig(box_calibration=off), BOX).calibration(frame, st) is None
    with pytest.raises(ConfigError, match="box_calibration"):
        TrackerConfig(box_calibration=1.5)


def test_box_calibration_gain_is_bounded():
    frame = np.zeros((240, 320, 3), np.uint8)
    outputs = {"cls": np.zeros((1, 16, 16), np.float32), "quality": np.zeros((1, 16, 16), np.float32)}
    outputs["box"] = np.full((1, 4, 16, 16), 0.01, np.float32)  # a box of almost nothing
    search = BoxSearch(TrackerConfig(box_calibration=1.0), BOX)
    st = search.start(frame, (100, 80, 40, 30))
    search.calibration(frame, st).decode(outputs)
    np.testing.assert_allclose(st.box_gain, [2.0, 2.0])


def test_box_calibration_in_the_tracker_and_in_multitracker(box_weights):
    """The trackers score the first frame's crop at init; MultiTracker follows each target as SiamFCTracker does."""
    from synthetic import make_sequence

    from tracker import MultiTracker

    frames, gt = make_sequence(6, seed=0)
    config = TrackerConfig(box_calibration=1.0)
    single = SiamFCTracker(box_weights, backend="torch", config=config)
    single.init(frames[0], gt[0])
    assert single._state.box_gain is not None and np.all(
        (0.5 <= single._state.box_gain) & (single._state.box_gain <= 2)
    )
    mt = MultiTracker(box_weights, backend="torch", config=config)
    (i,) = mt.add(frames[0], [gt[0]])
    np.testing.assert_allclose(mt._targets[i].box_gain, single._state.box_gain, rtol=1e-5)
    for frame in frames[1:]:
        a, b = single.update(frame), mt.update(frame)[i]
        np.testing.assert_allclose(b.box, a.box, atol=1e-3)
        assert np.isfinite(a.box).all() and a.box[2] >= 1 and a.box[3] >= 1


def test_a_failed_calibration_adds_no_target(box_weights):
    """MultiTracker.add with box_calibration: a backend failure while the new targets calibrate leaves the tracker
    as it was, and it keeps tracking the targets it held."""
    from synthetic import make_sequence

    from tracker import MultiTracker
    from tracker.errors import BackendError

    frames, gt = make_sequence(4, seed=0)
    mt = MultiTracker(box_weights, backend="torch", config=TrackerConfig(box_calibration=1.0))
    (first,) = mt.add(frames[0], [gt[0]])
    score = mt._backend.score
    mt._backend.score = lambda kernel, crops: (_ for _ in ()).throw(RuntimeError("out of memory"))
    with pytest.raises(BackendError, match="out of memory"):
        mt.add(frames[0], [(20, 20, 30, 30), (200, 100, 40, 40)])
    assert mt.ids == [first]
    mt._backend.score = score
    result = mt.update(frames[1])[first]
    assert list(mt.add(frames[1], [(20, 20, 30, 30)])) == [first + 1]
    assert np.isfinite(result.box).all() and result.box[2] >= 1


def test_box_score_is_the_probability_and_found_uses_the_heads_thresholds():
    from tracker.heads.fc import SiamFCSearch

    frame = np.zeros((240, 320, 3), np.uint8)
    search = BoxSearch(TrackerConfig(), BOX)
    assert search.found == BoxSearch.FOUND
    assert SiamFCSearch(TrackerConfig(), ModelConfig()).found == SiamFCSearch.FOUND != BoxSearch.FOUND
    mine = {"found_threshold": 0.9, "found_psr": 1.0, "redetect_threshold": 0.95, "redetect_fraction": 0.5,
            "found_fraction": 0.3, "redetect_floor": 0.1}  # fmt: skip
    assert BoxSearch(TrackerConfig(**mine), BOX).found == mine
    search = BoxSearch(TrackerConfig(reference_frames=1), BOX)  # the target's level: its first frame's score
    st = search.start(frame, (100, 80, 40, 30))
    ltrb = np.full((1, 4, 16, 16), 20.0, np.float32)
    quality = np.full((1, 16, 16), 9.0, np.float32)
    results = []
    for peak_logit in (2.0, -1.0, -3.0):  # first tracked frame, then weaker, then weak enough to be lost
        cls = np.full((1, 16, 16), -8.0, np.float32)
        cls[0, 7, 8] = peak_logit
        peak = search.plan(frame, st).decode({"cls": cls, "box": ltrb, "quality": quality})
        results.append(search.conclude(peak, st))
    # the score is sigmoid(cls) * sigmoid(quality) itself, not relative to the first tracked frame's
    expected = [1 / (1 + np.exp(-v)) / (1 + np.exp(-9.0)) for v in (2.0, -1.0, -3.0)]
    np.testing.assert_allclose([r.score for r in results], expected, rtol=1e-5)
    assert [r.found for r in results] == [True, True, False]
    # lost: re-detection asks for the lower of redetect_threshold and redetect_fraction x the target's level
    search.found.update(found_threshold=0.2, redetect_threshold=0.9, redetect_fraction=0.5)
    assert search._is_found(0.441, 1.0, True, expected[0]) and not search._is_found(0.439, 1.0, True, expected[0])
    search.found.update(redetect_threshold=0.3)
    assert search._is_found(0.3, 1.0, True, expected[0]) and not search._is_found(0.29, 1.0, True, expected[0])
    assert not search._is_found(0.5, 0.0, False, 1.0)  # a flat map never counts
    # a target whose own level is low keeps its track at found_fraction of it; re-detection never below the floor
    assert search._is_found(0.011, 1.0, False, 0.04) and not search._is_found(0.009, 1.0, False, 0.04)
    assert not search._is_found(0.04, 1.0, True, 0.04) and search._is_found(0.05, 1.0, True, 0.04)


@pytest.mark.parametrize("box", [(0, 0, 12, 10), (300, 225, 20, 15), (-5, 100, 30, 30)])
def test_decoder_keeps_boxes_inside_the_frame_at_the_borders(box):
    search = BoxSearch(TrackerConfig(box_lr=1.0), BOX)
    frame = np.zeros((240, 320, 3), np.uint8)
    st = search.start(frame, box)
    plan = search.plan(frame, st)
    cls = np.full((1, 16, 16), 5.0, np.float32)  # every cell confident, every box far beyond the frame
    huge = np.full((1, 4, 16, 16), 1e4, np.float32)
    for ltrb in (huge, np.zeros_like(huge)):
        st.reference = None
        result = search.conclude(plan.decode({"cls": cls, "box": ltrb, "quality": cls}), st)
        x, y, w, h = result.box
        assert np.isfinite([x, y, w, h]).all() and w >= 1 and h >= 1
        assert x >= 0 and y >= 0 and x + w <= 320 + 1e-9 and y + h <= 240 + 1e-9


def _all_close(actual: dict, expected: dict, tol: float) -> None:
    assert set(actual) == set(expected) == {"cls", "box", "quality"}
    for name, value in expected.items():
        assert actual[name].shape == value.shape and actual[name].dtype == np.float32
        assert np.abs(actual[name] - value).max() <= tol * (value.max() - value.min()), name


def _inputs(targets: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.integers(0, 256, (targets, 127, 127, 3), dtype=np.uint8),
        rng.integers(0, 256, (targets, 255, 255, 3), dtype=np.uint8),
    )


def test_box_head_export_parity(box_weights):
    pytest.importorskip("onnxruntime")
    exemplars, search = _inputs(3)
    ref = select.create_backend("torch", box_weights, "cpu", precision="fp32")
    ort = select.create_backend("onnx", box_weights, "cpu", scales=1)
    _all_close(ort.score(ort.embed(exemplars), search), ref.score(ref.embed(exemplars), search), 1e-4)


@pytest.mark.slow
def test_separable_tower_keeps_the_outputs_and_exports(tmp_path):
    """separable_tower: each tower layer a depthwise 3x3 and a 1x1, the outputs' shapes unchanged, a fraction of the
    tower's multiply-adds, and ONNX Runtime matches torch on it."""
    pytest.importorskip("onnxruntime")
    from tracker.weights import save_weights

    cfg = ModelConfig(**{**BOX.to_dict(), "separable_tower": True})
    torch.manual_seed(0)
    model = SiamFC(cfg).eval()
    convs = [m for m in model.head.tower.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(m.kernel_size, m.groups) for m in convs] == [((3, 3), 64), ((1, 1), 1), ((3, 3), 16), ((1, 1), 1)]
    dense = sum(p.numel() for p in SiamFC(BOX).head.tower.parameters())
    assert sum(p.numel() for p in model.head.tower.parameters()) < dense / 3
    for conv in (model.head.cls, model.head.box, model.head.quality):
        torch.nn.init.normal_(conv.weight, std=0.3)  # outputs that spread enough to compare backends on
    weights = tmp_path / "separable.safetensors"
    save_weights(model, weights)
    exemplars, search = _inputs(2)
    ref = select.create_backend("torch", weights, "cpu", precision="fp32")
    ort = select.create_backend("onnx", weights, "cpu", scales=1)
    out = ref.score(ref.embed(exemplars), search)
    assert {k: v.shape[1:] for k, v in out.items()} == {"cls": (16, 16), "box": (4, 16, 16), "quality": (16, 16)}
    _all_close(ort.score(ort.embed(exemplars), search), out, 1e-4)
    with pytest.raises(ConfigError, match="separable_tower"):
        ModelConfig(**{**BOX.to_dict(), "separable_tower": "yes"})


def test_box_head_tensorrt_outputs_on_fakes(box_weights, tmp_path, monkeypatch):
    """The TensorRT backend's multi-output path, with TensorRT and CUDA faked on the CPU (tests/fake_tensorrt.py)."""
    pytest.importorskip("onnxruntime")
    from fake_tensorrt import FakeCudart, FakeTensorRT

    from tracker.backends import tensorrt_backend

    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path))
    monkeypatch.setattr(tensorrt_backend, "_import_tensorrt", lambda: FakeTensorRT)
    monkeypatch.setattr(tensorrt_backend, "_import_cudart", lambda: FakeCudart())
    trt = select.create_backend("tensorrt", box_weights, precision="fp32", targets=2, scales=1)
    exemplars, search = _inputs(3)  # 3 targets through graphs of 2: a padded second chunk
    ref = select.create_backend("torch", box_weights, "cpu", precision="fp32")
    _all_close(trt.score(trt.embed(exemplars), search), ref.score(ref.embed(exemplars), search), 1e-4)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_tracker_on_a_box_head_scores_one_crop(box_weights, backend):
    """The tracker hands the box head's outputs to its decoder: one crop per frame, a valid result each frame."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    from synthetic import make_sequence

    frames, gt = make_sequence(6, seed=0)
    tracker = SiamFCTracker(box_weights, backend=backend)
    tracker.init(frames[0], gt[0])
    for frame in frames[1:]:
        result = tracker.update(frame)
        x, y, w, h = result.box
        assert np.isfinite(result.box).all() and w >= 1 and h >= 1 and 0 <= result.score <= 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("calibrate", [False, True])
def test_non_finite_box_head_outputs_read_as_a_lost_target(box_weights, bad, calibrate):
    """From the first frame on with box_calibration (the init's own search gets the bad outputs too): a finite
    box factor, and finite boxes of at least a pixel."""
    from synthetic import make_sequence

    frames, gt = make_sequence(5, seed=0)
    tracker = SiamFCTracker(box_weights, backend="torch", config=TrackerConfig(box_calibration=float(calibrate)))
    score = tracker._backend.score
    bad_score = lambda kernel, crops: {k: np.full_like(v, bad) for k, v in score(kernel, crops).items()}  # noqa: E731
    if calibrate:
        tracker._backend.score = bad_score
    tracker.init(frames[0], gt[0])
    if calibrate:
        assert np.isfinite(tracker._state.box_gain).all()
    tracker._backend.score = bad_score
    for frame in frames[1:]:
        result = tracker.update(frame)
        x, y, w, h = result.box
        assert np.isfinite(result.box).all() and w >= 1 and h >= 1 and x + w <= 320 and y + h <= 240
        assert not result.found


@pytest.mark.parametrize("batch_targets", [8, 2])
def test_multitracker_on_the_shipped_box_head_follows_its_single_trackers(batch_targets):
    """Lost mode and re-detection included (the first target is hidden for frames 4-6, and a found threshold above
    what the generated background scores makes that a loss); on the shipped weights, whose maps have clear peaks (a
    random network's flat maps tie, and float noise breaks ties differently). The tolerance is MultiTracker's for a
    box head: batched convolutions round differently from single ones, and the regressed box carries that into the
    next frame's crop."""
    from synthetic import make_occluded_sequence

    from tracker import MultiTracker, multi

    # the first box-head weights: they score the background left behind low enough to lose the target there (the
    # default's matching of any region scores it about as high as the object)
    weights = Path(__file__).resolve().parents[1] / "weights" / "mobilenetv2_box_v1.safetensors"
    if not weights.is_file():
        pytest.skip("no shipped weights")
    frames, _ = make_occluded_sequence(n=10, absent=(4, 7), jump=(30.0, 10.0))
    boxes = [(96, 96, 40, 32), (20, 150, 40, 40), (200, 30, 50, 40)]
    # 0.4 for every target, and the decoder settings those weights were tuned with
    config = TrackerConfig(
        found_threshold=0.4, found_fraction=10.0, reference_frames=1, box_lr=0.3, window_influence=0.3
    )
    mt = MultiTracker(weights, backend="torch", config=config, batch_targets=batch_targets)
    ids = mt.add(frames[0], boxes)
    runs = [mt.update(f) for f in frames[1:]]
    assert not all(r[ids[0]].found for r in runs) and runs[-1][ids[0]].found  # lost, then found again
    for k, i in enumerate(ids[:2]):  # the object and one background patch; the third patch has no clear peak
        single = SiamFCTracker(weights, backend="torch", config=config)
        single.init(frames[0], boxes[k])
        expected = [single.update(f) for f in frames[1:]]
        assert [r.found for r in expected] == [r[i].found for r in runs]
        np.testing.assert_allclose([r[i].box for r in runs], [r.box for r in expected], atol=multi.BOX_HEAD_PIXELS)
        np.testing.assert_allclose([r[i].score for r in runs], [r.score for r in expected], atol=0.05)


def test_track_export_gives_a_box_head_one_crop_per_target(box_weights, tmp_path):
    pytest.importorskip("onnxruntime")
    from tracker.backends.graphs import read_graph_meta
    from tracker.export import main as export_main

    assert export_main(["--weights", str(box_weights), "--out", str(tmp_path / "graphs")]) == 0
    meta = read_graph_meta(tmp_path / "graphs")
    assert meta.spec.scales == 1 and meta.model_config.head == "box"
    tracker = SiamFCTracker(tmp_path / "graphs", backend="onnx")  # the exported folder tracks as it is
    tracker.init(np.zeros((240, 320, 3), np.uint8), (100, 100, 40, 30))
    assert np.isfinite(tracker.update(np.zeros((240, 320, 3), np.uint8)).box).all()


def test_a_redetection_is_centred_by_the_regressed_box_with_redetect_refine():
    frame = np.zeros((240, 320, 3), np.uint8)
    peaks = []
    for refine in (False, True):
        search = BoxSearch(TrackerConfig(redetect_refine=refine, lost_scan_after=None), BOX)
        st = search.start(frame, (100, 80, 40, 30))
        st.lost_frames = 1
        plan = search.plan(frame, st)
        n = len(plan.crops)
        assert n > 1  # a grid of crops around the held box
        cls = np.full((n, 16, 16), -5.0, np.float32)
        cls[n - 1, 4, 11] = 5.0  # the last crop's cell (row 4, column 11)
        ltrb = np.broadcast_to(np.array([30.0, 20.0, 10.0, 40.0], np.float32)[:, None, None], (n, 4, 16, 16))
        peaks.append(plan.decode({"cls": cls, "box": ltrb.copy(), "quality": np.full((n, 16, 16), 5.0, np.float32)}))
        np.testing.assert_allclose(peaks[-1].size, st.size)  # a re-detection keeps the held size
    to_crop = 255 / search._search_side(st.size)
    shift = np.array([(10 - 30) / 2, (40 - 20) / 2])  # the regressed box's centre from its cell, crop pixels
    np.testing.assert_allclose(peaks[1].center - peaks[0].center, shift / to_crop, atol=1e-6)
    with pytest.raises(ConfigError, match="redetect_refine"):
        TrackerConfig(redetect_refine=1)
