"""Atomic writes: the target is replaced whole or not at all, folders appear complete, and new files get the
usual permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tracker.atomic import atomic_folder, atomic_path, write_text
from tracker.config import ModelConfig
from tracker.model import SiamFC
from tracker.weights import load_weights, save_weights


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_new_files_follow_the_umask(tmp_path, umask_022):
    write_text(tmp_path / "a.txt", "x")
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_weights_are_saved_with_the_usual_permissions(tmp_path, umask_022):
    path = tmp_path / "sub" / "w.safetensors"
    save_weights(SiamFC(ModelConfig(backbone="handset")), path)
    assert path.stat().st_mode & 0o777 == 0o644  # not 0o600: others may read shipped or shared weights
    assert load_weights(path).config.backbone == "handset"
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]


def test_failed_folder_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_folder(tmp_path / "a" / "b" / "out") as tmp:
        (tmp / "f").write_text("x")
        raise RuntimeError("failed")
    assert list(tmp_path.iterdir()) == []


def test_folder_appears_whole_or_fills_an_existing_one(tmp_path):
    out = tmp_path / "a" / "out"
    with atomic_folder(out, last="meta") as tmp:
        for name in ("meta", "one", "two"):
            (tmp / name).write_text(name)
    assert sorted(p.name for p in out.iterdir()) == ["meta", "one", "two"]
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["out"]
    moved: list[str] = []
    real = os.replace

    def spy(src, dst, *a):
        moved.append(Path(dst).name)
        return real(src, dst, *a)

    os.replace = spy
    try:
        with atomic_folder(out, last="meta") as tmp:
            for name in ("meta", "one", "three"):
                (tmp / name).write_text(name + "2")
    finally:
        os.replace = real
    assert moved[-1] == "meta" and sorted(moved) == ["meta", "one", "three"]  # the marker file last
    assert (out / "one").read_text() == "one2" and (out / "two").read_text() == "two"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["out"]
