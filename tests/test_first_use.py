"""What a new user met on a first run: frames of another size in a folder, outputs that cannot be written, a
training run on an empty folder, precisions and scales that do not fit the backend or model, and docs that must
match the code."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import make_sequence

import tracker
from tracker.cli import build_parser, main

BBOX = "60,50,40,32"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Six frames, the fourth of another size."""
    frames, _ = make_sequence(6, (160, 120), seed=3)
    (tmp_path / "frames").mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / "frames" / f"{i:03d}.png"), f if i != 3 else np.zeros((100, 100, 3), np.uint8))
    return tmp_path / "frames"


def test_a_frame_of_another_size_is_skipped_with_a_warning(folder, handset_weights, tmp_path, capfd):
    boxes = tmp_path / "boxes.csv"
    code = main([str(folder), "--bbox", BBOX, "--weights", str(handset_weights), "--boxes", str(boxes)])
    captured = capfd.readouterr()
    assert code == 0
    assert "skipped frame 3" in captured.err and "100x100" in captured.err and "160x120" in captured.err
    frames = [int(line.split(",")[0]) for line in boxes.read_text().splitlines()[1:]]
    assert frames == [0, 1, 2, 4, 5]  # every other frame tracked, the gap shows which was skipped


def test_an_unwritable_folder_is_named(folder, handset_weights, capfd):
    if not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    assert main([str(folder), "--bbox", BBOX, "--weights", str(handset_weights), "--boxes", "/proc/b.csv"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and "no file can be created in the folder /proc" in err


def test_a_parent_that_is_a_file_is_named_and_nothing_is_left_behind(folder, handset_weights, tmp_path, capfd,
                                                                    monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gt.txt").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([str(folder), "--bbox", BBOX, "--weights", str(handset_weights), "--boxes", "new.d/../gt.txt/b.csv"])
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and "gt.txt is a file, not a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no empty new.d


def test_training_on_an_empty_folder_leaves_no_folders(tmp_path):
    (tmp_path / "EMPTY").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "train", "--data", str(tmp_path / "EMPTY"), "--out", str(tmp_path / "runs" / "t2"),
         "--cache", str(tmp_path / "cache")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 2 and "no sequences found" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["EMPTY"]


def test_int8_with_torch_names_the_onnx_backend(folder, handset_weights, capfd):
    assert main([str(folder), "--bbox", BBOX, "--weights", str(handset_weights), "--backend", "torch",
                 "--precision", "int8"]) == 2  # fmt: skip
    assert "int8 is a precision of the onnx backend" in capfd.readouterr().err


def test_export_refuses_scales_for_a_box_head_and_prints_no_exporter_noise(box_weights, tmp_path, capfd):
    from tracker.export import main as export

    assert export(["--weights", str(box_weights), "--out", str(tmp_path / "g2"), "--scales", "2"]) == 2
    assert "one crop per target" in capfd.readouterr().err
    assert not (tmp_path / "g2").exists()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert export(["--weights", str(box_weights), "--out", str(tmp_path / "g1")]) == 0
    assert not [w for w in caught if "Constant folding" in str(w.message)]


def test_docs_match_the_code():
    assert issubclass(tracker.ConfigError, tracker.InputError) and "ConfigError" in tracker.__all__
    readme = (ROOT / "README.md").read_text()
    assert "`ConfigError`" in readme and "NanoTrack" in readme and "Dataset layout" in readme
    help_text = build_parser().format_help()
    assert "fastest" not in help_text.split("--precision")[1].split("--start-frame")[0]
    assert "frame, target, x, y, w, h, score, found" in (ROOT / "demos" / "CLI.md").read_text()
    assert "frame, target, x, y, w, h, score, found" in (ROOT / "demos" / "run_demo.py").read_text()
