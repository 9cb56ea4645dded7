"""The wheel: built from a copy of the checkout, installed in a fresh virtual environment, it tracks the demo
clip with the weights it carries, and it installs no top-level ``train``."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tracker.appearance import embedding_path
from tracker.backends.graphs import shipped_int8_path
from tracker.shipped import MODELS, WEIGHTS_NAME
from tracker.tuned import settings_path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "tracker", "train", "weights")


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SIAMTRACK_WEIGHTS", "PIP_REQUIRE_VIRTUALENV")
    }
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout}\n{done.stderr}"
    return done


def test_setup_ships_every_named_model():
    import ast

    tree = ast.parse((ROOT / "setup.py").read_text())
    (shipped,) = [n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "SHIPPED"]
    kept_beside = (embedding_path, settings_path, shipped_int8_path, lambda w: shipped_int8_path(w, 8))
    beside = [f(ROOT / "weights" / file) for file in MODELS.values() for f in kept_beside]
    expected = [*MODELS.values(), *(p.name for p in beside if p.is_file())]
    assert sorted(ast.literal_eval(shipped)) == sorted(expected)
    assert all((ROOT / "weights" / file).is_file() for file in ast.literal_eval(shipped))


@pytest.mark.slow
def test_wheel_carries_the_weights_and_tracks(tmp_path):
    pytest.importorskip("setuptools", minversion="70.1", reason="building the wheel needs setuptools >= 70.1")
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:  # a copy, so the build leaves nothing in the checkout
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    # no build isolation: everything the build needs (setuptools) is installed, and no network is needed
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w", "dist", "-q"], tmp_path)
    (wheel,) = (tmp_path / "dist").glob("siamtrack-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"tracker/data/{file}" for file in MODELS.values()} <= set(names)  # every named model
    assert not [n for n in names if n.startswith("train/")]  # training stays in the checkout
    packaged = zipfile.ZipFile(wheel).read(f"tracker/data/{WEIGHTS_NAME}")
    assert packaged == (ROOT / "weights" / WEIGHTS_NAME).read_bytes()

    # a fresh environment that sees this one's packages (torch, OpenCV...) through a .pth file: a path line adds
    # their folder but runs none of the .pth files in it, so this checkout's own editable install stays out
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path)
    ours = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages")]
    Path(purelib.stdout.strip(), "deps.pth").write_text("\n".join(ours) + "\n")
    run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel), "-q"], tmp_path)
    where = run([str(python), "-c", "import tracker; print(tracker.SiamFCTracker().weights)"], tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the installed package and its own weights

    work = tmp_path / "work"  # far from the checkout, so nothing resolves to it
    work.mkdir()
    track = venv / ("Scripts/track.exe" if os.name == "nt" else "bin/track")
    clip = ROOT / "demos" / "bobot.mp4"
    run([str(track), str(clip), "--bbox", "74,67,39,87", "--boxes", "boxes.csv"], work)
    rows = list(csv.DictReader((work / "boxes.csv").open()))
    assert len(rows) == 151 and sum(r["found"] == "1" for r in rows) > 100
