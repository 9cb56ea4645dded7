"""Shipped models by name: weights="accurate" / "classic" (and --weights NAME) resolve to their files, a path
works as before, and an unknown name is one clear error listing the names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker import SiamFCTracker, WeightsError
from tracker.cli import main as track_main
from tracker.shipped import DEFAULT_MODEL, MODELS, default_weights, model_weights, resolve_weights


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_name_is_a_shipped_file_that_loads(name):
    path = resolve_weights(name)
    assert path == model_weights(name) and path.name == MODELS[name] and path.is_file()
    assert SiamFCTracker(name, backend="torch").weights == path
    assert resolve_weights(Path(name)) == path  # as argparse's type=Path gives it


def test_default_is_a_named_model(monkeypatch):
    monkeypatch.delenv("SIAMTRACK_WEIGHTS", raising=False)
    assert default_weights() == model_weights(DEFAULT_MODEL)
    monkeypatch.setenv("SIAMTRACK_WEIGHTS", "classic")  # the variable takes a name too
    assert SiamFCTracker(backend="torch").weights == model_weights("classic")


def test_a_path_keeps_working(handset_weights):
    assert resolve_weights(str(handset_weights)) == handset_weights
    assert resolve_weights(handset_weights) == handset_weights


def test_unknown_name_lists_the_names(tmp_path, capsys):
    with pytest.raises(WeightsError, match=r"unknown model 'fsat': the shipped models are " + ", ".join(MODELS)):
        SiamFCTracker("fsat")
    with pytest.raises(WeightsError, match="not found|no such|does not exist"):
        SiamFCTracker(tmp_path / "missing.safetensors")  # a path stays a missing file, not a name
    video = Path(__file__).resolve().parent.parent / "demos" / "bobot.mp4"
    assert track_main([str(video), "--bbox", "74,67,39,87", "--weights", "fsat"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'fsat'" in err and "Traceback" not in err
