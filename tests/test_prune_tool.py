"""tools/prune_expansions.py: a pruned MobileNetV2 box-head network that rebuilds itself from its file, its blocks'
outputs refitted, and its input checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from synthetic import write_dataset

from tracker.weights import load_weights

ROOT = Path(__file__).resolve().parent.parent
TOOL = [sys.executable, str(ROOT / "tools" / "prune_expansions.py")]


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*TOOL, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow  # a tool run in its own process: about 10 s on 2 cores
def test_prune_writes_a_network_that_rebuilds_itself(box_weights, alexnet_weights, tmp_path):
    data = write_dataset(tmp_path / "data", {"a": 1, "b": 2, "held": 3}, n=12)
    out = tmp_path / "pruned.safetensors"
    common = ["--data", str(data), "--holdout", "held", "--samples", "8"]
    done = run("--weights", str(box_weights), *common, "--blocks", "2-3", "--drop", "0.5", "--out", str(out))
    assert done.returncode == 0, done.stderr
    full, pruned = load_weights(box_weights), load_weights(out)
    counts = pruned.config.expansions
    hidden = [b.layers[-1].conv.in_channels for b in full.backbone.features if hasattr(b, "layers")]
    assert list(counts) == [hidden[0], hidden[1] // 2, hidden[2] // 2, *hidden[3:]]
    assert "block 2: kept" in done.stdout and "peak within one cell" in done.stdout  # the refit and the check
    z, x = torch.rand(2, 3, 127, 127) * 255, torch.rand(2, 3, 255, 255) * 255
    with torch.no_grad():
        assert pruned.eval()(z, x)["cls"].shape == full.eval()(z, x)["cls"].shape
    again = run("--weights", str(box_weights), *common, "--out", str(out))
    assert again.returncode != 0 and "exists" in again.stderr  # never overwrites a file
    other = run("--weights", str(alexnet_weights), *common, "--out", str(tmp_path / "other.safetensors"))
    assert other.returncode != 0 and "MobileNetV2" in other.stderr
    first = run("--weights", str(box_weights), *common, "--blocks", "1", "--out", str(tmp_path / "first.safetensors"))
    assert first.returncode != 0 and "does not expand" in first.stderr
