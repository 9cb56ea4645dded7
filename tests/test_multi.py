"""MultiTracker: each target as a single SiamFCTracker would follow it, with the network batched across targets."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_occluded_sequence

from tracker import MultiTracker, SiamFCTracker, TrackerConfig, multi
from tracker.errors import InputError, TrackerError, UnknownTargetError

BOX_TOLERANCE = 1e-3  # pixels: MultiTracker's docstring promises this, found flags identical
SCORE_TOLERANCE = 1e-4

# the occluded target (lost for frames 8-13, re-detected 40 px away), plus two background patches
BOXES = [(96, 96, 40, 32), (20, 150, 40, 40), (200, 30, 50, 40)]
# thresholds at which the hand-set features lose target 0 while it is out of view (not the trained weights' defaults)
LOSES = TrackerConfig(found_threshold=0.0, found_psr=2.5, redetect_threshold=0.0)


@pytest.fixture(scope="module")
def scene():
    frames, _ = make_occluded_sequence(n=18, absent=(8, 14), jump=(30.0, 10.0))
    return frames


def single_results(weights, frames, box, start=0):
    t = SiamFCTracker(weights, backend="torch", config=LOSES)
    t.init(frames[start], box)
    return [t.update(f) for f in frames[start + 1 :]]


def assert_same(single, multi):
    assert [r.found for r in single] == [r.found for r in multi]
    np.testing.assert_allclose([r.box for r in multi], [r.box for r in single], atol=BOX_TOLERANCE, rtol=0)
    np.testing.assert_allclose([r.score for r in multi], [r.score for r in single], atol=SCORE_TOLERANCE, rtol=0)


# all in one network call; two calls, a lost target's alone (both slow, about 20 s each: CI runs them; the default
# run keeps MultiTracker's other tests)
@pytest.mark.parametrize(
    "batch_targets", [pytest.param(8, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)
def test_each_target_follows_its_single_tracker(handset_weights, scene, batch_targets):
    """Lost mode and re-detection included: target 0 is lost for frames 8-13 and found again."""
    mt = MultiTracker(handset_weights, backend="torch", batch_targets=batch_targets, config=LOSES)
    ids = mt.add(scene[0], BOXES)
    assert ids == [0, 1, 2] and mt.ids == ids and len(mt) == 3
    runs = [mt.update(f) for f in scene[1:]]
    assert all(list(r) == ids for r in runs)
    for k, i in enumerate(ids):
        single = single_results(handset_weights, scene, BOXES[k])
        assert_same(single, [r[i] for r in runs])
    lost = [not r[0].found for r in runs]
    assert any(lost) and not lost[-1], "target 0 must be lost, then re-detected"


def test_targets_added_and_removed_midway(handset_weights, scene):
    mt = MultiTracker(handset_weights, backend="torch", config=LOSES)
    (first,) = mt.add(scene[0], [BOXES[0]])
    runs = [mt.update(f) for f in scene[1:5]]
    (late,) = mt.add(scene[4], np.array([BOXES[1]], dtype=np.float64))  # an (N, 4) array works too
    assert late == 1
    runs += [mt.update(f) for f in scene[5:10]]
    mt.remove(first)
    assert mt.ids == [late]
    runs += [mt.update(f) for f in scene[10:]]
    assert_same(single_results(handset_weights, scene[:10], BOXES[0]), [r[first] for r in runs[:9]])
    assert_same(single_results(handset_weights, scene, BOXES[1], start=4), [r[late] for r in runs[4:]])
    assert all(first not in r for r in runs[9:])
    (again,) = mt.add(scene[10], [BOXES[2]])
    assert again == 2  # ids are never reused


def test_zero_targets_is_an_empty_update(handset_weights, scene):
    mt = MultiTracker(handset_weights, backend="torch", config=LOSES)
    assert mt.update(scene[0]) == {} and mt.add(scene[0], []) == [] and len(mt) == 0
    with pytest.raises(InputError):
        mt.update(np.zeros((4, 4), np.float32))  # a bad frame is still an error
    ids = mt.add(scene[0], BOXES[:2])
    for i in ids:
        mt.remove(i)
    assert mt.update(np.zeros((60, 80, 3), np.uint8)) == {}  # no targets: a new stream may have any size
    assert mt.add(np.zeros((60, 80, 3), np.uint8), [(10, 10, 20, 20)]) == [2]


def test_unknown_ids_are_clear(handset_weights, scene):
    mt = MultiTracker(handset_weights, backend="torch", config=LOSES)
    ids = mt.add(scene[0], BOXES[:2])
    for bad in (7, -1, "0", None, [0]):
        with pytest.raises(UnknownTargetError, match="no target with id"):
            mt.remove(bad)
    mt.remove(ids[0])
    with pytest.raises(UnknownTargetError, match=r"ids held: 1\)"):
        mt.remove(ids[0])
    assert issubclass(UnknownTargetError, TrackerError) and issubclass(UnknownTargetError, LookupError)


def test_a_bad_box_loses_no_target(handset_weights, scene):
    mt = MultiTracker(handset_weights, backend="torch", config=LOSES)
    ids = mt.add(scene[0], BOXES[:2])
    before = mt.update(scene[1])
    for bad, match in [
        ([BOXES[2], (0, 0, 0, 5)], "box 1: box width and height must be > 0"),
        ([(5000, 5000, 10, 10)], "box 0: .* lies entirely outside"),
        ([BOXES[2], (1, 2, float("nan"), 4)], "box 1: .*NaN"),
        (BOXES[2], r"for one target pass \[box\]"),
        ("1,2,3,4", "list of"),
        (np.zeros((2, 3)), "shape"),
    ]:
        with pytest.raises(InputError, match=match):
            mt.add(scene[1], bad)
    with pytest.raises(InputError, match="frame size changed"):
        mt.add(scene[1][:100], [BOXES[2]])
    with pytest.raises(InputError, match="frame size changed"):
        mt.update(scene[2][:, :100])
    assert mt.ids == ids  # nothing added, nothing lost
    after = mt.update(scene[2])
    reference = single_results(handset_weights, scene[:3], BOXES[0])
    np.testing.assert_allclose(before[0].box, reference[0].box, atol=BOX_TOLERANCE)
    np.testing.assert_allclose(after[0].box, reference[1].box, atol=BOX_TOLERANCE)


def test_targets_are_grouped_into_calls_in_order():
    assert multi._calls({0: 1, 1: 1, 2: 1}, 8) == (((0, 1), (1, 1), (2, 1)),)
    assert multi._calls({0: 3, 1: 1, 2: 1, 5: 1}, 2) == (((0, 3),), ((1, 1), (2, 1)), ((5, 1),))
    assert multi._calls({}, 8) == ()


def test_bad_options_are_typed_errors(handset_weights):
    with pytest.raises(InputError):
        MultiTracker(handset_weights, backend="torch", config={"scale_num": 3})
    with pytest.raises(InputError, match="graph_targets"):
        MultiTracker(handset_weights, backend="torch", graph_targets=0)
    with pytest.raises(InputError, match="batch_targets"):
        MultiTracker(handset_weights, backend="torch", batch_targets=True)
    with pytest.raises(TrackerError):
        MultiTracker(handset_weights, backend="no-such-backend")


def test_onnx_backend_in_chunks(handset_weights, scene, tmp_path, monkeypatch):
    """Exported graphs have a fixed batch: 3 targets run through 2-target graphs in chunks, as the torch
    backend runs them in one batch."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SIAMTRACK_CACHE", str(tmp_path))
    config = TrackerConfig(precision="fp32")
    reference = MultiTracker(handset_weights, backend="torch", config=config)
    chunked = MultiTracker(handset_weights, backend="onnx", config=config, graph_targets=2)
    for mt in (reference, chunked):
        mt.add(scene[0], BOXES)
    for frame in scene[1:6]:
        want, got = reference.update(frame), chunked.update(frame)
        for i in want:
            assert got[i].found == want[i].found
            np.testing.assert_allclose(got[i].box, want[i].box, atol=0.5)


@pytest.mark.slow
def test_kernels_of_an_unknown_kind_are_embedded_again(handset_weights, scene, monkeypatch):
    """A backend whose kernel handles cannot be joined still gets every layout, embedded as a whole."""
    runs = []
    for join in (True, False):
        if not join:
            monkeypatch.setattr(multi, "joined_kernels", lambda parts: None)
        mt = MultiTracker(handset_weights, backend="torch", config=LOSES)
        mt.add(scene[0], BOXES)
        runs.append([mt.update(frame) for frame in scene[1:12]])  # target 0 is lost from frame 8: a new layout
    for i in range(len(BOXES)):
        assert_same([r[i] for r in runs[0]], [r[i] for r in runs[1]])
