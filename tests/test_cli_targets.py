"""The `track` command with several targets: one --bbox each, a target column, colours and lost counts per target."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from synthetic import make_sequence

from tracker import TrackResult
from tracker.cli import main
from tracker.geometry import Box
from tracker.io import LOST_COLOUR, TARGET_COLOURS, draw_results

N_FRAMES, SIZE = 8, (160, 120)
BACKGROUND = "110,10,30,30"  # a patch of background: a second target


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, boxes = make_sequence(N_FRAMES, SIZE, seed=4)
    folder = tmp_path_factory.mktemp("frames")
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    return folder, ",".join(str(float(v)) for v in boxes[0])


def read_rows(path):
    return list(csv.DictReader(path.open()))


def test_two_targets_match_two_single_runs(clip, handset_weights, tmp_path, capfd):
    folder, first = clip
    common = [str(folder), "--weights", str(handset_weights), "--backend", "torch", "--threads", "1"]
    assert main([*common, "--bbox", first, "--bbox", BACKGROUND, "--boxes", str(tmp_path / "both.csv")]) == 0
    out = capfd.readouterr().out
    assert f"{N_FRAMES} frames" in out and "frames lost per target 0: " in out and ", 1: " in out
    both = read_rows(tmp_path / "both.csv")
    assert len(both) == 2 * N_FRAMES and list(both[0])[:2] == ["frame", "target"]
    assert [(r["frame"], r["target"]) for r in both[:4]] == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    for target, box in enumerate((first, BACKGROUND)):
        alone = tmp_path / f"alone{target}.csv"
        assert main([*common, "--bbox", box, "--boxes", str(alone)]) == 0
        mine = [{k: v for k, v in r.items() if k != "target"} for r in both if r["target"] == str(target)]
        assert mine == [{k: v for k, v in r.items() if k != "target"} for r in read_rows(alone)]


def test_bad_second_box_and_mouse_with_several(clip, handset_weights, tmp_path, capfd):
    folder, first = clip
    common = [str(folder), "--weights", str(handset_weights), "--boxes", str(tmp_path / "b.csv")]
    assert main([*common, "--bbox", first, "--bbox", "1,2,0,4"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("track: error: --bbox 1,2,0,4:") and "\n" not in err
    assert main([*common, "--bbox", first, "--bbox"]) == 2
    assert "mouse selection) is for one target" in capfd.readouterr().err
    assert main([*common, "--bbox", first, "--bbox", "500,500,10,10"]) == 2  # outside the frame: names the box
    assert "box 1:" in capfd.readouterr().err
    assert not (tmp_path / "b.csv").exists()


def test_each_target_has_its_colour_and_label():
    frame = np.zeros((120, 160, 3), np.uint8)
    results = [TrackResult(Box(10, 10, 30, 30), 0.9, True), TrackResult(Box(80, 60, 30, 30), 0.8, True),
               TrackResult(Box(40, 80, 20, 20), 0.1, False)]  # fmt: skip
    out = draw_results(frame, results, "frame 3")
    assert tuple(out[25, 10]) == TARGET_COLOURS[0] and tuple(out[85, 109]) == TARGET_COLOURS[1]  # edges
    assert tuple(out[99, 50]) == LOST_COLOUR  # a lost target is red
    assert TARGET_COLOURS[0] != TARGET_COLOURS[1] and LOST_COLOUR not in TARGET_COLOURS
    one = draw_results(frame, results[:1])
    several = draw_results(frame, results[:2])
    label_area = (slice(0, 9), slice(10, 60))  # the text above target 0's box: "0: 0.90" is wider than "0.90"
    assert (several[label_area] > 0).sum() > (one[label_area] > 0).sum()
    assert (frame == 0).all()  # drawn on a copy
