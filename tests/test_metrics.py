"""OPE metrics against hand-computed cases, and run_sequence / overall on a scripted tracker."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tracker.datasets import Sequence
from tracker.eval.metrics import (
    IOU_THRESHOLDS,
    centre_errors,
    curves,
    failure,
    ious,
    pooled_presence,
    presence,
    success_auc,
    summarise,
)
from tracker.eval.run import overall, run_sequence
from tracker.tracker import TrackResult

GT = np.array([[10.0, 20.0, 100.0, 50.0]] * 4)


def test_perfect_tracker_auc_is_20_of_21() -> None:
    # IoU = 1 is > t for t = 0 .. 0.95 but not for t = 1
    assert summarise(GT, GT)["auc"] == pytest.approx(20 / 21)
    assert summarise(GT, GT)["mean_iou"] == pytest.approx(1.0)


def test_auc_of_a_one_third_overlap() -> None:
    # (0,0,10,10) vs (5,0,10,10): intersection 50, union 150, IoU 1/3 > t for t = 0, 0.05, ..., 0.30
    iou = ious(np.array([[5.0, 0, 10, 10]]), np.array([[0.0, 0, 10, 10]]))
    assert iou[0] == pytest.approx(1 / 3)
    assert success_auc(iou) == pytest.approx(7 / 21)
    assert len(IOU_THRESHOLDS) == 21


def test_constant_offset_precision() -> None:
    # a (12, 16) shift is a 20 px centre error: inside "<= 20 px"; (12, 16.5) is just outside
    assert summarise(GT + [12, 16, 0, 0], GT)["precision"] == 1.0
    assert summarise(GT + [12, 16.5, 0, 0], GT)["precision"] == 0.0
    # half the frames 5 px off, half 50 px off
    pred = GT + np.array([[3, 4, 0, 0], [3, 4, 0, 0], [30, 40, 0, 0], [30, 40, 0, 0]])
    assert summarise(pred, GT)["precision"] == 0.5
    c = curves(pred, GT)["precision"]
    assert (c[4], c[5], c[49], c[50]) == (0.0, 0.5, 0.5, 1.0)


def test_normalised_precision() -> None:
    # gt 100 x 50: a (10, 5) shift is (0.1, 0.1) sizes = 0.141 <= 0.2; (20, 10) is 0.283 > 0.2
    pred = GT + np.array([[10, 5, 0, 0], [10, 5, 0, 0], [10, 5, 0, 0], [20, 10, 0, 0]])
    assert centre_errors(pred, GT, normalise=True) == pytest.approx([0.1 * 2**0.5] * 3 + [0.2 * 2**0.5])
    s = summarise(pred, GT)
    assert s["norm_precision"] == 0.75
    assert s["precision"] == 0.75  # absolute: 11.2 px x3 and 22.4 px
    assert curves(pred, GT)["norm_precision"][-1] == 1.0  # every error is within 0.5 sizes


def test_absent_frame_is_excluded_from_box_metrics() -> None:
    gt = GT.copy()
    gt[2] = np.nan
    pred = GT.copy()
    pred[2] = [500, 500, 5, 5]  # a wild box on the absent frame must not count
    s = summarise(pred, gt)
    assert s["frames"] == 3
    assert s["auc"] == pytest.approx(20 / 21)
    assert s["precision"] == 1.0 and s["mean_iou"] == pytest.approx(1.0)


def test_presence_rates() -> None:
    p = presence(np.array([True, False, False, True]), np.array([True, False, True, False]))
    assert p["absent_frames"] == 2 and p["absent_accuracy"] == 0.5
    assert p["present_frames"] == 2 and p["present_found"] == 0.5
    none_absent = presence(np.array([True, True]), np.array([True, True]))
    assert none_absent["absent_accuracy"] is None and none_absent["present_found"] == 1.0
    pooled = pooled_presence([p, none_absent])
    assert pooled["absent_accuracy"] == 0.5 and pooled["present_found"] == 3 / 4


@example(xy=[31.0, 1.00001, 31.0, 1.00001], wh=[1.00001, 1.00001])  # rounding once gave 1 + 6e-15
@given(st.lists(st.floats(0, 200), min_size=4, max_size=4), st.lists(st.floats(1, 100), min_size=2, max_size=2))
def test_iou_is_symmetric_and_bounded(xy: list[float], wh: list[float]) -> None:
    a = np.array([[xy[0], xy[1], wh[0], wh[1]]])
    b = np.array([[xy[2], xy[3], wh[1], wh[0]]])
    assert 0.0 <= ious(a, b)[0] <= 1.0
    assert ious(a, b)[0] == pytest.approx(ious(b, a)[0])
    assert ious(a, a)[0] == pytest.approx(1.0)


class Scripted:
    """Answers the ground truth, and says 'not found' exactly where the target is absent."""

    def __init__(self, boxes: np.ndarray) -> None:
        self.boxes, self.i = boxes, 0

    def init(self, frame: np.ndarray, box: np.ndarray) -> None:
        self.i = int(np.flatnonzero(np.isfinite(self.boxes).all(1))[0])

    def update(self, frame: np.ndarray) -> TrackResult:
        self.i += 1
        b = self.boxes[self.i]
        if not np.isfinite(b).all():
            return TrackResult(box=(0.0, 0.0, 1.0, 1.0), score=0.0, found=False)
        return TrackResult(box=tuple(b), score=1.0, found=True)


def test_run_sequence_starts_on_first_visible_frame_and_scores_presence() -> None:
    boxes = np.array([[np.nan] * 4, [5.0, 5, 20, 20], [6, 5, 20, 20], [np.nan] * 4, [8, 5, 20, 20]])
    seq = Sequence("s", [None] * 5, boxes)
    frames = [np.zeros((60, 60, 3), np.uint8)] * 5
    r = run_sequence(Scripted(boxes), seq, frames)
    assert r["start"] == 1 and np.isnan(r["boxes"][0]).all()
    assert r["frames"] == 3 and r["auc"] == pytest.approx(20 / 21)
    assert len(r["times"]) == 3  # update() on frames 2, 3 and 4
    assert r["absent_frames"] == 1 and r["absent_accuracy"] == 1.0 and r["present_found"] == 1.0
    both = overall({"a": r, "b": {**r, "auc": 0.0}})
    assert both["auc"] == pytest.approx(10 / 21)  # mean over sequences
    assert both["absent_frames"] == 2 and both["fps"] > 0


def test_failure_counts_low_auc_and_an_early_loss():
    gt = np.tile([10.0, 10.0, 20.0, 20.0], (50, 1))
    on, off = gt[0], np.array([100.0, 100.0, 20.0, 20.0])
    assert failure(gt.copy(), gt, 0.8) == {"failed": False, "lost_at": None}
    assert failure(gt.copy(), gt, 0.05)["failed"]  # AUC below 0.1
    early = gt.copy()
    early[3] = off  # off the target on frame 3 of 50: within the first 10%
    assert failure(early, gt, 0.8) == {"failed": True, "lost_at": 3}
    late = gt.copy()
    late[30] = off
    assert failure(late, gt, 0.8) == {"failed": False, "lost_at": 30}
    absent = gt.copy()
    absent[2] = np.nan  # the target out of view: a box anywhere is no loss
    hidden = early.copy()
    hidden[3], hidden[2] = on, off
    assert failure(hidden, absent, 0.8)["lost_at"] is None


def test_sequences_of_varying_image_size_are_tracked_on_one_canvas():
    from tracker.eval.run import on_one_canvas

    frames = [np.full((40, 60, 3), 10, np.uint8), np.full((50, 30, 3), 200, np.uint8)]
    boxes = np.array([[5.0, 6.0, 10.0, 8.0], [1.0, 2.0, 4.0, 4.0]])
    placed, moved = on_one_canvas(frames, boxes)
    assert [f.shape for f in placed] == [(50, 60, 3)] * 2
    np.testing.assert_allclose(moved, [[5.0, 11.0, 10.0, 8.0], [16.0, 2.0, 4.0, 4.0]])  # centred, boxes moved along
    assert placed[1][0, 0].tolist() == [200] * 3 and placed[1][:, 15:45].min() == 200  # padded with its own mean
    same = [np.zeros((40, 60, 3), np.uint8)] * 2
    assert on_one_canvas(same, boxes)[0] is same  # a video comes back as it is


def test_a_moving_canvas_carries_the_images_and_their_boxes_like_a_camera():
    from tracker.eval.run import canvas_path, on_one_canvas

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (40 + i % 3, 60, 3), dtype=np.uint8) for i in range(60)]
    boxes = np.tile([20.0, 15.0, 10.0, 8.0], (60, 1))
    still, still_boxes = on_one_canvas(frames, boxes)
    placed, moved = on_one_canvas(frames, boxes, motion=2.0, seed=3)
    assert {f.shape for f in placed} == {(42 + 2 * 21, 60 + 2 * 30, 3)}  # a canvas twice the images' size
    for f, box, image in zip(placed, moved, frames, strict=True):  # each image lies where its box says
        x, y = int(box[0] - 20), int(box[1] - 15)
        assert np.array_equal(f[y : y + image.shape[0], x : x + 60], image)
    steps = np.abs(np.diff(moved[:, :2], axis=0))
    assert steps.max() > 2 and (moved[:, 2:] == boxes[:, 2:]).all()  # the target moves; its size does not
    np.testing.assert_array_equal(moved[0, :2] - still_boxes[0, :2], [30, 21])  # the first image stays centred
    again = on_one_canvas(frames, boxes, motion=2.0, seed=3)[1]
    assert np.array_equal(again, moved) and not np.array_equal(on_one_canvas(frames, boxes, 2.0, seed=4)[1], moved)
    path = canvas_path(500, 5.0, np.array([7, 4]))
    assert (np.abs(path) <= [7, 4]).all() and (np.abs(path) == [7, 4]).any()  # it stays on the canvas
    assert not canvas_path(10, 0.0, np.array([7, 4])).any()
