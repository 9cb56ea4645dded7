"""The evaluation command on a tiny generated dataset, its input errors, the benchmark, and the README updater."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import make_sequence

from tracker import SiamFCTracker, TrackerConfig
from tracker.datasets import Sequence
from tracker.eval import evaluate
from tracker.eval.run import on_one_canvas, run_lockstep, run_sequence, temporal_runs

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 15-frame sequences in the plain layout; the second has the target marked absent on frame 7."""
    root = tmp_path_factory.mktemp("data")
    for name, seed, absent in (("alpha", 0, None), ("beta", 1, 7)):
        frames, boxes = make_sequence(n=40, seed=seed)  # the first 15 frames of 40: a pace a tracker can follow
        frames, boxes = frames[:15], boxes[:15]
        (root / name / "img").mkdir(parents=True)
        for i, frame in enumerate(frames):
            cv2.imwrite(str(root / name / "img" / f"{i:04d}.jpg"), frame)
        rows = [",".join(f"{v:g}" for v in b) for b in boxes]
        if absent is not None:
            rows[absent] = "nan,nan,nan,nan"
        (root / name / "groundtruth.txt").write_text("\n".join(rows) + "\n")
    return root


def test_evaluate_writes_results_and_plots(tiny_dataset: Path, handset_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = [str(tiny_dataset), "--trackers", "siamtrack,MIL", "--weights", str(handset_weights)]
    assert evaluate.main([*args, "--backend", "torch", "--threads", "1", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["trackers"]) == {"siamtrack", "MIL"} and results["threads"] == 1
    for r in results["trackers"].values():
        o = r["overall"]
        assert 0.0 <= o["auc"] <= 20 / 21 and o["fps"] > 0 and o["updates"] == 28
        assert len(o["curves"]["success"]) == 21
        assert r["sequences"]["beta"]["absent_frames"] == 1 and r["sequences"]["beta"]["frames"] == 14
        assert r["sequences"]["alpha"]["absent_accuracy"] is None
    assert results["trackers"]["siamtrack"]["overall"]["auc"] > 0.5  # the hand-set features follow the object
    table = (out / "results.md").read_text()
    assert "| tracker | success AUC | precision@20 | norm precision | mean IoU | fps | absent-frame accuracy |" in table
    assert "| siamtrack |" in table and "| MIL |" in table and "of 1 |" in table
    assert "| failed |" in table and " of 2 |" in table  # sequences failed, per tracker
    names = [n for n, _ in sorted(results["trackers"].items(), key=lambda kv: -kv[1]["overall"]["auc"])]
    assert f"| sequence | {' | '.join(names)} |" in table  # both trackers' AUC per sequence, side by side
    for seq in ("alpha", "beta"):
        row = next(line for line in table.splitlines() if line.startswith(f"| {seq} |"))
        auc = results["trackers"]["MIL"]["sequences"][seq]["auc"]
        assert f"{auc:.3f}" in row
        assert isinstance(results["trackers"]["MIL"]["sequences"][seq]["failed"], bool)
    for name in ("success.png", "precision.png", "frontier.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    predictions = np.loadtxt(out / "predictions" / "MIL" / "beta.txt", delimiter=",")
    assert predictions.shape == (15, 6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trackers", "siamtrack,GOTURN"], "unknown tracker GOTURN"),
        (["--trackers", "Nano"], "--nano-dir"),
        (["--trackers", "nano", "--nano-dir", "."], "NanoTrack file(s) not found"),
        (["--trackers", "MIL", "--starts", "0"], "--starts must be at least 1, got 0"),
        (["--trackers", "MIL", "--starts", "3", "--absence"], "--starts is for the one-pass evaluation"),
    ],
)
def test_evaluate_input_errors(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], message: str
) -> None:
    assert evaluate.main([str(tiny_dataset), *extra, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_temporal_runs_start_on_visible_frames_and_track_to_the_end() -> None:
    boxes = np.tile([10.0, 10.0, 5.0, 5.0], (12, 1))
    boxes[3:7] = np.nan  # the target absent from frame 3 to 6
    seq = Sequence("s", [Path(f"{i}.jpg") for i in range(12)], boxes)
    runs = temporal_runs(seq, 4)  # 0, 3 (absent: 7), 6 (absent: 7 again, dropped), 9
    assert [r.name for r in runs] == ["s@0", "s@7", "s@9"]
    assert [len(r) for r in runs] == [12, 5, 3] and runs[1].frames[0] == Path("7.jpg")
    assert np.array_equal(runs[2].boxes, boxes[9:]) and temporal_runs(seq, 1) == [seq]
    assert [r.name for r in temporal_runs(seq, 12)][-1] == "s@10"  # a run tracks at least one frame


def test_evaluate_several_starts_scores_every_run(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "tre"
    assert evaluate.main([str(tiny_dataset), "--trackers", "MIL", "--starts", "3", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["runs"] == {"alpha": ["alpha@0", "alpha@5", "alpha@10"], "beta": ["beta@0", "beta@5", "beta@10"]}
    runs = results["trackers"]["MIL"]["sequences"]
    assert set(runs) == set(results["sequences"]) and runs["alpha@5"]["frames"] == 10
    overall = results["trackers"]["MIL"]["overall"]
    assert overall["auc"] == pytest.approx(np.mean([r["auc"] for r in runs.values()]), abs=1e-6)
    table = (out / "results.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| beta |"))
    assert f"{np.mean([runs[f'beta@{s}']['auc'] for s in (0, 5, 10)]):.3f}" in row
    assert "6 runs of 2 sequences" in table and "temporal robustness" in table


def test_evaluate_missing_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert evaluate.main([str(tmp_path / "nope"), "--trackers", "MIL", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"python -m tracker.evaluate: error: data folder not found: {tmp_path / 'nope'}"


def test_evaluate_without_matplotlib_names_the_extra(tiny_dataset: Path, tmp_path: Path) -> None:
    code = (
        "import sys\nsys.modules['matplotlib'] = None  # as if not installed\nfrom tracker.eval import evaluate\n"
        "try:\n    evaluate.main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        f"sys.exit(evaluate.main([{str(tiny_dataset)!r}, '--trackers', 'MIL', '--out', {str(tmp_path / 'o')!r}]))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "siamtrack[eval]" in run.stdout  # --help says what to install
    err = run.stderr.strip()
    assert err == "python -m tracker.evaluate: error: the plots need matplotlib: pip install 'siamtrack[eval]'"
    assert not (tmp_path / "o").exists()


def test_run_lockstep_matches_one_tracker_runs(handset_weights: Path, tmp_path: Path) -> None:
    frames, boxes = make_sequence(n=40, seed=2)
    frames, boxes = frames[:12], boxes[:12].copy()
    boxes[:2] = np.nan  # the target shows from frame 2: the run starts there
    paths = []
    for i, frame in enumerate(frames):
        paths.append(tmp_path / f"{i:04d}.png")  # lossless, so both runs see the same pixels
        cv2.imwrite(str(paths[-1]), frame)
    seq = Sequence("gamma", paths, boxes)
    configs = [TrackerConfig(threads=1), TrackerConfig(window_influence=0.4, scale_lr=0.3, threads=1)]
    trackers = [SiamFCTracker(handset_weights, "torch", "cpu", c) for c in configs]
    ticks = []
    run = run_lockstep(seq, trackers, max_frames=6, progress=lambda: ticks.append(1))
    assert run.start == 2 and run.found.shape == (2, 6) and run.boxes.shape == (2, 6, 4) and len(ticks) == 7
    np.testing.assert_array_equal(run.gt, boxes[3:9])
    for k, config in enumerate(configs):  # each tracker of the lockstep run tracks as it would alone
        alone = run_sequence(SiamFCTracker(handset_weights, "torch", "cpu", config), seq, frames[:9])
        np.testing.assert_allclose(run.boxes[k], alone["boxes"][3:9], atol=1e-6)
        np.testing.assert_array_equal(run.found[k], alone["found"][3:9])
    assert not np.allclose(run.boxes[0], run.boxes[1])  # the configurations differ, so do their runs
    with pytest.raises(ValueError, match="never visible"):
        run_lockstep(Sequence("none", paths, np.full_like(boxes, np.nan)), [])


def test_run_lockstep_tracks_region_cut_frames_on_one_canvas(handset_weights: Path, tmp_path: Path) -> None:
    # frames cut around the target, each its own size (as in training sets): tracked on the canvas
    # run_sequence uses, so a tuning sweep over them scores what the evaluation scores
    frames, boxes = make_sequence(n=10, seed=4)
    cut, cut_boxes, paths = [], boxes.copy(), []
    for i, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        x0, y0 = int(box[0]) // 2 + i % 3, int(box[1]) // 3
        cut.append(frame[y0:, x0 : frame.shape[1] - i % 4])
        cut_boxes[i, :2] -= (x0, y0)
        paths.append(tmp_path / f"{i:04d}.png")
        cv2.imwrite(str(paths[-1]), cut[-1])
    assert len({f.shape for f in cut}) > 1
    seq = Sequence("cut", paths, cut_boxes)
    config = TrackerConfig(threads=1)
    ticks = []
    run = run_lockstep(seq, [SiamFCTracker(handset_weights, "torch", "cpu", config)], progress=lambda: ticks.append(1))
    alone = run_sequence(SiamFCTracker(handset_weights, "torch", "cpu", config), seq, cut)
    np.testing.assert_allclose(run.boxes[0], alone["boxes"][1:], atol=1e-6)
    _, canvas_boxes = on_one_canvas(cut, cut_boxes)
    np.testing.assert_array_equal(run.gt, canvas_boxes[1:])  # the ground truth in the canvas's pixels too
    assert not np.array_equal(run.gt, cut_boxes[1:])


@pytest.mark.slow  # four runs of the tool, each its own process importing torch: about 7 s on 2 cores
def test_tune_tracker_rejects_unknown_field(tmp_path: Path) -> None:
    script = [sys.executable, str(ROOT / "tools" / "tune_tracker.py"), "--weights", "w", "--data", str(tmp_path)]
    grid = ["--grid", "window_influence=0.1", "--grid", "windw=0.2"]
    bad = subprocess.run([*script, *grid], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown TrackerConfig field 'windw'")
    assert len(bad.stderr.splitlines()) == 1
    for motion in ("-1", "nan"):
        bad = subprocess.run([*script, "--canvas-motion", motion], capture_output=True, text=True)
        assert bad.returncode == 2 and bad.stderr.startswith("error: --canvas-motion must be a finite number >= 0")
    bad = subprocess.run([*script, "--starts", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == "error: --starts must be at least 1, got 0\n"


def test_readme_updater(tmp_path: Path) -> None:
    results = tmp_path / "results" / "dev"
    results.mkdir(parents=True)
    (results / "results.md").write_text("| tracker | success AUC |\n|---|---:|\n| siamtrack | 0.300 |\n")
    machine = {"cpu": "Test CPU 9000", "logical_cpus": 2, "date": "2025-01-02"}
    (results / "results.json").write_text(json.dumps({"threads": 2, "machine": machine}))
    for name in ("success.png", "precision.png", "frontier.png"):
        (results / name).write_bytes(PNG_MAGIC)
    readme = tmp_path / "README.md"
    readme.write_text("# t\n\nbefore\n<!-- results:start -->\nold table\n<!-- results:end -->\nafter\n")
    script = [sys.executable, str(ROOT / "tools" / "update_readme_results.py"), "--results", str(results)]
    run = [*script, "--readme", str(readme), "--plots-dir", str(tmp_path / "docs" / "results")]
    for _ in range(2):  # a second run gives the same file
        subprocess.run(run, check=True, capture_output=True)
    text = readme.read_text()
    assert "old table" not in text and "| siamtrack | 0.300 |" in text
    assert "Measured on Test CPU 9000 (2 logical CPUs), 2 thread(s), 2025-01-02." in text
    assert "![success](docs/results/success.png)" in text and (tmp_path / "docs" / "results" / "success.png").is_file()
    assert text.startswith("# t\n\nbefore\n<!-- results:start -->\n") and text.endswith("<!-- results:end -->\nafter\n")
    readme.write_text("no markers\n")
    bad = subprocess.run([*script, "--readme", str(readme)], capture_output=True, text=True)
    assert bad.returncode == 2 and "results:start" in bad.stderr


@pytest.mark.slow
def test_several_weights_and_a_config_in_one_run(tiny_dataset: Path, handset_weights: Path, tmp_path: Path) -> None:
    import shutil

    other = tmp_path / "other.safetensors"
    shutil.copy(handset_weights, other)
    config = tmp_path / "cfg.json"
    config.write_text('{"window_influence": 0.5}')
    out = tmp_path / "out"
    args = [str(tiny_dataset), "--trackers", "siamtrack", "--weights", str(handset_weights), str(other)]
    run = [*args, "--config", str(config), "--backend", "torch", "--threads", "1", "--out", str(out)]
    assert evaluate.main(run) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["trackers"]) == {f"siamtrack:{handset_weights.stem}", "siamtrack:other"}
    a, b = (results["trackers"][n]["overall"]["auc"] for n in sorted(results["trackers"]))
    assert a == b  # the same weights track alike
    config.write_text('{"window_influenze": 0.5}')
    assert evaluate.main([*args, "--config", str(config), "--out", str(out)]) == 2  # a misspelled field is refused


def test_frontier_labels_do_not_cover_each_other():
    """Trackers at (nearly) the same speed and AUC get labels moved apart by whole lines; a lone one keeps its
    place beside its point."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tracker.eval.plots import label_offsets

    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set(xlim=(1, 20), ylim=(0, 0.7))
    points = {"a": (2.5, 0.466), "bb": (2.4, 0.465), "ccc": (2.6, 0.46), "alone": (15.0, 0.2), "none": (np.nan, 0.3)}
    offsets = label_offsets(ax, points)
    assert offsets["alone"] == (5, 4) and offsets["none"] == (5, 4)
    crowded = [offsets[n][1] for n in ("a", "bb", "ccc")]
    assert len(set(crowded)) == 3 and min(abs(p - q) for p in crowded for q in crowded if p != q) >= 8
    plt.close(fig)
