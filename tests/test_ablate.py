"""tools/ablate_siamese.py: the commands it plans, its input checks, and a whole ablation at a tiny scale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from synthetic import make_sequence

ROOT = Path(__file__).resolve().parent.parent
TOOL = [sys.executable, str(ROOT / "tools" / "ablate_siamese.py")]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the subprocesses import this tree's tracker and train
    return subprocess.run([*TOOL, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def write_dataset(root: Path, n_seq: int = 2, frames: int = 8) -> Path:
    """Synthetic sequences in the plain layout (img/ + groundtruth.txt)."""
    for k in range(n_seq):
        images, boxes = make_sequence(frames, size=(160, 120), seed=k)
        (root / f"seq{k}" / "img").mkdir(parents=True)
        for i, f in enumerate(images):
            cv2.imwrite(str(root / f"seq{k}" / "img" / f"{i + 1:06d}.jpg"), f)
        (root / f"seq{k}" / "groundtruth.txt").write_text("\n".join(",".join(map(str, b)) for b in boxes) + "\n")
    return root


def test_dry_run_plans_every_metric_and_loss(tmp_path):
    data = write_dataset(tmp_path / "data", n_seq=1, frames=2)
    result = run_tool("--data", str(data), "--dev", str(data), "--out", str(tmp_path / "out"), "--steps", "7",
                      "--dry-run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    trains = [line for line in lines if " -m train " in line]
    evals = [line for line in lines if " -m tracker.evaluate " in line]
    assert len(trains) == len(evals) == 12 and len(lines) == 24
    planned = {(line.split("--metric ")[1].split()[0], line.split("--loss ")[1].split()[0]) for line in trains}
    assert planned == {(m, loss) for m in ("xcorr", "cosine", "euclidean", "absdiff")
                       for loss in ("logistic", "contrastive", "triplet")}  # fmt: skip
    assert all("--steps 7" in line and "weights/train_config.json" in line for line in trains)
    assert all("--trackers siamtrack" in line and "last.safetensors" in line for line in evals)
    assert all("--backend onnx " in line for line in evals)  # one backend and precision for every variant
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


@pytest.mark.slow  # four runs of the tool, each its own process importing torch: about 7 s on 2 cores
def test_bad_input_is_one_clear_error(tmp_path):
    data = write_dataset(tmp_path / "data", n_seq=1, frames=2)
    base = ["--data", str(data), "--dev", str(data), "--out", str(tmp_path / "out"), "--dry-run"]
    for extra, message in [
        (["--metrics", "xcorr,hamming"], "unknown metric hamming"),
        (["--losses", "hinge"], "unknown loss hinge"),
        (["--dev", str(tmp_path / "nowhere")], "dataset folder not found"),
        (["--config", str(tmp_path / "none.json")], "config file not found"),
    ]:
        result = run_tool(*base, *extra)
        assert result.returncode == 2 and result.stderr.startswith(f"ablate_siamese: error: {message}"), extra
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_tiny_ablation_trains_evaluates_and_tabulates(tmp_path):
    data = write_dataset(tmp_path / "data")
    config = tmp_path / "tiny.json"
    tiny = {"model": {"width": 0.125}, "batch_size": 2, "warmup_steps": 1, "workers": 0, "checkpoint_every": 1}
    config.write_text(json.dumps({**tiny, "val_every": 0, "steps": 2}))
    out = tmp_path / "out"
    args = ["--data", str(data), "--dev", str(data), "--out", str(out), "--config", str(config), "--metrics",
            "cosine", "--losses", "contrastive,triplet", "--cache", str(tmp_path / "cache"), "--threads", "1",
            "--max-frames", "4"]  # fmt: skip
    result = run_tool(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in (out / "ablation.md").read_text().splitlines() if line.startswith("| cosine")]
    assert sorted(row.split(" | ")[1] for row in rows) == ["contrastive", "triplet"]
    summary = json.loads((out / "ablation.json").read_text())
    assert summary["steps"] == 2 and len(summary["variants"]) == 2
    for v in summary["variants"]:
        assert 0.0 <= v["auc"] <= 1.0 and 0.0 <= v["precision"] <= 1.0 and v["fps"] > 0
        run = out / "runs" / f"cosine-{v['loss']}"
        trained = json.loads((run / "config.json").read_text())
        assert trained["loss"] == v["loss"] and trained["model"]["metric"] == "cosine"
        assert trained["model"]["out_scale"] == 10.0 and trained["steps"] == 2
    assert (out / "ablation.png").stat().st_size > 0
    again = run_tool(*args)  # a finished variant is kept, not trained again
    assert again.returncode == 0 and again.stdout.count("evaluated before, kept") == 2
