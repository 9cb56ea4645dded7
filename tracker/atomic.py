"""Writes that never leave a half-written file: write to a temporary name beside the target, then rename.

A new file gets the usual permissions (0o666 under the umask), not the private 0o600 of ``tempfile.mkstemp``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


def temp_beside(path: str | os.PathLike) -> Path:
    """Create an empty file in ``path``'s folder (created if missing) named like ``path`` with the same extension
    (writers such as cv2.VideoWriter pick the format from it); the same folder, so renaming it onto ``path``
    never crosses file systems. Raises OSError when the folder cannot be created or written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as e:  # name the file asked for, not the temporary one
            raise OSError(e.errno, e.strerror, str(path)) from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; when the block ends normally it replaces ``path``
    (``os.replace``, atomic), and on an error it is deleted, so ``path`` is never left half written."""
    path = Path(path)
    tmp = temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _existing_ancestor(path: Path) -> Path:
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    return folder


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, last: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder to fill; when the block ends normally its files appear in ``path``, and
    on an error nothing is left behind: no temporary folder, and no ``path`` or parent folder created.

    A missing ``path`` (parents included) is created by renaming the temporary folder into place, so readers see
    all its files or none. Into an existing folder the files are moved one by one (each atomically), the one
    named ``last`` (e.g. the metadata that marks the folder complete) after all the others.
    """
    path = Path(path)
    tmp = Path(os.path.join(_existing_ancestor(path), f".{path.name}.{secrets.token_hex(4)}.part"))
    tmp.mkdir()
    try:
        yield tmp
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(tmp, path)
                return
            except OSError:  # created meanwhile by another writer: move the files in below
                pass
        for name in sorted(os.listdir(tmp), key=lambda n: n == last):
            os.replace(tmp / name, path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
