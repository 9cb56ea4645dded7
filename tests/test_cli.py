"""The `track` command and its frame sources / output writers, run in-process on tiny generated clips."""

from __future__ import annotations

import csv
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import make_sequence

from tracker import InputError
from tracker.cli import display_available, main, parse_bbox
from tracker.io import FrameSource, VideoOutput, atomic_output

N_FRAMES = 12  # few frames: every update runs the network on 3 scales
SIZE = (160, 120)
on_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="display detection is X11/Wayland")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """An mp4 video and a folder of PNGs of the same synthetic sequence, and its ground-truth boxes (x, y, w, h)."""
    frames, boxes = make_sequence(N_FRAMES, SIZE, seed=1)
    root = tmp_path_factory.mktemp("clip")
    video = root / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, SIZE)
    for frame in frames:
        writer.write(frame)
    writer.release()
    folder = root / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i}.png"), frame)  # unpadded names: natural sort must order them
    return video, folder, boxes


def bbox_arg(box: np.ndarray) -> str:
    return ",".join(str(float(v)) for v in box)


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".part" in p.name]


def count_frames(path: Path) -> int:
    capture, n = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


def one_line_error(capfd: pytest.CaptureFixture[str]) -> str:
    err = capfd.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("track: error:") and "Traceback" not in err, err
    return err


def test_video_to_csv_and_annotated_video(clip, handset_weights, tmp_path, capfd):
    video, _, gt = clip
    out_video, out_csv = tmp_path / "annotated.mp4", tmp_path / "boxes.csv"
    args = [str(video), "--bbox", bbox_arg(gt[0]), "--weights", str(handset_weights), "--threads", "1"]
    assert main(args + ["--output", str(out_video), "--boxes", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert list(rows[0]) == ["frame", "target", "x", "y", "w", "h", "score", "found"]
    assert [int(r["frame"]) for r in rows] == list(range(N_FRAMES)) and {r["target"] for r in rows} == {"0"}
    assert [float(rows[0][k]) for k in "xywh"] == list(gt[0]) and rows[0]["found"] == "1"
    boxes = np.array([[float(r[k]) for k in "xywh"] for r in rows])
    centre_error = np.linalg.norm((boxes[:, :2] + boxes[:, 2:] / 2) - (gt[:, :2] + gt[:, 2:] / 2), axis=1)
    assert centre_error.mean() < 10, centre_error
    assert count_frames(out_video) == N_FRAMES
    out = capfd.readouterr().out
    assert f"{N_FRAMES} frames" in out and "target lost in" in out
    assert "backend torch-cpu-" in out or "backend onnxruntime-cpu-" in out  # auto's choice depends on the CPU
    assert "auto picked" in out  # and track says what it measured
    assert no_leftovers(tmp_path)


def test_folder_to_json_skips_corrupt_frame(clip, handset_weights, tmp_path, capfd):
    _, folder, gt = clip
    damaged = tmp_path / "frames"
    damaged.mkdir()
    for p in folder.iterdir():
        (damaged / p.name).write_bytes(p.read_bytes())
    (damaged / "frame_10.png").write_bytes(b"not a png")
    out_json = tmp_path / "out" / "boxes.json"  # the output folder is created
    start = 8
    args = [str(damaged), "--bbox", bbox_arg(gt[start]), "--weights", str(handset_weights), "--threads", "1"]
    assert main(args + ["--start-frame", str(start), "--boxes", str(out_json)]) == 0
    rows = json.loads(out_json.read_text())
    # the unreadable frame has no row; the others keep their index in the folder
    assert [r["frame"] for r in rows] == [8, 9, 11]
    assert all(isinstance(r["found"], bool) for r in rows)
    captured = capfd.readouterr()
    assert "skipped frame 10" in captured.err and "frame_10.png" in captured.err
    assert "1 frame(s) skipped (unreadable, or of another size than the first)" in captured.out


def test_python_m_tracker_help():
    done = subprocess.run([sys.executable, "-m", "tracker", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--bbox" in done.stdout and "exit codes" in done.stdout


def make_bad_source(kind: str, folder: Path) -> str:
    """A video argument that must be refused: a missing, empty or corrupt file, a folder without images, or a
    camera index that does not open."""
    path = folder / f"{kind}.mp4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "no-images":
        path = folder / "no-images"
        path.mkdir()
        (path / "notes.txt").write_text("no frames here")
    elif kind == "camera":
        return "987"
    return str(path)


@pytest.mark.parametrize(
    ("kind", "needle"),
    [
        ("missing", "not found"),
        ("empty", "empty"),
        ("corrupt", "cannot decode"),
        ("no-images", "no images"),
        ("camera", "camera 987"),
    ],
)
def test_bad_video_inputs(kind, needle, handset_weights, tmp_path, capfd):
    source = make_bad_source(kind, tmp_path)
    assert main([source, "--bbox", "1,1,5,5", "--weights", str(handset_weights)]) == 2
    assert needle in one_line_error(capfd)


def test_a_box_beyond_the_first_frame_is_tracked_by_its_part_inside_with_a_warning(
    clip, handset_weights, tmp_path, capfd
):
    video, _, _ = clip
    width, height = SIZE
    out_csv = tmp_path / "boxes.csv"
    args = [str(video), "--weights", str(handset_weights), "--threads", "1", "--boxes", str(out_csv)]
    assert main([*args, "--bbox", f"{width - 20},{height - 30},50,60"]) == 0
    err = capfd.readouterr().err
    expected = f"{width - 20},{height - 30},20,30"
    assert f"warning: the box of target 0, {width - 20},{height - 30},50,60, reaches beyond the {width}x{height}" in err
    assert f"tracking the part inside it, {expected}" in err
    first = next(csv.DictReader(out_csv.open()))
    assert ",".join(f"{float(first[k]):g}" for k in "xywh") == expected
    assert main([*args, "--bbox", f"{width - 50},{height - 60},50,60"]) == 0  # inside: no warning
    assert "warning" not in capfd.readouterr().err


def test_corrupt_first_image(tmp_path, handset_weights, capfd):
    (tmp_path / "0.jpg").write_bytes(b"garbage")
    assert main([str(tmp_path), "--bbox", "1,1,5,5", "--weights", str(handset_weights)]) == 2
    assert "first frame" in one_line_error(capfd)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_video(clip, tmp_path, handset_weights, capfd):
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(clip[0].read_bytes())
    locked.chmod(0)
    assert main([str(locked), "--bbox", "1,1,5,5", "--weights", str(handset_weights)]) == 2
    assert "permission denied" in one_line_error(capfd)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--bbox", "1,2,3"], "four numbers"),
        (["--bbox", "a,b,c,d"], "four numbers"),
        (["--bbox", "10,10,0,5"], "> 0"),
        (["--bbox", "10,10,-3,5"], "> 0"),
        (["--bbox", "1000,1000,10,10"], "outside"),
        (["--bbox", "-500,-500,10,10"], "outside"),  # a leading "-" must still parse as a box
        (["--bbox", "1,1,5,5", "--backend", "nope"], "--backend"),
        (["--bbox", "1,1,5,5", "--start-frame", "500"], "past the end"),
        (["--bbox", "1,1,5,5", "--start-frame", "-1"], ">= 0"),
        (["--bbox", "1,1,5,5", "--threads", "0"], "--threads"),
        (["--bbox", "1,1,5,5", "--boxes", "boxes.txt"], ".csv or .json"),
        (["--bbox", "1,1,5,5", "--output", "out.xyz"], "output video"),
        (["--bbox", "1,1,5,5", "--boxes", f"{__file__}/b.csv"], "is a file, not a folder"),  # parent is a file
        ([], "--bbox"),
    ],
)
def test_bad_arguments(clip, extra, needle, handset_weights, tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([str(clip[0]), "--weights", str(handset_weights)] + extra) == 2
    assert needle in one_line_error(capfd)
    assert no_leftovers(tmp_path)


def test_bad_weights(clip, tmp_path, capfd):
    assert main([str(clip[0]), "--bbox", "1,1,5,5", "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert "not found" in one_line_error(capfd)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    assert main([str(clip[0]), "--bbox", "1,1,5,5", "--weights", str(corrupt)]) == 2
    assert "corrupt.safetensors" in one_line_error(capfd)


def test_unavailable_backend(clip, handset_weights, capfd):
    assert main([str(clip[0]), "--bbox", "1,1,5,5", "--weights", str(handset_weights), "--device", "nodev"]) == 2
    one_line_error(capfd)


@on_linux
@pytest.mark.parametrize("extra", [["--bbox"], ["--bbox", "1,1,5,5", "--show"]], ids=["select", "show"])
def test_gui_options_without_display(clip, extra, handset_weights, capfd, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not display_available()
    assert main([str(clip[0])] + extra + ["--weights", str(handset_weights)]) == 2
    assert "display" in one_line_error(capfd)


def test_parse_bbox():
    assert parse_bbox(" 1, 2.5,3,4 ") == (1.0, 2.5, 3.0, 4.0)
    with pytest.raises(InputError, match="four numbers"):
        parse_bbox("1,2,3,4,5")
    with pytest.raises(InputError, match="NaN"):
        parse_bbox("nan,1,2,3")


def test_frame_source(clip):
    video, folder, _ = clip
    with FrameSource(video, start_frame=3) as source:
        assert source.kind == "video" and source.frame_count == N_FRAMES and source.fps == pytest.approx(25)
        indices = [i for i, frame in source if frame.shape == (SIZE[1], SIZE[0], 3)]
    assert indices == list(range(3, N_FRAMES))
    source = FrameSource(folder)
    assert source.kind == "images" and source.frame_count == N_FRAMES
    assert [i for i, _ in source] == list(range(N_FRAMES))


def test_outputs_are_atomic(tmp_path):
    target = tmp_path / "boxes.csv"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert not target.exists() and no_leftovers(tmp_path)
    with VideoOutput(tmp_path / "a.mp4", 25) as out:
        out.write(np.zeros((32, 48, 3), np.uint8))  # abandoned: never committed
    assert list(tmp_path.iterdir()) == []


def fake_gui(monkeypatch: pytest.MonkeyPatch, roi: tuple[int, int, int, int], quit_after: int) -> list[np.ndarray]:
    """Stand-ins for OpenCV's windows: selectROI returns ``roi``; q is pressed at the ``quit_after``-th frame."""
    shown: list[np.ndarray] = []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "selectROI", lambda *a, **k: roi)
    monkeypatch.setattr(cv2, "imshow", lambda _name, frame: shown.append(frame))
    monkeypatch.setattr(cv2, "waitKey", lambda _ms: ord("q") if len(shown) >= quit_after else -1)
    for name in ("destroyWindow", "destroyAllWindows"):
        monkeypatch.setattr(cv2, name, lambda *a: None)
    return shown


def test_select_and_show_then_quit(clip, handset_weights, tmp_path, capfd, monkeypatch):
    video, _, gt = clip
    shown = fake_gui(monkeypatch, tuple(int(v) for v in gt[0]), quit_after=2)
    out_csv = tmp_path / "boxes.csv"
    assert main([str(video), "--bbox", "--show", "--weights", str(handset_weights), "--boxes", str(out_csv)]) == 0
    assert len(shown) == 2  # q on the second frame stops the run; what was tracked is written
    assert [int(r["frame"]) for r in csv.DictReader(out_csv.open())] == [0, 1]
    assert "2 frames" in capfd.readouterr().out


def test_selection_cancelled(clip, handset_weights, capfd, monkeypatch):
    fake_gui(monkeypatch, (0, 0, 0, 0), quit_after=1)
    assert main([str(clip[0]), "--bbox", "--weights", str(handset_weights)]) == 2
    assert "no box selected" in one_line_error(capfd)


def load_demo(name: str) -> dict:
    """The globals of ``demos/<name>.py`` (demos are scripts, not an importable package)."""
    return runpy.run_path(str(Path(__file__).resolve().parent.parent / "demos" / f"{name}.py"))


def test_demo_scripts_fail_cleanly(handset_weights, tmp_path, capfd, monkeypatch):
    run_demo = load_demo("run_demo")["main"]
    assert run_demo(["--weights", str(tmp_path / "none.safetensors"), "--out-dir", str(tmp_path)]) == 2
    assert "not found" in one_line_error(capfd)
    webcam = load_demo("webcam")["main"]
    if sys.platform.startswith("linux"):
        monkeypatch.delenv("DISPLAY", raising=False)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        assert webcam([]) == 2
        assert "no display" in capfd.readouterr().err
    fake_gui(monkeypatch, (0, 0, 0, 0), quit_after=1)
    assert webcam(["987", "--weights", str(handset_weights)]) == 2
    err = capfd.readouterr().err.strip()
    assert err == "webcam: error: camera 987 could not be opened or delivered no frame"


def test_no_verify_tracks_and_excludes_verify(clip, handset_weights, tmp_path, capfd):
    video, _, gt = clip
    args = [str(video), "--bbox", bbox_arg(gt[0]), "--weights", str(handset_weights)]
    assert main([*args, "--no-verify", "--boxes", str(tmp_path / "b.csv")]) == 0
    capfd.readouterr()
    assert main([*args, "--no-verify", "--verify"]) == 2
    assert "not allowed with" in one_line_error(capfd)


@pytest.mark.parametrize("verify", [["--verify"], ["--verify", "0.5"], ["--verify", "3"]])
def test_verify_without_an_embedding_or_out_of_range_is_one_error(clip, handset_weights, verify, capfd):
    video, _, gt = clip
    args = [str(video), "--bbox", bbox_arg(gt[0]), "--weights", str(handset_weights), *verify]
    assert main(args) == 2
    err = one_line_error(capfd)
    assert "appearance embedding" in err or "verify_threshold" in err
