"""The appearance verifier: its embedding file, the memory, the trackers' verified found decision, and the tool that
makes and measures the embedding."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from synthetic import make_sequence, write_dataset

from tracker import MultiTracker, SiamFCTracker, TrackerConfig
from tracker.appearance import (
    Embedding,
    Memory,
    box_cells,
    box_pool,
    calibrated_verifier,
    colour_histograms,
    embedding_path,
    redetect_check,
    to_array,
)
from tracker.config import ConfigError
from tracker.errors import TrackerError, WeightsError
from train import appearance as tool


def _features(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4, 3, 3)).astype(np.float32)


def _remembering(config: TrackerConfig, box_head: bool = False):
    """A search of the fc (or box) head and a 20 x 16 target at (50, 40) of a 120 x 100 frame whose memory holds the
    first unit vector."""
    from tracker.config import ModelConfig
    from tracker.heads.box import BoxSearch
    from tracker.heads.fc import SiamFCSearch
    from tracker.search import TargetState

    model = ModelConfig(backbone="mobilenetv2", stride=16, head="box") if box_head else ModelConfig()
    search = (BoxSearch if box_head else SiamFCSearch)(config, model)
    size = np.array([20.0, 16.0])
    st = TargetState(np.array([50.0, 40.0]), size, size.copy(), None, (0.0,) * 3, (100, 120))
    search.remember(st, np.eye(3)[0])
    return search, st


def test_embedding_centres_projects_and_normalises():
    feats = _features(5)
    mean = feats.mean(0)
    v = Embedding(mean)(feats)
    assert v.shape == (5, 36)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-6)
    expected = (feats - mean).reshape(5, -1)
    np.testing.assert_allclose(v, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    projection = np.random.default_rng(1).normal(size=(8, 36)).astype(np.float32)
    assert Embedding(mean, projection)(feats).shape == (5, 8)
    with pytest.raises(WeightsError, match="expects features"):
        Embedding(mean)(_features(2)[:, :3])


def test_box_cells_are_the_cells_a_centred_box_covers():
    k = 4
    np.testing.assert_allclose(box_cells([[1.0, 1.0]], k)[0], np.ones((k, k)))
    middle = np.zeros((k, k))
    middle[1:3, 1:3] = 1
    np.testing.assert_allclose(box_cells([[0.5, 0.5]], k)[0], middle)
    # rows follow the height, columns the width; a box thinner than a cell counts as one cell wide
    thin = box_cells([[0.01, 0.5]], k)[0]
    np.testing.assert_allclose(thin.sum(), 2 * 1.0)  # two rows x (half of two columns)
    np.testing.assert_allclose(thin[1:3, 1:3], 0.5)
    assert thin[0].sum() == thin[3].sum() == 0


def test_a_box_embedding_sees_only_the_box():
    feats = _features(3)  # (3, 4, 3, 3)
    extents = np.array([[1 / 3, 1 / 3], [1.0, 1.0], [1 / 3, 1.0]])
    mean = np.full(4, 0.1, np.float32)
    emb = Embedding(mean, pool="box")
    v = emb(feats, extents)
    assert v.shape == (3, 4)
    expected = np.stack([feats[0, :, 1, 1], feats[1].mean((1, 2)), feats[2, :, :, 1].mean(1)]) - mean
    np.testing.assert_allclose(v, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    # what lies around the box (the context of the crop) does not change its vector
    around = feats.copy()
    around[0, :, 0, :] += 5.0
    np.testing.assert_allclose(emb(around, extents)[0], v[0], atol=1e-6)
    with pytest.raises(ValueError, match="extents"):
        emb(feats)
    with pytest.raises(WeightsError, match="feature channels"):
        emb(feats[:, :3], extents)
    with pytest.raises(WeightsError, match="mean of shape"):
        Embedding(feats[0], pool="box")
    with pytest.raises(WeightsError, match="pooling"):
        Embedding(mean, pool="ring")


def test_colour_histograms_see_the_colour_of_the_box_only():
    red, blue = np.zeros((2, 31, 31, 3), np.uint8), np.zeros((31, 31, 3), np.uint8)
    red[:, :, :, 2], blue[:, :, 0] = 200, 200
    red[1, :8], red[1, -8:] = 255, 255  # other context around the same box
    hist = colour_histograms(np.stack([red[0], red[1], blue]), [[0.4, 0.4]] * 3)
    assert hist.shape == (3, 128)
    np.testing.assert_allclose((hist**2).sum(1), 1.0, atol=1e-6)
    assert hist[0] @ hist[1] == pytest.approx(1.0)  # the box alike, the context not
    assert hist[0] @ hist[2] == pytest.approx(0.0)


def test_an_embedding_with_the_colour_averages_the_two_cues(box_weights, tmp_path):
    feats = _features(2)
    crops = np.zeros((2, 31, 31, 3), np.uint8)
    crops[0, :, :, 2], crops[1, :, :, 0] = 200, 200
    extents = np.full((2, 2), 0.5)
    emb = Embedding(feats.mean(0), colour_mean=np.zeros(128, np.float32))
    v = emb(feats, extents, crops)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-6)
    plain, colour = Embedding(feats.mean(0))(feats), colour_histograms(crops, extents)
    assert v[0] @ v[1] == pytest.approx((plain[0] @ plain[1] + colour[0] @ colour[1]) / 2, abs=1e-6)
    np.testing.assert_allclose(emb(feats, histograms=colour), v, atol=1e-6)
    with pytest.raises(ValueError, match="crops"):
        emb(feats, extents)
    with pytest.raises(WeightsError, match="colour mean"):
        Embedding(feats.mean(0), colour_mean=np.zeros(5, np.float32))
    path = tmp_path / "colour_appearance.safetensors"
    emb.save(path, box_weights)
    np.testing.assert_array_equal(Embedding.load(path, box_weights).colour_mean, emb.colour_mean)


def test_to_array_takes_torch_tensors_and_arrays():
    x = _features(2)
    np.testing.assert_array_equal(to_array(torch.from_numpy(x)), x)
    assert to_array(x.astype(np.float64)).dtype == np.float32


def test_embedding_file_round_trip_and_its_checks(box_weights, handset_weights, tmp_path):
    emb = Embedding(_features(1)[0], np.eye(36, dtype=np.float32)[:6])
    path = tmp_path / "box_appearance.safetensors"
    emb.save(path, box_weights, {"kind": "test"})
    back = Embedding.load(path, box_weights)
    np.testing.assert_array_equal(back.mean, emb.mean)
    np.testing.assert_array_equal(back.projection, emb.projection)
    assert back.info == {"kind": "test"}
    with pytest.raises(WeightsError, match="other weights"):
        Embedding.load(path, handset_weights)
    with pytest.raises(WeightsError, match="python -m train.appearance"):
        Embedding.load(tmp_path / "missing.safetensors", box_weights)
    with pytest.raises(WeightsError, match="not a siamtrack appearance embedding"):
        Embedding.load(box_weights, box_weights)  # a network's weights, not an embedding
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(WeightsError, match="cannot read"):
        Embedding.load(tmp_path / "junk.safetensors", box_weights)
    assert embedding_path(box_weights).name == "box_appearance.safetensors"
    Embedding(np.ones(4, np.float32), pool="box").save(path, box_weights)
    assert Embedding.load(path, box_weights).pool == "box"


def test_memory_keeps_the_first_vector_and_the_latest_ones():
    eye = np.eye(4)
    m = Memory(eye[0], size=2)
    for v in (eye[1], eye[2], eye[3]):
        m.add(v)
    assert m.similarity(eye[0]) == 1.0  # the first is never dropped
    assert m.similarity(eye[1]) == 0.0  # the oldest later one is
    assert m.similarity(eye[3]) == 1.0
    none = Memory(eye[0], size=0)
    none.add(eye[1])
    assert none.similarity(eye[1]) == 0.0


@pytest.mark.parametrize("value", [1.5, -2.0])
def test_verify_threshold_range(value):
    with pytest.raises(ConfigError, match="verify_threshold"):
        TrackerConfig(verify_threshold=value)
    with pytest.raises(ConfigError, match="verify_memory"):
        TrackerConfig(verify_memory=-1)


def test_the_verifier_measures_over_the_first_frames_and_remembers_the_last_of_them():
    from tracker.config import ModelConfig
    from tracker.heads.fc import SiamFCSearch
    from tracker.search import Peak, TargetState

    eye = np.eye(3)
    search = SiamFCSearch(TrackerConfig(verify_threshold=0.5, reference_frames=3, found_psr=2.0), ModelConfig())
    st = TargetState(np.array([50.0, 40.0]), np.array([20.0, 16.0]), np.array([20.0, 16.0]), None, (0.0,) * 3,
                     (100, 120))  # fmt: skip
    search.remember(st, eye[0])
    peak = Peak(np.array([52.0, 41.0]), np.array([20.0, 16.0]), 0.8, 5.0)
    # the target looks unlike its first crop (similarity 0): no veto while its level is measured
    assert [search.conclude(peak, st, eye[1]).found for _ in range(3)] == [True, True, True]
    assert len(st.memory.recent) == 1  # the third frame's look, remembered
    assert search.conclude(peak, st, eye[1]).found  # the remembered look verifies
    assert not search.conclude(peak, st, eye[2]).found  # one like neither is vetoed


def test_a_redetection_needs_verify_redetect():
    from tracker.config import ModelConfig
    from tracker.heads.fc import SiamFCSearch
    from tracker.search import Peak, TargetState

    eye = np.eye(3)
    look = np.array([0.3, np.sqrt(1 - 0.09), 0.0])  # similarity 0.3 with the target's first vector
    answers = []
    for redetect in (None, 0.4):
        config = TrackerConfig(verify_threshold=0.2, verify_redetect=redetect, reference_frames=1, found_psr=2.0)
        search = SiamFCSearch(config, ModelConfig())
        st = TargetState(np.array([50.0, 40.0]), np.array([20.0, 16.0]), np.array([20.0, 16.0]), None, (0.0,) * 3,
                         (100, 120))  # fmt: skip
        search.remember(st, eye[0])
        peak = Peak(np.array([52.0, 41.0]), np.array([20.0, 16.0]), 0.8, 5.0)
        search.conclude(peak, st, eye[0])  # the measuring frame (reference_frames): it looks like the target
        tracking = search.conclude(peak, st, look).found  # 0.3 >= 0.2: kept
        st.lost_frames = 1
        answers.append((tracking, search.conclude(peak, st, look).found))  # a re-detection at 0.3
    assert answers == [(True, True), (True, False)]
    with pytest.raises(ConfigError, match="verify_redetect"):
        TrackerConfig(verify_redetect=1.2)


def _verified_copy(weights, folder, pool: str):
    """``weights`` copied into ``folder`` with an appearance embedding of pooling ``pool`` beside them (centred on
    the mean of the first frame's crops of several synthetic scenes)."""
    path = folder / "handset.safetensors"
    path.write_bytes(weights.read_bytes())
    tracker = SiamFCTracker(path, backend="torch")
    feats, extents, crops = [], [], []
    for seed in range(10, 16):
        frames, boxes = make_sequence(n=1, seed=seed)
        tracker.init(frames[0], boxes[0])
        feats.append(to_array(tracker._backend.embed(tracker._state.exemplar[None])))
        extents.append(tracker._search.appearance_extent(tracker._state.size))
        crops.append(tracker._state.exemplar)
    feats = np.concatenate(feats)
    if pool == "box":
        Embedding(box_pool(feats, np.array(extents)).mean(0).astype(np.float32), pool="box").save(
            embedding_path(path), path
        )
    else:  # "flat", or "colour": flat features beside the box's colour
        colour = colour_histograms(np.stack(crops), np.array(extents)).mean(0) if pool == "colour" else None
        Embedding(feats.mean(0), colour_mean=colour).save(embedding_path(path), path)
    return path


@pytest.fixture(scope="module")
def verified_weights(handset_weights, tmp_path_factory):
    """The hand-set network's weights, copied, with a flat appearance embedding beside them."""
    return _verified_copy(handset_weights, tmp_path_factory.mktemp("verified"), "flat")


@pytest.fixture(scope="module")
def box_verified_weights(handset_weights, tmp_path_factory):
    """The same with a box-pooled appearance embedding."""
    return _verified_copy(handset_weights, tmp_path_factory.mktemp("box_verified"), "box")


@pytest.fixture(scope="module")
def colour_verified_weights(handset_weights, tmp_path_factory):
    """The same with a flat appearance embedding and the box's colour."""
    return _verified_copy(handset_weights, tmp_path_factory.mktemp("colour_verified"), "colour")


def _swapped_stream():
    """15 frames of one object, then 10 of another object over another background (the target gone)."""
    frames, boxes = make_sequence(n=25, seed=0)
    other, _ = make_sequence(n=25, seed=7)
    return frames[:15] + other[15:], boxes


def _separating_threshold(weights, frames, boxes) -> float:
    """The similarity halfway between the target's frames and the other object's on the swapped stream."""
    probe = SiamFCTracker(weights, backend="torch", config=TrackerConfig(verify_threshold=-1.0))
    probe.init(frames[0], boxes[0])
    sims = [probe.update(f).similarity for f in frames[1:]]
    return (min(sims[:14]) + max(sims[14:])) / 2


def test_verifier_off_needs_no_embedding_file(handset_weights):
    frames, boxes = make_sequence(n=3)
    tracker = SiamFCTracker(handset_weights, backend="torch")  # no *_appearance file beside them
    tracker.init(frames[0], boxes[0])
    assert tracker.update(frames[1]).similarity is None
    with pytest.raises(WeightsError, match="no appearance embedding"):
        SiamFCTracker(handset_weights, backend="torch", config=TrackerConfig(verify_threshold=0.5))


@pytest.mark.slow
def test_a_verifier_that_never_vetoes_keeps_the_trackers_answers(verified_weights):
    frames, boxes = _swapped_stream()
    plain = SiamFCTracker(verified_weights, backend="torch")
    measuring = SiamFCTracker(verified_weights, backend="torch", config=TrackerConfig(verify_threshold=-1.0))
    for t in (plain, measuring):
        t.init(frames[0], boxes[0])
    sims = []
    for frame in frames[1:]:
        a, b = plain.update(frame), measuring.update(frame)
        assert a.found == b.found
        np.testing.assert_allclose(a.box, b.box, atol=1e-6)
        assert -1.0 <= b.similarity <= 1.0
        assert b.score == pytest.approx(a.score * max(b.similarity, 0.0), abs=1e-9)
        sims.append(b.similarity)
    # the target's own frames look like it, the other object's do not
    assert min(sims[:14]) > max(sims[14:])


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["flat", "box", "colour"])
def test_the_verifier_reports_the_target_lost_when_the_box_shows_something_else(
    verified_weights, box_verified_weights, colour_verified_weights, pool
):
    verified_weights = {"flat": verified_weights, "box": box_verified_weights, "colour": colour_verified_weights}[pool]
    frames, boxes = _swapped_stream()
    threshold = _separating_threshold(verified_weights, frames, boxes)
    tracker = SiamFCTracker(verified_weights, backend="torch", config=TrackerConfig(verify_threshold=threshold))
    tracker.init(frames[0], boxes[0])
    found = [tracker.update(f).found for f in frames[1:]]
    assert all(found[:14]) and not any(found[14:])


@pytest.mark.slow
def test_verify_every_skips_tracked_frames_and_carries_the_last_similarity(verified_weights):
    frames, boxes = _swapped_stream()
    every = SiamFCTracker(verified_weights, backend="torch", config=TrackerConfig(verify_threshold=-1.0))
    sparse = SiamFCTracker(
        verified_weights, backend="torch", config=TrackerConfig(verify_threshold=-1.0, verify_every=3)
    )
    for t in (every, sparse):
        t.init(frames[0], boxes[0])
    measured, last = [], None
    for n, frame in enumerate(frames[1:], start=1):
        a, b = every.update(frame), sparse.update(frame)
        np.testing.assert_allclose(a.box, b.box, atol=1e-6)  # a verifier that vetoes nothing changes no box
        if b.similarity is not None:
            measured.append(n)
            assert b.similarity == pytest.approx(a.similarity, abs=1e-6)
            last = b.similarity
        else:
            assert b.score == pytest.approx(a.score / max(a.similarity, 1e-12) * max(last, 0.0), rel=1e-6)
    # the first reference_frames (5), then every 3rd frame counted from the last one measured, and frame 10 and 20
    # (they add to the memory)
    assert measured == [1, 2, 3, 4, 5, 8, 10, 13, 16, 19, 20, 23]


@pytest.mark.slow
def test_verify_every_still_reports_the_swap(verified_weights):
    frames, boxes = _swapped_stream()
    threshold = _separating_threshold(verified_weights, frames, boxes)
    config = TrackerConfig(verify_threshold=threshold, verify_every=3)
    tracker = SiamFCTracker(verified_weights, backend="torch", config=config)
    tracker.init(frames[0], boxes[0])
    results = [tracker.update(f) for f in frames[1:]]
    found = [r.found for r in results]
    # the swap (frame 15) is seen at the next frame verified, within verify_every frames, and stays lost after
    assert all(found[:14]) and not any(found[16:])
    # the box held is the last one verified, not one the skipped frames followed after it
    last_verified = [r.box for r in results if r.found and r.similarity is not None][-1]
    for r in results[found.index(False) :]:
        np.testing.assert_allclose(r.box, last_verified, atol=1e-6)
    with pytest.raises(ConfigError, match="verify_every"):
        TrackerConfig(verify_every=0)


@pytest.mark.parametrize(("pool", "every"), [("flat", 1), pytest.param("flat", 4, marks=pytest.mark.slow), ("box", 1)])
def test_multitracker_verifies_each_target_as_its_single_tracker(verified_weights, box_verified_weights, pool, every):
    verified_weights = verified_weights if pool == "flat" else box_verified_weights
    frames, boxes = _swapped_stream()
    config = TrackerConfig(verify_threshold=-1.0, verify_every=every)
    single = SiamFCTracker(verified_weights, backend="torch", config=config)
    single.init(frames[0], boxes[0])
    multi = MultiTracker(verified_weights, backend="torch", config=config)
    (target,) = multi.add(frames[0], [boxes[0]])
    for frame in frames[1:12]:
        a, b = single.update(frame), multi.update(frame)[target]
        assert a.found == b.found
        assert b.score == pytest.approx(a.score, abs=1e-4)
        assert (a.similarity is None) == (b.similarity is None)  # the same frames verified
        if a.similarity is not None:
            assert b.similarity == pytest.approx(a.similarity, abs=1e-4)


def test_template_update_moves_the_kernel_on_remembered_frames_as_multitracker_does(verified_weights, handset_weights):
    frames, boxes = make_sequence(n=25, seed=0)
    config = TrackerConfig(verify_threshold=-1.0, template_rate=0.5)
    single = SiamFCTracker(verified_weights, backend="torch", config=config)
    single.init(frames[0], boxes[0])
    first = to_array(single._kernels[1]).copy()
    multi = MultiTracker(verified_weights, backend="torch", config=config)
    (target,) = multi.add(frames[0], [boxes[0]])
    moved = []
    for frame in frames[1:]:
        a, b = single.update(frame), multi.update(frame)[target]
        assert a.found and b.found
        np.testing.assert_allclose(a.box, b.box, atol=1e-3)
        kernel = to_array(single._kernels[1])
        np.testing.assert_allclose(kernel, to_array(multi._kernels[target]), atol=1e-5)
        moved.append(not np.array_equal(kernel, first))
    # the frames remembered: the last of the first reference_frames (5), then every 10th
    assert moved.index(True) == 4 and moved.count(True) == len(moved) - 4
    plain = SiamFCTracker(verified_weights, backend="torch", config=TrackerConfig(verify_threshold=-1.0))
    plain.init(frames[0], boxes[0])
    for frame in frames[1:]:
        plain.update(frame)
    np.testing.assert_array_equal(to_array(plain._kernels[1]), first)  # no update: the first frame's kernel
    with pytest.raises(ConfigError, match="template_rate"):
        TrackerConfig(template_rate=1.5)
    with pytest.raises(ConfigError, match="template_rate"):  # no verifier whose crops it could use
        SiamFCTracker(handset_weights, backend="torch", config=TrackerConfig(template_rate=0.1))
    with pytest.raises(ConfigError, match="template_rate"):
        MultiTracker(verified_weights, backend="torch", config=TrackerConfig(template_rate=0.1, verify=False))


def test_track_export_carries_the_embedding(verified_weights, tmp_path):
    pytest.importorskip("onnx")
    from tracker.backends.exported import export_graphs

    out = tmp_path / "export"
    export_graphs(verified_weights, out)
    assert (
        Embedding.load(embedding_path(out), out).mean.shape
        == Embedding.load(embedding_path(verified_weights), verified_weights).mean.shape
    )


def test_auroc_and_the_verification_roc():
    assert tool.auroc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert tool.auroc(np.array([0.0]), np.array([1.0])) == 0.0
    assert tool.auroc(np.array([1.0]), np.array([1.0])) == 0.5
    # two videos whose frames sit around two directions, background between
    rng = np.random.default_rng(0)
    base = np.eye(8)[:2]
    vectors = np.concatenate([base[v] + 0.1 * rng.normal(size=(5, 8)) for v in (0, 1)] + [rng.normal(size=(4, 8))])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    video = np.array([0] * 5 + [1] * 5 + [0, 0, 1, 1])
    background = np.array([False] * 10 + [True] * 4)
    roc = tool.verification_roc(vectors, video, background, [0, 1])
    assert set(roc["per_video"]) == {0, 1}
    assert roc["pooled"] > 0.8


def test_embedding_losses_follow_their_definitions():
    # two objects; the distances of a batch of four, two crops each
    same = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    near = torch.tensor([[0, 0.1, 0.9, 0.9], [0.1, 0, 0.9, 0.9], [0.9, 0.9, 0, 0.1], [0.9, 0.9, 0.1, 0]])
    assert tool.batch_hard_triplet(near, same, torch.ones(4, dtype=torch.bool), 0.3).item() == 0.0
    swapped = 1 - near - torch.eye(4)  # positives far, negatives near
    assert tool.batch_hard_triplet(swapped, same, torch.ones(4, dtype=torch.bool), 0.3).item() > 0.3
    # contrastive: y = 1 (similar) pulls, y = 0 pushes until the margin
    assert tool.pair_contrastive(near, same, 0.6).item() == pytest.approx((4 * 0.01) / 12)
    assert tool.pair_contrastive(swapped, same, 0.6).item() > tool.pair_contrastive(near, same, 0.6).item()


@pytest.mark.slow
def test_the_tool_writes_an_embedding_the_tracker_loads(handset_weights, tmp_path, capsys):
    data = write_dataset(tmp_path / "data", {"a": 0, "b": 1, "c": 2}, n=12)
    weights = tmp_path / "handset.safetensors"
    weights.write_bytes(handset_weights.read_bytes())
    code = tool.main(["--weights", str(weights), "--data", str(data), "--holdout", "b", "c", "--every", "2",
                      "--steps", "20", "--cache", str(tmp_path / "cache")])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "| centred |" in out and "| triplet |" in out and "| contrastive |" in out
    assert Embedding.load(embedding_path(weights), weights).info["kind"] == "centred"
    assert tool.main(["--weights", str(weights), "--data", str(data), "--holdout", "nope"]) == 1
    assert "no sequence named nope" in capsys.readouterr().err


@pytest.mark.slow
def test_the_picture_tool_draws_a_spliced_sequence(verified_weights, tmp_path):
    pytest.importorskip("matplotlib")
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    data = write_dataset(tmp_path / "data", {"a": 0, "b": 1}, n=40)
    command = [sys.executable, str(root / "tools" / "plot_verifier.py"), str(data), "--weights", str(verified_weights)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = tmp_path / "v.png"
    args = ["--threshold", "0.0", "--splice-frames", "4", "--splices", "1", "--out", str(out)]
    done = subprocess.run([*command, "--sequence", "a", *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 1000 and "4 absent" in done.stdout
    missing = subprocess.run([*command, "--sequence", "zz", *args], env=env, capture_output=True, text=True)
    assert missing.returncode == 1 and "no sequence named zz" in missing.stderr


def test_calibrated_settings_come_from_the_embedding_file(handset_weights, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(handset_weights.read_bytes())
    mean = np.zeros((4, 2, 2), np.float32)
    Embedding(mean).save(embedding_path(weights), weights, {"kind": "centred"})
    with pytest.raises(WeightsError, match="no calibrated threshold"):
        calibrated_verifier(weights)
    Embedding(mean).save(embedding_path(weights), weights, {"threshold": 0.3})
    assert calibrated_verifier(weights) == {"verify_threshold": 0.3}
    info = {"threshold": 0.3, "settings": {"redetect_threshold": 0.05, "verify_redetect": 0.5}}
    Embedding(mean).save(embedding_path(weights), weights, info)
    settings = calibrated_verifier(weights)
    assert settings == {"verify_threshold": 0.3, "redetect_threshold": 0.05, "verify_redetect": 0.5}
    assert TrackerConfig(**settings).redetect_threshold == 0.05
    Embedding(mean).save(embedding_path(weights), weights, {"threshold": 0.3, "settings": {"no_such_field": 1}})
    with pytest.raises(WeightsError, match="not TrackerConfig's"):
        calibrated_verifier(weights)


@pytest.mark.parametrize("pair", ["nope=1", "redetect_threshold=high", "redetect_threshold=2"])
def test_settings_recorded_with_an_embedding_are_checked(pair):
    with pytest.raises(TrackerError):
        tool.settings([pair])
    assert tool.settings(["redetect_threshold=0.05", "reference_frames=3"]) == {
        "redetect_threshold": 0.05, "reference_frames": 3}  # fmt: skip
    assert isinstance(tool.settings(["reference_frames=3"])["reference_frames"], int)


def test_evaluate_verifies_with_the_calibrated_settings_under_the_config_given(verified_weights, tmp_path):
    import json

    from tracker.eval import evaluate

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(verified_weights.read_bytes())
    emb = Embedding.load(embedding_path(verified_weights), verified_weights)
    info = {"threshold": 0.25, "settings": {"redetect_threshold": 0.05, "found_threshold": 0.1},
            "redetect_check": {"verify_redetect": 0.35, "redetect_fraction": 0.2}}  # fmt: skip
    Embedding(emb.mean).save(embedding_path(weights), weights, info)
    data = write_dataset(tmp_path / "data", {"a": 0}, n=6)
    (tmp_path / "c.json").write_text(json.dumps({"found_threshold": 0.3, "verify_memory": 2}))
    config = ["--config", str(tmp_path / "c.json")]
    names = "siamtrack,siamtrack-verify,siamtrack-noverify,siamtrack-nolost"
    args = evaluate.parse_args([str(data), "--trackers", names, "--weights", str(weights), "--backend", "torch",
                                *config, "--out", str(tmp_path)])  # fmt: skip
    _, factories, _, _ = evaluate.prepare(args)
    default, verifying = factories["siamtrack"]().config, factories["siamtrack-verify"]().config
    assert default.verify_threshold is None and default.found_threshold == 0.3
    assert default.verify_redetect == 0.35 and default.redetect_fraction == 0.2  # the weights' re-detection check
    assert verifying.verify_threshold == 0.25 and verifying.redetect_threshold == 0.05
    assert verifying.found_threshold == 0.3 and verifying.verify_memory == 2  # --config wins where it speaks
    assert verifying.verify_redetect is None  # the calibrated verifier, not the re-detection check
    for name in ("siamtrack-noverify", "siamtrack-nolost"):
        plain = factories[name]()
        assert (
            plain._embedding is None and plain.config.verify_redetect is None and plain.config.redetect_fraction is None
        )


def test_verify_redetect_alone_judges_re_detections_only():
    from tracker.config import ModelConfig
    from tracker.heads.fc import SiamFCSearch
    from tracker.search import Peak, TargetState

    eye = np.eye(3)
    search = SiamFCSearch(TrackerConfig(verify_redetect=0.5, reference_frames=1, found_psr=2.0), ModelConfig())
    assert search.verifies
    st = TargetState(np.array([50.0, 40.0]), np.array([20.0, 16.0]), np.array([20.0, 16.0]), None, (0.0,) * 3,
                     (100, 120))  # fmt: skip
    search.remember(st, eye[0])
    peak = Peak(np.array([52.0, 41.0]), np.array([20.0, 16.0]), 0.8, 5.0)
    search.conclude(peak, st, eye[0])
    tracked = search.conclude(peak, st, eye[1])  # looks like nothing remembered, and is kept: no veto while tracked
    assert tracked.found and tracked.similarity == 0.0 and tracked.score == 0.0  # the score carries the similarity
    st.lost_frames = 1
    assert not search.conclude(peak, st, eye[1]).found  # a re-detection that does not look like the target
    assert search.conclude(peak, st, eye[0]).found  # one that does
    assert not SiamFCSearch(TrackerConfig(), ModelConfig()).verifies


def test_the_weights_re_detection_check_is_the_default(verified_weights, tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(verified_weights.read_bytes())
    emb = Embedding.load(embedding_path(verified_weights), verified_weights)
    check = {"verify_redetect": 0.4, "redetect_threshold": 0.1, "verify_every": 3}
    emb.save(embedding_path(weights), weights, {"redetect_check": check})
    assert redetect_check(weights) == check
    default = SiamFCTracker(weights, backend="torch").config
    assert (default.verify_redetect, default.redetect_threshold, default.verify_every) == (0.4, 0.1, 3)
    assert default.verify_threshold is None
    # given fields win; a config that verifies itself, or verify=False, takes nothing from the check
    assert (
        SiamFCTracker(weights, backend="torch", config=TrackerConfig(redetect_threshold=0.3)).config.redetect_threshold
        == 0.3
    )
    own = SiamFCTracker(weights, backend="torch", config=TrackerConfig(verify_threshold=0.2)).config
    assert (own.verify_redetect, own.redetect_threshold, own.verify_every) == (None, None, None)
    off = SiamFCTracker(weights, backend="torch", config=TrackerConfig(verify=False))
    assert off.config.verify_redetect is None and off._embedding is None
    # the default tracker verifies its re-detections and reports a similarity on the frames it measures
    frames, boxes = make_sequence(n=4)
    tracker = SiamFCTracker(weights, backend="torch")
    tracker.init(frames[0], boxes[0])
    assert tracker.update(frames[1]).similarity is not None
    # no embedding file: no check, and no error
    bare = tmp_path / "bare.safetensors"
    bare.write_bytes(verified_weights.read_bytes())
    assert redetect_check(bare) == {} and SiamFCTracker(bare, backend="torch").config.verify_redetect is None


@pytest.mark.parametrize(
    ("check", "match"),
    [({"redetect_threshold": 0.1}, "re-detection check"), ({"verify_redetect": 0.3, "found_threshold": 0.1},
     "re-detection check"), ({"verify_redetect": 3.0}, "verify_redetect")],
)  # fmt: skip
def test_a_bad_re_detection_check_is_one_weights_error(verified_weights, tmp_path, check, match):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(verified_weights.read_bytes())
    Embedding.load(embedding_path(verified_weights), verified_weights).save(
        embedding_path(weights), weights, {"redetect_check": check}
    )
    with pytest.raises(WeightsError, match=match):
        SiamFCTracker(weights, backend="torch")


def test_verify_false_turns_the_verifier_off():
    assert TrackerConfig(verify=False).verify is False
    for given in ({"verify_threshold": 0.2}, {"verify_redetect": 0.3}):
        with pytest.raises(ConfigError, match="verify=False"):
            TrackerConfig(verify=False, **given)
    with pytest.raises(ConfigError, match="verify must be"):
        TrackerConfig(verify=1)


def test_the_tool_records_a_re_detection_check():
    assert tool.redetect_check(["verify_redetect=0.3", "verify_every=4"]) == {"verify_redetect": 0.3, "verify_every": 4}
    assert tool.redetect_check([]) == {}
    for pairs in (["redetect_threshold=0.05"], ["verify_redetect=0.3", "found_threshold=0.1"]):
        with pytest.raises(TrackerError, match="--redetect-check"):
            tool.redetect_check(pairs)


@pytest.mark.parametrize("judged", [False, True])
def test_a_loss_holds_the_last_verified_box_only_where_tracked_frames_are_judged(judged):
    from tracker.config import ModelConfig
    from tracker.heads.fc import SiamFCSearch
    from tracker.search import Peak, TargetState

    eye = np.eye(3)
    given = {"verify_threshold": 0.5} if judged else {"verify_redetect": 0.5}
    search = SiamFCSearch(TrackerConfig(reference_frames=1, found_psr=2.0, **given), ModelConfig())
    st = TargetState(np.array([50.0, 40.0]), np.array([20.0, 16.0]), np.array([20.0, 16.0]), None, (0.0,) * 3,
                     (100, 120))  # fmt: skip
    search.remember(st, eye[0])
    size = np.array([20.0, 16.0])
    search.conclude(Peak(np.array([52.0, 41.0]), size, 0.8, 5.0), st, eye[0])  # verified here
    search.conclude(Peak(np.array([60.0, 45.0]), size, 0.8, 5.0), st)  # a frame the verifier skips
    lost = search.conclude(Peak(np.array([61.0, 45.0]), size, 0.8, 0.0), st)  # flat response: lost
    assert not lost.found
    np.testing.assert_allclose(st.center, [52.0, 41.0] if judged else [60.0, 45.0])


def test_separate_peaks_keeps_apart_and_takes_the_held_cell_second():
    from tracker.search import separate_peaks

    logits = np.zeros((9, 9))
    logits[1, 1], logits[1, 2], logits[7, 7], logits[4, 4], logits[0, 8] = 5.0, 4.9, 4.0, 1.0, 3.0
    logits[8, 0] = -np.inf  # outside the frame: no candidate
    assert separate_peaks(logits, (1, 1), (), 3, 1) == [(1, 1), (7, 7), (0, 8)]  # (1, 2) belongs to the first peak
    assert separate_peaks(logits, (1, 1), [(4, 4)], 3, 1) == [(1, 1), (4, 4), (7, 7)]
    assert separate_peaks(logits, (1, 1), [(1, 2)], 2, 1) == [(1, 1), (7, 7)]  # the held cell is the first peak's
    assert separate_peaks(logits, (1, 1), (), 1, 1) == [(1, 1)]
    assert len(separate_peaks(np.full((3, 3), -np.inf), (1, 1), (), 4, 0)) == 1  # nothing else left: the first alone


def test_a_lost_target_takes_the_candidate_that_looks_like_it():
    from tracker.search import Peak

    eye, size = np.eye(3), np.array([20.0, 16.0])
    search, st = _remembering(TrackerConfig(verify_redetect=0.5, reference_frames=1, found_psr=2.0))
    search.conclude(Peak(np.array([52.0, 41.0]), size, 0.8, 5.0), st, eye[0])
    look_alike, weak, target = (Peak(np.array(c), size, s, 5.0) for c, s in
                                (([10.0, 10.0], 0.9), ([30.0, 60.0], 0.0001), ([55.0, 40.0], 0.6)))  # fmt: skip
    best = Peak(look_alike.center, size, look_alike.score, look_alike.psr, (weak, target))
    assert search.candidates(best, st) == (best,)  # tracked: the best peak alone
    st.lost_frames = 1
    peaks = search.candidates(best, st)
    assert peaks == (best, weak, target)
    # the look-alike does not look like the target; the weak peak does but fails the score's bar; the target passes
    assert search.choose(peaks, [eye[1], eye[0], 0.8 * eye[0] + 0.6 * eye[1]], st) == 2
    assert search.choose(peaks, [eye[1], eye[0], eye[2]], st) == 0  # none passes both: the best, judged not found
    result = search.conclude(peaks[2], st, 0.8 * eye[0] + 0.6 * eye[1])
    assert result.found and st.lost_frames == 0
    np.testing.assert_allclose(st.center, [55.0, 40.0])


def test_re_detection_candidates_are_checked():
    with pytest.raises(ConfigError, match="redetect_candidates"):
        TrackerConfig(redetect_candidates=0)
    with pytest.raises(ConfigError, match="redetect_candidates"):
        TrackerConfig(redetect_candidates=True)


def test_a_lost_multitracker_target_judges_its_candidates_as_its_single_tracker(verified_weights, monkeypatch):
    from tracker.search import TargetSearch

    frames, boxes = _swapped_stream()
    threshold = _separating_threshold(verified_weights, frames, boxes)
    judged: list[int] = []
    choose = TargetSearch.choose
    monkeypatch.setattr(TargetSearch, "choose", lambda self, p, v, st: judged.append(len(p)) or choose(self, p, v, st))
    config = TrackerConfig(verify_threshold=threshold, redetect_candidates=3)
    single = SiamFCTracker(verified_weights, backend="torch", config=config)
    single.init(frames[0], boxes[0])
    multi = MultiTracker(verified_weights, backend="torch", config=config)
    (target,) = multi.add(frames[0], [boxes[0]])
    for frame in frames[1:]:
        a, b = single.update(frame), multi.update(frame)[target]
        assert a.found == b.found
        np.testing.assert_allclose(b.box, a.box, atol=1e-3)
        assert (a.similarity is None) == (b.similarity is None)
        if a.similarity is not None:
            assert b.similarity == pytest.approx(a.similarity, abs=1e-4)
    assert max(judged) > 1  # the lost frames judged several candidates
    assert not single.update(frames[-1]).found  # the other object is still refused


def test_memory_remembers_the_latest_refused_look_alikes():
    eye = np.eye(4)
    memory = Memory(eye[0], 2, distractors=2)
    assert memory.distractor_similarity(eye[1]) is None
    for v in eye[1:]:
        memory.refuse(v)
    assert len(memory.refused) == 2 and memory.distractor_similarity(eye[1]) == 0.0  # the oldest went
    assert memory.distractor_similarity(eye[3]) == 1.0
    off = Memory(eye[0], 2)
    off.refuse(eye[1])
    assert off.refused == []


def test_a_lost_target_short_of_the_bar_is_taken_where_it_is_nearer_the_target_than_the_look_alikes():
    from tracker.search import Peak

    def unit(*v):
        v = np.array(v, dtype=float)
        return v / np.linalg.norm(v)

    eye, size = np.eye(3), np.array([20.0, 16.0])
    answers = []
    for distractors in (0, 4):
        config = TrackerConfig(verify_redetect=0.5, reference_frames=1, found_psr=2.0, redetect_distractors=distractors,
                               distractor_margin=0.1)  # fmt: skip
        search, st = _remembering(config)
        peak = Peak(np.array([52.0, 41.0]), size, 0.8, 5.0)
        search.conclude(peak, st, eye[0])
        st.lost_frames = 1
        look_alike = unit(0.3, 1.0, 0.0)  # similarity 0.29: refused, and remembered where distractors are on
        returning = unit(0.45, 0.0, 1.0)  # 0.41: short of 0.5 by less than the margin, far from the look-alike
        answers.append((search.conclude(peak, st, look_alike).found, search.conclude(peak, st, returning).found))
        assert len(st.memory.refused) == (1 if distractors else 0)
    assert answers == [(False, False), (False, True)]
    # lost again: a box within the margin of the bar (0.45) but nearer the remembered look-alike is refused
    st.lost_frames = 1
    assert not search.conclude(peak, st, unit(0.5, 1.0, 0.0)).found


def test_remembered_look_alikes_are_checked():
    with pytest.raises(ConfigError, match="redetect_distractors"):
        TrackerConfig(redetect_distractors=-1)
    with pytest.raises(ConfigError, match="distractor_margin"):
        TrackerConfig(distractor_margin=1.5)


def test_an_ambiguous_tracked_frame_must_look_like_the_target():
    from tracker.search import Peak

    eye, size = np.eye(3), np.array([20.0, 16.0])
    look = np.array([0.3, np.sqrt(1 - 0.09), 0.0])  # similarity 0.3 with the target
    config = TrackerConfig(verify_redetect=0.5, verify_every=10, verify_ambiguous=0.5, reference_frames=1)
    search, st = _remembering(config, box_head=True)
    confident, dipped = (Peak(np.array([52.0, 41.0]), size, s, 5.0) for s in (0.8, 0.3))
    assert search.wants_appearance(st, confident)  # the measuring frame
    search.conclude(confident, st, eye[0])  # the target's level: 0.8
    assert not search.wants_appearance(st, confident)  # a confident tracked frame is not judged...
    assert search.conclude(confident, st).found
    assert search.wants_appearance(st, dipped)  # ...one below half the target's level is
    assert search.conclude(dipped, st, eye[0]).found  # it looks like the target
    assert not search.conclude(dipped, st, look).found  # 0.3 < the re-detection's 0.5
    assert st.lost_frames == 1
    own, st = _remembering(replace(config, verify_ambiguous_bar=0.2), box_head=True)  # the dips' own, lower bar
    own.conclude(confident, st, eye[0])
    assert own.conclude(dipped, st, look).found and not own.conclude(dipped, st, eye[1]).found
    off, st = _remembering(TrackerConfig(verify_redetect=0.5, reference_frames=1), box_head=True)
    off.conclude(confident, st, eye[0])
    assert off.conclude(dipped, st, look).found  # without it a tracked frame is never judged
    with pytest.raises(ConfigError, match="verify_ambiguous"):
        TrackerConfig(verify_ambiguous=2.0)
    with pytest.raises(ConfigError, match="verify_ambiguous_bar"):
        TrackerConfig(verify_ambiguous_bar=2.0)


@pytest.mark.parametrize("share", [None, 0.5])
def test_only_confident_frames_join_the_memory(share):
    from tracker.search import MEMORY_EVERY, Peak

    eye, size = np.eye(3), np.array([20.0, 16.0])
    config = TrackerConfig(verify_redetect=0.5, verify_every=1, reference_frames=1, memory_confidence=share)
    search, st = _remembering(config, box_head=True)
    confident, low = (Peak(np.array([52.0, 41.0]), size, s, 5.0) for s in (0.8, 0.3))
    search.conclude(confident, st, eye[0])  # the target's level: 0.8; its look remembered as the first frame's
    for _ in range(MEMORY_EVERY - 2):
        assert search.conclude(confident, st, eye[0]).found and len(st.memory.recent) == 1
    # the frame due for the memory is found at 0.3 of a level of 0.8
    assert search.conclude(low, st, eye[1]).found
    assert len(st.memory.recent) == (2 if share is None else 1)
    assert st.remembered is (share is None)  # the kernel moves with the memory (template_rate)
    for _ in range(MEMORY_EVERY):
        search.conclude(confident, st, eye[2])
    assert len(st.memory.recent) == (3 if share is None else 2)  # a confident frame due joins it


def test_memory_confidence_is_a_share():
    with pytest.raises(ConfigError, match="memory_confidence"):
        TrackerConfig(memory_confidence=1.5)


def test_a_far_redetection_needs_verify_redetect_far():
    from tracker.search import Peak

    eye, size = np.eye(3), np.array([20.0, 16.0])
    look = np.array([0.4, np.sqrt(1 - 0.16), 0.0])  # similarity 0.4 with the target
    config = TrackerConfig(verify_redetect=0.3, verify_redetect_far=0.5, reference_frames=1)
    search, st = _remembering(config, box_head=True)
    search.conclude(Peak(np.array([50.0, 40.0]), size, 0.8, 5.0), st, eye[0])  # the measuring frame
    reach = search._reach(st)
    near, far = (Peak(np.array([50.0 + d, 40.0]), size, 0.8, 5.0) for d in (reach / 2, reach + 1))
    st.lost_frames = 3
    assert not search.conclude(far, st, look).found  # a jump elsewhere at 0.4 < 0.5
    assert st.lost_frames == 4
    assert search.conclude(near, st, look).found  # the target back where it left, at 0.4 >= 0.3
    off, st = _remembering(replace(config, verify_redetect_far=None), box_head=True)
    off.conclude(Peak(np.array([50.0, 40.0]), size, 0.8, 5.0), st, eye[0])
    st.lost_frames = 3
    assert off.conclude(far, st, look).found  # without it, one bar wherever it lies
    with pytest.raises(ConfigError, match="verify_redetect_far"):
        TrackerConfig(verify_redetect_far=1.5)
    with pytest.raises(ConfigError, match="verify_redetect_far"):
        TrackerConfig(verify=False, verify_redetect_far=0.5)
