"""`track-export` as a command: one-line errors with exit 2, nothing created on failure, a fast --help."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracker import export
from tracker.backends.graphs import META_FILE
from tracker.shipped import default_weights


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and err.startswith("track-export: error:") and "Traceback" not in err, err
    return err


def test_without_onnx_one_line_and_no_folder(handset_weights, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    out = tmp_path / "graphs"
    assert export.main(["--weights", str(handset_weights), "--out", str(out)]) == 2
    assert "pip install 'siamtrack[onnx]'" in error_line(capsys)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_out_that_is_a_file(handset_weights, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    assert export.main(["--weights", str(handset_weights), "--out", str(taken)]) == 2
    assert "is a file" in error_line(capsys)
    assert export.main(["--weights", str(handset_weights), "--out", str(taken / "sub")]) == 2
    assert "not a writable folder" in error_line(capsys)
    assert taken.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_out(handset_weights, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert export.main(["--weights", str(handset_weights), "--out", str(locked / "graphs")]) == 2
        assert "not a writable folder" in error_line(capsys)
    finally:
        locked.chmod(0o700)


def test_unwritable_out_as_any_user(handset_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as a read-only folder looks to a non-root user
    assert export.main(["--weights", str(handset_weights), "--out", str(tmp_path / "graphs")]) == 2
    assert "not a writable folder" in error_line(capsys) and list(tmp_path.iterdir()) == []


def test_bad_weights_leave_no_folder(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\0" * 64)
    for weights in (corrupt, tmp_path / "missing.safetensors"):
        assert export.main(["--weights", str(weights), "--out", str(tmp_path / "a" / "graphs")]) == 2
        assert weights.name in error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.safetensors"]  # no folder, no temporary


def test_bad_arguments_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        export.main(["--out", "x", "--targets", "two"])
    assert e.value.code == 2 and "--targets" in error_line(capsys)
    assert export.main(["--out", "x", "--targets", "0"]) == 2
    assert ">= 1" in error_line(capsys) and not Path("x").exists()


def test_weights_default_to_the_shipped_ones(handset_weights, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SIAMTRACK_WEIGHTS", raising=False)
    assert default_weights().is_file()  # the shipped weights, found from a checkout
    monkeypatch.setenv("SIAMTRACK_WEIGHTS", str(handset_weights))  # a small stand-in, cheap to export
    out = tmp_path / "new" / "graphs"  # missing parents are created
    assert export.main(["--out", str(out), "--scales", "1"]) == 0
    assert (out / META_FILE).is_file() and "wrote" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["graphs"]  # no temporary left beside


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom tracker import export\ntry:\n    export.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "--weights" in run.stdout and "siamtrack[onnx]" in run.stdout


def test_python_m_form_runs_cleanly():
    command = [sys.executable, "-m", "tracker.export", "--help"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == "" and run.stdout.startswith("usage: track-export")
