"""tools/calibrate_found.py, tools/score_candidates.py, tools/batch_cost.py, tools/int8_fidelity.py and
tools/search_size.py at a tiny scale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the subprocess imports this tree's tracker
    command = [sys.executable, str(ROOT / "tools" / name), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("found_tools"), {"alpha": 0, "beta": 1}, n=30)


def table_rows(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.slow  # four trackers in lockstep over two sequences: about 40 s on 2 cores
def test_calibrate_found_scores_every_combination(dataset: Path, handset_weights: Path) -> None:
    grid = ["--found", "0,0.5", "--psr", "0", "--fraction", "0.5,1", "--splice-frames", "5"]
    done = run_tool("calibrate_found.py", "--weights", str(handset_weights), "--data", str(dataset), "--backend",
                    "torch", *grid)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert [r[:4] for r in rows] == [["0", "0", "head", "0.5"], ["0", "0", "head", "1"],
                                     ["0.5", "0", "head", "0.5"], ["0.5", "0", "head", "1"]]  # fmt: skip
    # no verifier asked for, the box calibration the weights' own, re-detections not confirmed, the reach not
    # kept after one, the template the weights' own, one re-detection candidate, no look-alikes remembered (their
    # margin the default), re-detections at their cells' centres, no ambiguous frame judged and every frame due
    # remembered, one bar for every re-detection (the defaults)
    defaults = ("off", "off", "1", "head", "0", "0", "head", "1", "0", "0.1", "0", "off", "off", "off", "off")
    assert {tuple(r[4:19]) for r in rows} == {defaults}
    for r in rows:
        assert 0.0 <= float(r[19]) <= 1.0 and r[20].endswith("%") and 0.0 <= float(r[-1]) <= 1.0
    assert rows[0][20] == rows[1][20] == "0.0%"  # with both thresholds at 0 only a flat map is ever lost


def test_score_candidates_reads_the_box_heads_outputs(dataset: Path, box_weights: Path) -> None:
    done = run_tool("score_candidates.py", "--weights", str(box_weights), "--data", str(dataset), "--backend", "torch")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert len(rows) == 5 and rows[0][0].startswith("probability at the chosen cell")
    assert all(0.0 <= float(r[1]) <= 1.0 for r in rows)


def test_batch_cost_times_each_batch(box_weights: Path) -> None:
    pytest.importorskip("onnxruntime")
    args = ["--targets", "1,2", "--threads", "1", "--calls", "4"]
    done = run_tool("batch_cost.py", "--weights", str(box_weights), *args)
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert [r[0] for r in rows] == ["1", "2"] and all(float(r[1]) > 0 for r in rows)


@pytest.mark.slow  # four NNCF quantizations: about 20 s on 2 cores
def test_int8_fidelity_measures_each_recipe_on_the_other_half(dataset: Path, box_weights: Path) -> None:
    for module in ("nncf", "openvino", "onnxruntime"):
        pytest.importorskip(module)
    args = ["--weights", str(box_weights), "--data", str(dataset), "--recipes", "shipped,w8", "--samples", "6"]
    done = run_tool("int8_fidelity.py", *args)
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert [r[:2] for r in rows] == [["shipped", "half0"], ["shipped", "half1"], ["w8", "half0"], ["w8", "half1"]]
    for r in rows:
        assert 0.0 <= float(r[2].rstrip("%")) <= 100.0 and float(r[3].rstrip("%")) >= 0.0 and float(r[5]) >= 0.0
    bad = run_tool("int8_fidelity.py", *args[:4], "--recipes", "w9")
    assert bad.returncode != 0 and "unknown recipe part 'w9'" in bad.stderr


@pytest.mark.slow  # a tool run in its own process over a box-head export: about 7 s on 2 cores
def test_search_size_rewrites_the_crop_and_retags_what_depends_on_the_weights(box_weights: Path, tmp_path) -> None:
    import numpy as np
    import torch

    from tracker import SiamFCTracker
    from tracker.appearance import Embedding, embedding_path
    from tracker.tuned import save_settings, tuned_settings
    from tracker.weights import load_weights

    source = tmp_path / "box.safetensors"
    source.write_bytes(box_weights.read_bytes())
    save_settings(source, {"penalty_k": 0.2, "box_lr": 0.15}, {"data": "x"})
    kernel = load_weights(source).embed(torch.zeros(1, 3, 127, 127))[0].detach().numpy()
    Embedding(mean=np.zeros_like(kernel)).save(embedding_path(source), source, {"kind": "centred"})
    out = tmp_path / "small.safetensors"
    done = run_tool("search_size.py", "--weights", str(source), "--search-size", "223", "--out", str(out))
    assert done.returncode == 0, done.stderr
    small, big = load_weights(out), load_weights(source)
    assert (small.config.search_size, big.config.search_size) == (223, 255)
    assert all(torch.equal(a, b) for a, b in zip(small.state_dict().values(), big.state_dict().values(), strict=True))
    assert tuned_settings(out) == {"penalty_k": 0.2, "box_lr": 0.15}  # made for the new file's digest
    assert Embedding.load(embedding_path(out), out).info["search_size_set"]["was"] == 255
    with torch.no_grad():
        maps = small.score(small.embed(torch.zeros(1, 3, 127, 127)), torch.zeros(1, 3, 223, 223))
    assert maps["cls"].shape[-1] == small.config.response_size == 14
    frame = np.zeros((240, 320, 3), np.uint8)
    tracker = SiamFCTracker(out, backend="torch")
    tracker.init(frame, (100, 80, 40, 30))
    assert tracker.update(frame).box.w > 0
    bad = run_tool("search_size.py", "--weights", str(source), "--search-size", "225", "--out", str(tmp_path / "b"))
    assert bad.returncode == 2 and "multiples of 16 minus 1" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "b").exists()
    again = run_tool("search_size.py", "--weights", str(source), "--search-size", "239", "--out", str(out))
    assert again.returncode == 2 and "exists" in again.stderr and load_weights(out).config.search_size == 223
    # settings made for other weights are refused, not re-tagged as the new file's
    (tmp_path / "box_settings.json").write_text((tmp_path / "small_settings.json").read_text())
    stale = run_tool("search_size.py", "--weights", str(source), "--search-size", "239", "--out", str(tmp_path / "c"))
    assert stale.returncode == 2 and "other weights" in stale.stderr and not (tmp_path / "c").exists()
