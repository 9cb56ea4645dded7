"""Objects like no training target (generated shapes: a thin tower, a flat barge, a plain pentagon) are tracked by
the shipped weights from the first frame and never reported lost while in view."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_shape_sequence

from tracker import SiamFCTracker
from tracker.eval.metrics import ious
from tracker.shipped import default_weights


@pytest.mark.parametrize(("shape", "seed"), [((10, 80), 0), ((90, 14), 1), ((36, 54), 2)])
def test_an_unseen_object_is_followed_from_the_first_frame(shape, seed):
    weights = default_weights()
    if not weights.is_file():
        pytest.skip("no shipped weights")
    frames, boxes = make_shape_sequence(seed=seed, shape=shape)
    tracker = SiamFCTracker(weights, backend="torch")
    tracker.init(frames[0], boxes[0])
    results = [tracker.update(f) for f in frames[1:]]
    assert all(r.found for r in results), [round(r.score, 3) for r in results]
    overlap = ious(np.array([r.box for r in results]), boxes[1:])
    assert overlap.min() > MIN_IOU, np.round(overlap, 2)


MIN_IOU = 0.1  # on the object every frame (thin shapes make IoU harsh: a 10 px wide tower off by 5 px is 0.33)
