"""`track` never overwrites what it reads, and names an unknown device as such."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest
from synthetic import make_sequence

from tracker import BackendError, SiamFCTracker
from tracker.cli import main

BBOX = "60,50,40,32"


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """A 4-frame mp4 in its own folder."""
    frames, _ = make_sequence(4, (160, 120), seed=3)
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 120))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def error_line(capfd: pytest.CaptureFixture[str]) -> str:
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("track: error:"), err
    return err


def _link(kind: str, target: Path, link: Path) -> Path:
    if kind == "hard link":
        os.link(target, link)
    elif kind == "symlink":
        link.symlink_to(target)
    return link if kind != "same path" else target


@pytest.mark.parametrize("kind", ["same path", "hard link", "symlink"])
def test_output_never_overwrites_the_source(video, handset_weights, tmp_path, capfd, kind):
    before = video.read_bytes()
    output = _link(kind, video, tmp_path / "out.mp4")
    assert main([str(video), "--bbox", BBOX, "--weights", str(handset_weights), "--output", str(output)]) == 2
    err = error_line(capfd)
    assert "--output" in err and "overwritten" in err
    assert video.read_bytes() == before
    assert output.exists() and (kind == "same path" or os.path.samefile(output, video))


@pytest.mark.parametrize("kind", ["hard link", "symlink"])
def test_boxes_never_overwrite_the_source(video, handset_weights, tmp_path, capfd, kind):
    before = video.read_bytes()
    boxes = _link(kind, video, tmp_path / "boxes.csv")
    assert main([str(video), "--bbox", BBOX, "--weights", str(handset_weights), "--boxes", str(boxes)]) == 2
    assert "--boxes" in error_line(capfd)
    assert video.read_bytes() == before and os.path.samefile(boxes, video)


def test_boxes_never_overwrite_an_image_of_the_source_folder(video, handset_weights, tmp_path, capfd):
    folder = tmp_path / "frames"
    folder.mkdir()
    frames, _ = make_sequence(3, (160, 120), seed=3)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i}.png"), frame)
    boxes = _link("symlink", folder / "1.png", tmp_path / "boxes.json")
    assert main([str(folder), "--bbox", BBOX, "--weights", str(handset_weights), "--boxes", str(boxes)]) == 2
    assert "1.png" in error_line(capfd)
    assert cv2.imread(str(folder / "1.png")) is not None


def test_boxes_and_output_must_differ(video, handset_weights, tmp_path, capfd):
    output = tmp_path / "out.mp4"
    output.write_bytes(b"an earlier result")
    boxes = _link("symlink", output, tmp_path / "boxes.csv")
    args = [str(video), "--bbox", BBOX, "--weights", str(handset_weights), "--output", str(output)]
    assert main([*args, "--boxes", str(boxes)]) == 2
    assert "--output and --boxes name the same file" in error_line(capfd)
    assert output.read_bytes() == b"an earlier result"


def test_distinct_outputs_still_work(video, handset_weights, tmp_path, capfd):
    out = tmp_path / "new" / "out.mp4"  # a missing folder is created
    args = [str(video), "--bbox", BBOX, "--weights", str(handset_weights), "--output", str(out)]
    assert main([*args, "--boxes", str(tmp_path / "new" / "boxes.csv"), "--threads", "1"]) == 0
    assert out.is_file() and (tmp_path / "new" / "boxes.csv").is_file()


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "gpu0"])
def test_unknown_device_is_named(handset_weights, video, capfd, device):
    with pytest.raises(BackendError, match=f"unknown device '{device}'"):
        SiamFCTracker(handset_weights, backend="torch", device=device)
    assert main([str(video), "--bbox", BBOX, "--weights", str(handset_weights), "--device", device]) == 2
    err = error_line(capfd)
    assert f"unknown device '{device}'" in err and "no CUDA GPU" not in err
