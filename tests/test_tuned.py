"""Decoder settings chosen for one weights file (tracker.tuned): taken where the config leaves them unset, checked
to be made for those weights, carried by exports, and the shipped default's file is its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import make_sequence

from tracker import MultiTracker, SiamFCTracker, TrackerConfig
from tracker.config import ConfigError
from tracker.errors import InputError, WeightsError
from tracker.heads.box import BoxSearch
from tracker.shipped import MODELS, model_weights
from tracker.tuned import TUNABLE, save_settings, settings_path, tuned_settings, with_tuned

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def own_box_weights(box_weights: Path, tmp_path: Path) -> Path:
    path = tmp_path / "box.safetensors"
    path.write_bytes(box_weights.read_bytes())
    return path


def test_weights_without_a_settings_file_run_on_the_heads_defaults(own_box_weights: Path) -> None:
    assert tuned_settings(own_box_weights) == {}
    tracker = SiamFCTracker(own_box_weights, backend="torch")
    assert tracker.config.penalty_k is None and tracker.config.box_lr is None
    assert (tracker._search.penalty_k, tracker._search.box_lr) == (BoxSearch.PENALTY_K, BoxSearch.BOX_LR)


def test_the_weights_settings_fill_what_the_config_leaves_unset(own_box_weights: Path) -> None:
    path = save_settings(own_box_weights, {"penalty_k": 0.2, "box_lr": 0.15}, {"data": "x"})
    assert path == own_box_weights.with_name("box_settings.json")
    assert tuned_settings(own_box_weights) == {"penalty_k": 0.2, "box_lr": 0.15}
    tracker = SiamFCTracker(own_box_weights, backend="torch")
    assert (tracker.config.penalty_k, tracker.config.box_lr) == (0.2, 0.15)
    assert (tracker._search.penalty_k, tracker._search.box_lr) == (0.2, 0.15)
    given = SiamFCTracker(own_box_weights, backend="torch", config=TrackerConfig(box_lr=0.5))
    assert (given.config.penalty_k, given.config.box_lr) == (0.2, 0.5)  # a value given always wins
    multi = MultiTracker(own_box_weights, backend="torch")
    assert (multi.config.penalty_k, multi.config.box_lr) == (0.2, 0.15)
    with pytest.raises(InputError, match="exists"):
        save_settings(own_box_weights, {"box_lr": 0.3}, {})
    save_settings(own_box_weights, {"box_lr": 0.3}, {}, overwrite=True)
    assert tuned_settings(own_box_weights) == {"box_lr": 0.3}


def test_the_settings_change_the_track(own_box_weights: Path) -> None:
    frames, boxes = make_sequence(n=12, seed=3)
    runs = []
    for settings in ({"penalty_k": 0.0, "box_lr": 1.0}, {"penalty_k": 0.5, "box_lr": 0.05}):
        save_settings(own_box_weights, settings, {}, overwrite=True)
        tracker = SiamFCTracker(own_box_weights, backend="torch")
        tracker.init(frames[0], boxes[0])
        runs.append(np.array([tracker.update(f).box for f in frames[1:]]))
    assert not np.allclose(runs[0], runs[1])


def test_a_bad_settings_file_is_one_clear_error(own_box_weights: Path, handset_weights: Path, tmp_path: Path) -> None:
    path = settings_path(own_box_weights)
    for text, message in (
        ("{not json", "cannot read the settings file"),
        (json.dumps({"format": "other", "settings": {}}), "is not a siamtrack settings file"),
    ):
        path.write_text(text)
        with pytest.raises(WeightsError, match=message):
            SiamFCTracker(own_box_weights, backend="torch")
    other = tmp_path / "other" / "handset.safetensors"
    other.parent.mkdir()
    other.write_bytes(handset_weights.read_bytes())
    path.write_text(save_settings(other, {"box_lr": 0.3}, {}).read_text())  # another network's file
    with pytest.raises(WeightsError, match="chosen for other weights"):
        SiamFCTracker(own_box_weights, backend="torch")
    path.unlink()
    data = json.loads(save_settings(own_box_weights, {"box_lr": 0.3}, {}).read_text())
    for settings, message in (
        ({"threads": 2}, "not tunable"),
        ({"box_lr": True}, "not tunable"),
        ({"box_lr": 2.0}, "box_lr must be in"),
    ):
        path.write_text(json.dumps({**data, "settings": settings}))
        with pytest.raises(WeightsError, match=message):
            with_tuned(TrackerConfig(), own_box_weights)
    with pytest.raises(InputError, match="not settings a weights file carries"):
        save_settings(own_box_weights, {"threads": 1}, {}, overwrite=True)


def test_config_checks_the_box_fields_when_given() -> None:
    with pytest.raises(ConfigError, match="penalty_k must be >= 0"):
        TrackerConfig(penalty_k=-0.1)
    with pytest.raises(ConfigError, match="box_lr must be in"):
        TrackerConfig(box_lr=0.0)
    assert set(TUNABLE) <= {f for f in TrackerConfig.__dataclass_fields__}


def test_an_export_carries_the_settings(own_box_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from tracker.backends.exported import export_graphs

    save_settings(own_box_weights, {"penalty_k": 0.2, "box_lr": 0.15}, {})
    export_graphs(own_box_weights, tmp_path / "graphs")
    assert (tmp_path / "graphs" / "settings.json").is_file()
    tracker = SiamFCTracker(tmp_path / "graphs", backend="onnx")
    assert (tracker.config.penalty_k, tracker.config.box_lr) == (0.2, 0.15)


def test_the_shipped_settings_files_are_their_weights_own() -> None:
    for name, file in MODELS.items():
        weights = model_weights(name)
        if settings_path(weights).is_file():
            settings = tuned_settings(weights)  # made for these weights, in range
            assert settings and set(settings) <= set(TUNABLE), file
            chosen = json.loads(settings_path(weights).read_text())["chosen"]
            assert chosen["data"] != "dev" and "tune_tracker.py" in chosen["command"]


@pytest.mark.slow  # tool runs in their own processes: about 5 s on 2 cores
def test_tune_tracker_save_refuses_to_overwrite(own_box_weights: Path, tmp_path: Path) -> None:
    save_settings(own_box_weights, {"box_lr": 0.3}, {})
    script = [sys.executable, str(ROOT / "tools" / "tune_tracker.py"), "--weights", str(own_box_weights)]
    run = subprocess.run([*script, "--data", str(tmp_path), "--save"], capture_output=True, text=True)
    assert run.returncode == 2 and "exists; add --overwrite" in run.stderr
    run = subprocess.run([*script, "--data", str(tmp_path), "--overwrite"], capture_output=True, text=True)
    assert run.returncode == 2 and "--overwrite is for --save" in run.stderr
    grid = ["--grid", "scale_lr=0.3,0.4", "--save", "--overwrite"]
    run = subprocess.run([*script, "--data", str(tmp_path), *grid], capture_output=True, text=True)
    assert run.returncode == 2 and "carries only" in run.stderr and "not scale_lr" in run.stderr
    assert tuned_settings(own_box_weights) == {"box_lr": 0.3}
