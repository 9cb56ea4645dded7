"""Robustness: typed errors with one clear message for bad input, weights and backends; output invariants on
adversarial frames and boxes; the lost-target behaviour; several trackers in parallel threads."""

from __future__ import annotations

import json
import threading
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from synthetic import make_occluded_sequence, make_sequence

import tracker
from tracker import BackendError, InputError, NotInitializedError, SiamFCTracker, TrackerConfig, WeightsError
from tracker.config import ConfigError, ModelConfig
from tracker.eval.metrics import ious
from tracker.model import SiamFC

PACKAGE = str(Path(tracker.__file__).parent)
# thresholds for the hand-set test backbone (its features match far less sharply than trained ones): on
# make_occluded_sequence seeds 0-5 its PSR is 3.8-5.4 on visible frames, 3.4-5.4 where the target comes back,
# and at most 2.8 on background, except one look-alike patch (3.9) in seed 1
HANDSET_FOUND = TrackerConfig(found_threshold=0.5, found_psr=3.3, reference_frames=1)


def make(weights: Path, config: TrackerConfig | None = None) -> SiamFCTracker:
    return SiamFCTracker(weights, backend="torch", device="cpu", config=config)


def raises_cleanly(error: type[Exception], call, *args, match: str | None = None) -> Exception:
    """``call(*args)`` raises ``error`` with a one-line message, from siamtrack's own code, with no chained
    traceback from inside torch, OpenCV or safetensors."""
    with pytest.raises(error, match=match) as info:
        call(*args)
    e = info.value
    assert "\n" not in str(e) and str(e)
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)
    assert traceback.extract_tb(e.__traceback__)[-1].filename.startswith(PACKAGE)
    return e


def assert_valid(result, width: int, height: int) -> None:
    x, y, w, h = result.box
    assert all(np.isfinite(v) for v in result.box), result
    assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= width and y + h <= height, result
    assert 0.0 <= result.score <= 1.0 and isinstance(result.found, bool)


@pytest.fixture(scope="module")
def seq():
    return make_sequence(6, seed=0)


# --- frames ---------------------------------------------------------------------------------------------------

BAD_FRAMES = {
    "float": np.zeros((40, 50, 3), np.float32),
    "uint16": np.zeros((40, 50, 3), np.uint16),
    "bool": np.zeros((40, 50, 3), bool),
    "list": [[[0, 0, 0]] * 50] * 40,
    "none": None,
    "1-D": np.zeros(40, np.uint8),
    "4-D": np.zeros((1, 40, 50, 3), np.uint8),
    "2 channels": np.zeros((40, 50, 2), np.uint8),
    "5 channels": np.zeros((40, 50, 5), np.uint8),
    "1 row": np.zeros((1, 50, 3), np.uint8),
    "empty": np.zeros((0, 0, 3), np.uint8),
}


@pytest.mark.parametrize("name", BAD_FRAMES)
def test_bad_frames_raise_input_error(handset_weights, seq, name):
    t = make(handset_weights)
    raises_cleanly(InputError, t.init, BAD_FRAMES[name], (10, 10, 20, 20), match="frame")
    t.init(seq[0][0], seq[1][0])
    raises_cleanly(InputError, t.update, BAD_FRAMES[name], match="frame")


def test_grey_bgra_and_strided_frames_are_accepted(handset_weights, seq):
    frames, gt = seq
    grey = [f.mean(2).astype(np.uint8) for f in frames]
    variants = {
        "bgr": frames,
        "grey": grey,
        "grey x1": [g[:, :, None] for g in grey],
        "bgra": [np.dstack([f, np.full(f.shape[:2], 7, np.uint8)]) for f in frames],
        "strided": [np.repeat(f, 2, axis=1)[:, ::2] for f in frames],
        "negative strides": [np.flip(np.ascontiguousarray(np.flip(f, 1)), 1) for f in frames],
        "fortran order": [np.asfortranarray(f) for f in frames],
    }
    out = {}
    for name, fs in variants.items():
        t = make(handset_weights)
        t.init(fs[0], gt[0])
        out[name] = [t.update(f).box for f in fs[1:]]
    assert out["bgra"] == out["bgr"] == out["strided"] == out["negative strides"] == out["fortran order"]
    assert out["grey"] == out["grey x1"]


def test_frame_size_change_is_an_error(handset_weights, seq):
    frames, gt = seq
    t = make(handset_weights)
    t.init(frames[0], gt[0])
    raises_cleanly(InputError, t.update, frames[1][:200], match="size changed")
    assert_valid(t.update(frames[1]), 320, 240)  # the failed call left the tracker as it was


def test_update_before_init(handset_weights, seq):
    raises_cleanly(NotInitializedError, make(handset_weights).update, seq[0][0], match="before init")


# --- boxes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "box",
    [
        (np.nan, 10, 20, 20), (10, np.inf, 20, 20), (10, 10, -np.inf, 20),  # not finite
        (10, 10, 0, 20), (10, 10, 20, -5),  # non-positive size
        (400, 10, 20, 20), (-30, 10, 20, 20), (10, 240, 20, 20), (10, -20, 20, 20),  # entirely outside
        (10, 10, 20), (1, 2, 3, 4, 5), "abcd", None, (10**400, 0, 5, 5), ([1, 2], 3, 4, 5),  # not 4 numbers
    ],
)  # fmt: skip
def test_bad_boxes_raise_input_error(handset_weights, seq, box):
    raises_cleanly(InputError, make(handset_weights).init, seq[0][0], box)


@pytest.mark.parametrize(
    "box", [(-15, -10, 40, 30), (300, 220, 60, 60), (-1e12, -1e12, 3e12, 3e12), (0, 0, 1e-9, 1e-9), (319, 239, 1, 1)]
)
def test_boxes_partly_outside_or_tiny_are_clipped(handset_weights, seq, box):
    frames, _ = seq
    t = make(handset_weights)
    t.init(frames[0], box)
    for f in frames[1:]:
        assert_valid(t.update(f), 320, 240)


def test_failed_init_keeps_the_previous_target(handset_weights, seq):
    frames, gt = seq
    a, b = make(handset_weights), make(handset_weights)
    a.init(frames[0], gt[0])
    b.init(frames[0], gt[0])
    raises_cleanly(InputError, b.init, frames[0], (0, 0, 0, 0))
    assert a.update(frames[1]) == b.update(frames[1])


# --- adversarial content --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,box",
    [
        ((2, 2), (0, 0, 2, 2)), ((2, 2), (1, 1, 1, 1)), ((3, 97), (90, 0, 50, 3)), ((97, 3), (0, -5, 3, 20)),
        ((60, 80), (0, 0, 80, 60)), ((60, 80), (79, 59, 1, 1)), ((60, 80), (-1e9, 10, 2e9, 5)),
    ],
)  # fmt: skip
@pytest.mark.parametrize("content", ["black", "white", "noise", "stripes"])
def test_results_stay_valid_on_degenerate_frames(handset_weights, shape, box, content):
    rng = np.random.default_rng(0)
    h, w = shape
    frames = {
        "black": lambda: np.zeros((h, w, 3), np.uint8),
        "white": lambda: np.full((h, w, 3), 255, np.uint8),
        "noise": lambda: rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        "stripes": lambda: np.broadcast_to((np.arange(w) % 2 * 255).astype(np.uint8)[None, :, None], (h, w, 3)),
    }[content]
    t = make(handset_weights, TrackerConfig(response_up=4))
    t.init(frames(), box)
    for _ in range(4):  # long enough to enter the lost search on flat frames
        assert_valid(t.update(frames()), w, h)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_responses_read_as_a_lost_target(handset_weights, seq, bad):
    """Whatever the backend returns, results stay finite: NaN/inf responses look like a lost target."""
    frames, gt = seq
    t = make(handset_weights)
    t.init(frames[0], gt[0])
    score = t._backend.score
    t._backend.score = lambda kernel, crops: {k: np.full_like(v, bad) for k, v in score(kernel, crops).items()}
    for f in frames[1:]:
        r = t.update(f)
        assert_valid(r, 320, 240)
        assert not r.found


# --- weights, backends, config --------------------------------------------------------------------------------


def weights_cases(tmp: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    model = SiamFC(ModelConfig(width=0.25))
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    nan = dict(tensors, **{"head.bias": torch.tensor([float("nan")])})
    files = {
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "last byte cut": data[:-1],
        "garbage": b"\x00\x01 not a safetensors file" * 10,
        "huge header": (10**15).to_bytes(8, "little") + data[8:],
    }
    for name, content in files.items():
        (tmp / name).write_bytes(content)
    meta = {"format_version": "1", "model_config": json.dumps(ModelConfig(width=0.5).to_dict())}
    save_file(tensors, tmp / "other architecture", metadata=meta)
    save_file(tensors, tmp / "no metadata")
    save_file(tensors, tmp / "bad config", metadata={"format_version": "1", "model_config": '{"width": "wide"}'})
    save_file(nan, tmp / "nan", metadata=dict(meta, model_config=json.dumps(ModelConfig(width=0.25).to_dict())))
    return {name: tmp / name for name in [*files, "other architecture", "no metadata", "bad config", "nan"]}


def test_bad_weights_raise_weights_error(tmp_path, alexnet_weights):
    cases = weights_cases(tmp_path, alexnet_weights)
    cases["missing"] = tmp_path / "missing.safetensors"
    for name, path in cases.items():
        e = raises_cleanly(WeightsError, SiamFCTracker, path, "torch", "cpu")
        assert str(path) in str(e), name


def test_bad_backends_raise_backend_error(handset_weights):
    raises_cleanly(BackendError, SiamFCTracker, handset_weights, "caffe", match="unknown backend")
    if not torch.cuda.is_available():
        raises_cleanly(BackendError, SiamFCTracker, handset_weights, "torch", "cuda", match="cuda")
    raises_cleanly(BackendError, SiamFCTracker, handset_weights, "torch", "tpu:0")
    raises_cleanly(InputError, SiamFCTracker, handset_weights, "torch", 0, match="device")
    raises_cleanly(InputError, SiamFCTracker, 42, match="weights")
    raises_cleanly(InputError, SiamFCTracker, handset_weights, "torch", "cpu", {"context": 0.5}, match="config")


@pytest.mark.parametrize(
    "bad", [{"scale_step": float("nan")}, {"found_psr": -1.0}, {"lost_search_growth": 0.9}, {"threads": 0}]
)
def test_bad_config_raises_config_error(bad):
    with pytest.raises(ConfigError):
        TrackerConfig(**bad)


# --- lost target ----------------------------------------------------------------------------------------------


@pytest.mark.slow  # ~13 s a seed
@pytest.mark.parametrize("seed", [0, 3])
def test_lost_target_holds_then_is_redetected_elsewhere(handset_weights, seed):
    frames, gt = make_occluded_sequence(60, seed=seed, absent=(20, 35), jump=(60.0, 25.0))
    t = make(handset_weights, HANDSET_FOUND)
    t.init(frames[0], gt[0])
    results = [None] + [t.update(f) for f in frames[1:]]
    assert all(r.found for r in results[1:20])
    last_confident = results[19].box
    for r in results[20:35]:  # absent: not found, and the box holds (position and size) instead of drifting
        assert not r.found and r.box == last_confident
    back = next(i for i in range(35, 60) if results[i].found)
    assert back <= 36  # re-detected within a frame of its return, 60+ pixels from where it left
    boxes = np.array([r.box for r in results[back:]])
    assert ious(boxes, gt[back:]).mean() > 0.6


def test_lost_search_widens_step_by_step_up_to_the_cap(handset_weights):
    frames, gt = make_occluded_sequence(30, seed=0, absent=(3, 30))
    t = make(handset_weights, HANDSET_FOUND)
    t.init(frames[0], gt[0])
    batches = []
    score = t._backend.score
    t._backend.score = lambda kernel, crops: batches.append(len(crops)) or score(kernel, crops)
    for f in frames[1:8]:
        t.update(f)
    # 3 scales while tracking; lost from frame 3: reach x1.5 -> 2x2 crops (padded to 6), x2.25 -> 3x3, capped
    assert batches == [3, 3, 3, 6, 9, 9, 9]


# --- concurrency ----------------------------------------------------------------------------------------------


@pytest.mark.slow  # ~50 s on 2 cores
def test_parallel_threads_match_sequential_runs(handset_weights):
    streams = [make_occluded_sequence(24, seed=s, absent=(10, 16)) for s in range(3)]

    def run(frames, gt, out: list) -> None:
        t = make(handset_weights, HANDSET_FOUND)
        t.init(frames[0], gt[0])
        out.extend(t.update(f) for f in frames[1:])

    sequential = []
    for frames, gt in streams:
        sequential.append([])
        run(frames, gt, sequential[-1])
    parallel = [[] for _ in streams]
    threads = [threading.Thread(target=run, args=(*s, out)) for s, out in zip(streams, parallel, strict=True)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert parallel == sequential
