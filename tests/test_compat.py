"""The drop-in adapters: OpenCV-style CvTracker and the GOT-10k toolkit's Got10kTracker."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from synthetic import make_occluded_sequence, make_sequence

from tracker import SiamFCTracker, TrackerConfig
from tracker.compat import LOST_RECT, CvTracker, round_rect
from tracker.errors import InputError, NotInitializedError

# thresholds at which the hand-set features lose the occluded target (not the trained weights' defaults)
LOSES = TrackerConfig(found_threshold=0.0, found_psr=2.5, redetect_threshold=0.0)


def reference_results(weights, frames, box, config=None):
    """SiamFCTracker's results on ``frames`` from ``box``: the answers the adapters must reproduce."""
    t = SiamFCTracker(weights, backend="torch", config=config)
    t.init(frames[0], box)
    return [t.update(f) for f in frames[1:]]


def test_round_rect_keeps_corners_within_half_a_pixel():
    assert round_rect((10.4, 20.5, 30.2, 40.49)) == (10, 21, 31, 40)
    assert round_rect((0.2, 0.2, 0.4, 0.4)) == (0, 0, 1, 1)  # never a zero size
    rng = np.random.default_rng(0)
    for box in rng.uniform(0, 300, (200, 4)) + [0, 0, 1, 1]:
        x, y, w, h = round_rect(box)
        assert all(isinstance(v, int) for v in (x, y, w, h))
        assert abs(x - box[0]) <= 0.5 and abs(x + w - box[0] - box[2]) <= 0.5
        assert abs(y - box[1]) <= 0.5 and abs(y + h - box[1] - box[3]) <= 0.5


def test_cv_tracker_gives_siamfc_boxes_rounded(handset_weights):
    frames, boxes = make_sequence(n=12, seed=1)
    box = tuple(boxes[0] + [0.3, -0.2, 0.4, 0.0])  # floats, as cv2's legacy trackers take them
    reference = reference_results(handset_weights, frames, box)
    t = CvTracker.create(handset_weights, backend="torch")
    assert t.init(frames[0], box) is None
    assert t.getTrackingScore() == 1.0
    for frame, ref in zip(frames[1:], reference, strict=True):
        ok, rect = t.update(frame)
        assert ok is ref.found and ok
        assert rect == round_rect(ref.box) and all(type(v) is int for v in rect)
        assert t.getTrackingScore() == pytest.approx(ref.score)
        assert t.result == ref


@pytest.mark.slow
def test_cv_tracker_lost_rect_is_opencvs(handset_weights):
    frames, _ = make_occluded_sequence(n=18, absent=(8, 14), jump=(30.0, 10.0))
    reference = reference_results(handset_weights, frames, (96, 96, 40, 32), LOSES)
    assert not all(r.found for r in reference) and reference[-1].found, "lost, then re-detected"
    t = CvTracker.create(handset_weights, backend="torch", config=LOSES)
    t.init(frames[0], (96, 96, 40, 32))
    for frame, ref in zip(frames[1:], reference, strict=True):
        ok, rect = t.update(frame)
        assert ok is ref.found
        assert rect == (round_rect(ref.box) if ok else LOST_RECT)
        assert t.result.box == ref.box  # the held box stays available while lost


def test_cv_tracker_keeps_typed_errors(handset_weights):
    t = CvTracker.create(handset_weights, backend="torch")
    frame = make_sequence(n=2)[0][0]
    with pytest.raises(NotInitializedError):
        t.update(frame)
    with pytest.raises(NotInitializedError):
        t.getTrackingScore()
    with pytest.raises(InputError):
        t.init(frame, (0, 0, 0, 10))
    with pytest.raises(InputError):
        t.init(frame.astype(np.float32), (10, 10, 20, 20))
    t.init(frame, (10, 10, 20, 20))
    with pytest.raises(InputError):
        t.update(frame[:100])


def test_cv_tracker_needs_no_got10k():
    """Without the toolkit, CvTracker imports and Got10kTracker fails with one line naming the extra."""
    code = (
        "import sys; sys.modules['got10k'] = None; sys.modules['got10k.trackers'] = None\n"
        "from tracker.compat import CvTracker\n"
        "try:\n"
        "    from tracker.compat import Got10kTracker\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.count("\n") == 1 and "pip install 'siamtrack[got10k]'" in out and "got10k" in out


# --- GOT-10k toolkit --------------------------------------------------------------------------------------------


def test_got10k_tracker_gives_siamfc_boxes_with_the_offset(handset_weights):
    pytest.importorskip("got10k")
    from PIL import Image

    from tracker.compat import Got10kTracker

    frames, boxes = make_sequence(n=10, seed=2)
    reference = reference_results(handset_weights, frames, boxes[0])
    t = Got10kTracker(handset_weights, backend="torch")
    assert t.name == "siamtrack" and t.is_deterministic
    t.init(Image.fromarray(frames[0][:, :, ::-1]), boxes[0] + [1, 1, 0, 0])  # OTB boxes count from 1
    for frame, ref in zip(frames[1:], reference, strict=True):
        box = t.update(Image.fromarray(frame[:, :, ::-1]))  # the toolkit's images are PIL RGB
        np.testing.assert_array_equal(box, np.add(ref.box, [1, 1, 0, 0]))
    zero = Got10kTracker(handset_weights, backend="torch", one_based=False)
    zero.init(Image.fromarray(frames[0][:, :, ::-1]), boxes[0])
    np.testing.assert_array_equal(zero.update(Image.fromarray(frames[1][:, :, ::-1])), reference[0].box)


def test_got10k_tracker_runs_the_toolkits_track_loop(handset_weights, tmp_path):
    pytest.importorskip("got10k")
    from PIL import Image

    from tracker.compat import Got10kTracker

    frames, boxes = make_sequence(n=12, seed=3)
    files = []
    for i, frame in enumerate(frames):
        files.append(str(tmp_path / f"{i:04d}.png"))  # lossless: the loop reads back the very frames
        Image.fromarray(frame[:, :, ::-1]).save(files[-1])
    reference = reference_results(handset_weights, frames, boxes[0])
    t = Got10kTracker(handset_weights, backend="torch")
    out, times = t.track(files, boxes[0] + [1, 1, 0, 0])
    assert out.shape == (12, 4) and times.shape == (12,) and (times > 0).all()
    np.testing.assert_array_equal(out[0], boxes[0] + [1, 1, 0, 0])
    np.testing.assert_array_equal(out[1:], np.array([r.box for r in reference]) + [1, 1, 0, 0])


def test_got10k_tracker_rejects_bad_input(handset_weights):
    pytest.importorskip("got10k")
    from tracker.compat import Got10kTracker

    t = Got10kTracker(handset_weights, backend="torch")
    with pytest.raises(InputError):
        t.init("frame.jpg", (1, 1, 10, 10))
    with pytest.raises(NotInitializedError):
        t.update(np.zeros((50, 50, 3), np.uint8))
