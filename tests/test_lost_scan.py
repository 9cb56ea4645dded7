"""The whole-frame scan while lost: a target that comes back beyond the capped reach is found again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_occluded_sequence

from tracker import SiamFCTracker, TrackerConfig
from tracker.config import ConfigError
from tracker.eval.metrics import ious
from tracker.heads.fc import SiamFCSearch
from tracker.search import SCAN_BLOCK, TargetState

# as tests/test_robust.py: the hand-set features
HANDSET_FOUND = dict(found_threshold=0.5, found_psr=3.3, reference_frames=1)


def _run(weights: Path, scan_after: int | None) -> tuple[list, np.ndarray]:
    # 640x360 frames; the object leaves on frame 10 and comes back 330 px right and 150 px down on frame 40,
    # far beyond the capped reach of the local grid (about 115 px for this 40x32 object)
    frames, gt = make_occluded_sequence(60, size=(640, 360), seed=1, absent=(10, 40), jump=(330.0, 150.0))
    config = TrackerConfig(**HANDSET_FOUND, lost_scan_after=scan_after)
    t = SiamFCTracker(weights, backend="torch", device="cpu", config=config)
    t.init(frames[0], gt[0])
    return [None] + [t.update(f) for f in frames[1:]], gt


@pytest.mark.slow  # ~25 s on 2 cores: both runs
def test_a_target_back_beyond_the_reach_is_found_by_the_scan(handset_weights: Path) -> None:
    results, gt = _run(handset_weights, 4)
    assert not any(r.found for r in results[10:40])
    back = next(i for i in range(40, 60) if results[i].found)
    # one sweep of this frame is 6 blocks, every other lost frame: found within 12 frames of the return
    assert back <= 52
    assert ious(np.array([r.box for r in results[back:]]), gt[back:]).mean() > 0.5
    held, _ = _run(handset_weights, None)  # without the scan it is never found again
    assert all(ious(np.array([r.box]), gt[i : i + 1])[0] < 0.1 for i, r in enumerate(held[40:], 40))


def test_a_scan_sweep_covers_the_whole_frame() -> None:
    from tracker.config import ModelConfig

    search = SiamFCSearch(TrackerConfig(), ModelConfig())
    for width, height, size in ((640, 360, 40.0), (720, 405, 12.0), (100, 80, 60.0)):
        st = TargetState(np.array([50.0, 40.0]), np.array([size, size * 0.8]), None, None, (0.0,) * 3, (height, width))
        side = search._search_side(st.size)
        crop_to_frame = side / 255
        reach = 8 * 8 * crop_to_frame  # each tile's response reaches (17 - 1) / 2 cells of 8 crop pixels
        covered = np.zeros((height, width), bool)
        step, blocks = 0, set()
        while True:
            center, cols, rows = search._scan_block(st, crop_to_frame, step)
            assert cols <= SCAN_BLOCK and rows <= SCAN_BLOCK
            key = (round(center[0], 3), round(center[1], 3))
            if key in blocks:
                break
            blocks.add(key)
            span = np.array([cols, rows]) * 17 * 8 * crop_to_frame / 2  # the block's tiles abut
            x0, y0 = np.floor(center - np.maximum(span, reach)).astype(int)
            x1, y1 = np.ceil(center + np.maximum(span, reach)).astype(int)
            covered[max(0, y0) : y1 + 1, max(0, x0) : x1 + 1] = True
            step += 1
        assert covered.all(), (width, height, size)
        assert step == len(blocks)


def test_lost_scan_after_is_checked() -> None:
    with pytest.raises(ConfigError, match="lost_scan_after"):
        TrackerConfig(lost_scan_after=-1)


def test_score_is_relative_and_redetection_asks_for_more() -> None:
    from tracker.config import ModelConfig
    from tracker.search import Peak

    config = TrackerConfig(found_threshold=0.2, found_psr=2.0, redetect_threshold=0.6, reference_frames=1)
    search = SiamFCSearch(config, ModelConfig())
    st = TargetState(
        np.array([50.0, 40.0]), np.array([20.0, 16.0]), np.array([20.0, 16.0]), None, (0.0,) * 3, (100, 120)
    )
    center, size = np.array([52.0, 41.0]), np.array([20.0, 16.0])
    answers = []
    for score, psr in ((0.8, 5.0), (0.4, 5.0), (0.4, 1.5), (0.1, 5.0), (0.4, 5.0), (0.56, 5.0)):
        r = search.conclude(Peak(center, size, score, psr), st)
        answers.append((round(r.score, 6), r.found))
    # scores relative to the first tracked peak (0.8); too blunt (PSR 1.5) or too low (0.125) -> lost; while lost
    # 0.5 is not enough (redetect_threshold 0.6) and 0.7 is
    assert answers == [(1.0, True), (0.5, True), (0.5, False), (0.125, False), (0.5, False), (0.7, True)]
    with pytest.raises(ConfigError, match="redetect_threshold"):
        TrackerConfig(redetect_threshold=1.5)


def _replay(steps: list[tuple[np.ndarray, float]], **config: object) -> tuple[list, list, TargetState]:
    """Conclude peaks ``(centre, score)`` (sharp, of the held size) in turn for a target found at (50, 40); the box
    centres, the lost counts after each, and the state."""
    from tracker.config import ModelConfig
    from tracker.search import Peak

    config = TrackerConfig(found_threshold=0.5, found_psr=2.0, reference_frames=1, **config)
    search = SiamFCSearch(config, ModelConfig())
    size = np.array([20.0, 16.0])
    st = TargetState(np.array([50.0, 40.0]), size.copy(), size.copy(), None, (0.0,) * 3, (200, 300))
    boxes, lost = [], []
    for center, score in steps:
        r = search.conclude(Peak(center, size, score, 5.0), st)
        boxes.append(np.array(r.box.center))
        lost.append(st.lost_frames)
    return boxes, lost, st


@pytest.mark.parametrize("confirm", [0, 3])
def test_a_redetection_lost_again_before_it_is_confirmed_returns_to_the_held_box(confirm: int) -> None:
    here, there, further = np.array([50.0, 40.0]), np.array([200.0, 120.0]), np.array([260.0, 150.0])
    steps = [(here, 0.9), (here, 0.1), (here, 0.1), (there, 0.9), (there, 0.1), (further, 0.1)]
    boxes, lost, st = _replay(steps, redetect_confirm=confirm)
    # lost on frames 2 and 3, a look-alike far away taken on frame 4 and lost on frame 5
    assert np.allclose(boxes[3], there)
    if confirm:  # not confirmed: back to the box held before it, the search's reach as it was
        assert np.allclose(boxes[4], here) and lost[4] == 3 and st.held is None
    else:  # taken at once: the look-alike's box is held
        assert np.allclose(boxes[4], there) and lost[4] == 1


@pytest.mark.parametrize("keep", [0, 2])
def test_a_redetection_lost_again_soon_resumes_the_search_where_it_was(keep: int) -> None:
    here, there = np.array([50.0, 40.0]), np.array([200.0, 120.0])
    # found, lost 4 frames, a look-alike taken for one frame, lost again; later a re-detection kept 3 frames, lost
    steps = [(here, 0.9)] + [(here, 0.1)] * 4 + [(there, 0.9), (there, 0.1)]
    steps += [(there, 0.9), (there, 0.9), (there, 0.9), (there, 0.1)]
    boxes, lost, st = _replay(steps, redetect_keep_reach=keep)
    assert lost[:6] == [0, 1, 2, 3, 4, 0]
    assert np.allclose(boxes[6], there)  # the box stays where the re-detection took it either way
    # kept: the search goes on reaching as far as after 4 lost frames; off: it starts again from one crop
    assert lost[6] == (5 if keep else 1)
    # found 3 frames in a row after the re-detection (more than keep): a loss is a new one
    assert lost[7:] == [0, 0, 0, 1] and st.resume is None
    with pytest.raises(ConfigError, match="redetect_keep_reach"):
        TrackerConfig(redetect_keep_reach=-1)


def test_a_confirmed_redetection_is_kept() -> None:
    from tracker.config import ModelConfig
    from tracker.search import Peak

    config = TrackerConfig(found_threshold=0.5, found_psr=2.0, reference_frames=1, redetect_confirm=2)
    search = SiamFCSearch(config, ModelConfig())
    size = np.array([20.0, 16.0])
    st = TargetState(np.array([50.0, 40.0]), size.copy(), size.copy(), None, (0.0,) * 3, (200, 300))
    there = np.array([200.0, 120.0])
    for center, score in [(st.center, 0.9), (st.center, 0.1), (there, 0.9), (there, 0.9), (there, 0.9)]:
        search.conclude(Peak(center.copy(), size, score, 5.0), st)
    assert st.held is None  # found on the re-detection and the 2 frames after it: confirmed
    r = search.conclude(Peak(np.array([220.0, 130.0]), size, 0.1, 5.0), st)
    assert not r.found and np.allclose(r.box.center, there)  # a later loss holds the confirmed box
    with pytest.raises(ConfigError, match="redetect_confirm"):
        TrackerConfig(redetect_confirm=-1)


def test_a_redetection_being_confirmed_needs_the_redetection_bar() -> None:
    from tracker.config import ModelConfig
    from tracker.search import Peak

    # keeping track needs 0.2 of the first peak, a re-detection 0.6: a look-alike at 0.4 keeps a confirmed track,
    # not one still being confirmed
    config = TrackerConfig(found_threshold=0.2, found_psr=2.0, redetect_threshold=0.6, reference_frames=1)
    size = np.array([20.0, 16.0])
    held, there = np.array([50.0, 40.0]), np.array([200.0, 120.0])
    answers = {}
    for confirm in (0, 3):
        search = SiamFCSearch(dataclasses.replace(config, redetect_confirm=confirm), ModelConfig())
        st = TargetState(held.copy(), size.copy(), size.copy(), None, (0.0,) * 3, (200, 300))
        steps = [(held, 1.0), (held, 0.1), (there, 0.7), (there, 0.4)]
        answers[confirm] = [search.conclude(Peak(c.copy(), size, v, 5.0), st) for c, v in steps]
    assert [r.found for r in answers[0]] == [True, False, True, True]
    assert [r.found for r in answers[3]] == [True, False, True, False]
    assert np.allclose(answers[3][-1].box.center, held)


def test_a_redetection_where_the_target_left_counts_at_once() -> None:
    from tracker.config import ModelConfig
    from tracker.search import Peak

    config = TrackerConfig(found_threshold=0.5, found_psr=2.0, reference_frames=1, redetect_confirm=5)
    search = SiamFCSearch(config, ModelConfig())
    size = np.array([20.0, 16.0])
    st = TargetState(np.array([50.0, 40.0]), size.copy(), size.copy(), None, (0.0,) * 3, (200, 300))
    near = np.array([50.0, 40.0]) + 0.9 * search._reach(st)  # within the tracking search's reach
    for center, score in [(st.center, 0.9), (st.center, 0.1), (near, 0.9)]:
        search.conclude(Peak(center.copy(), size, score, 5.0), st)
    assert st.held is None and st.lost_frames == 0
    r = search.conclude(Peak(near + 30.0, size, 0.1, 5.0), st)  # a later loss holds the re-detected box
    assert not r.found and np.allclose(r.box.center, near)
