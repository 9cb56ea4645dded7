"""Readers for annotated video sequences, shared by training and evaluation.

Every reader returns :class:`Sequence` objects with 0-based ``x, y, w, h`` boxes and NaN rows where the
target is absent. Formats:

- ``plain``: ``<seq>/img/*.jpg`` + ``groundtruth.txt`` (0-based, ``nan`` rows = absent).
- ``otb``: ``<seq>/img/*.jpg`` + ``groundtruth_rect.txt`` (1-based; comma, tab or space separated).
- ``got10k``: ``list.txt`` naming sequence folders with frames + ``groundtruth.txt`` (+ ``absence.label``).
- ``vot``: ``<seq>/color/*.jpg`` (or frames beside it) + ``groundtruth.txt`` of 4-value boxes or 8-value
  polygons (turned into their axis-aligned bounding box).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

FORMATS = ("auto", "plain", "otb", "got10k", "vot")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Sequence:
    """One annotated sequence: frame paths and (N, 4) float boxes ``x, y, w, h`` (NaN row = target absent)."""

    name: str
    frames: list[Path]
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def visible(self) -> np.ndarray:
        """Boolean mask of frames where the target is annotated with a positive size."""
        b = self.boxes
        return np.isfinite(b).all(1) & (np.nan_to_num(b[:, 2]) > 0) & (np.nan_to_num(b[:, 3]) > 0)


def natural_key(path: Path) -> list[object]:
    """Sort key that puts frame_2 before frame_10, which a plain string sort gets wrong."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """The images in ``folder`` (by suffix, :data:`IMAGE_SUFFIXES`), in natural order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)


def _read_rows(path: Path) -> np.ndarray:
    """Rows of numbers separated by commas, tabs or spaces; 'nan' allowed; blank lines skipped."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            rows.append([float(v) for v in re.split(r"[,\s]+", line)])
        except ValueError:
            raise InputError(f"{path}:{i}: not a row of numbers: {line[:60]!r}") from None
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise InputError(f"{path}: rows have different numbers of values {sorted(widths)}")
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _to_boxes(rows: np.ndarray, path: Path) -> np.ndarray:
    """4-value boxes as they are; 8-value polygons -> their axis-aligned bounding box."""
    if rows.shape[1] == 4:
        return rows
    if rows.shape[1] == 8:
        xs, ys = rows[:, 0::2], rows[:, 1::2]
        x0, y0 = xs.min(1), ys.min(1)
        return np.stack([x0, y0, xs.max(1) - x0, ys.max(1) - y0], 1)
    raise InputError(f"{path}: expected 4 (x,y,w,h) or 8 (polygon) values a row, got {rows.shape[1]}")


def _make(name: str, frames: list[Path], boxes: np.ndarray, gt_path: Path) -> Sequence:
    if not frames:
        raise InputError(f"sequence {name}: no images found")
    if len(boxes) < len(frames):
        raise InputError(f"{gt_path}: {len(boxes)} boxes for {len(frames)} frames")
    boxes = boxes[: len(frames)].copy()
    boxes[~(boxes[:, 2:] > 0).all(1)] = np.nan  # zero-size or NaN rows mean 'absent'
    return Sequence(name, frames, boxes)


def read_sequence(folder: str | Path, fmt: str = "auto") -> Sequence:
    """Read one sequence folder in format ``fmt`` (or detect it)."""
    folder = Path(folder)
    fmt = detect_sequence_format(folder) if fmt == "auto" else fmt
    if fmt == "otb":
        gt = folder / "groundtruth_rect.txt"
        return _make(folder.name, image_files(folder / "img"), _read_rows(gt) - [1, 1, 0, 0], gt)
    gt = folder / "groundtruth.txt"
    if fmt == "plain":
        return _make(folder.name, image_files(folder / "img"), _to_boxes(_read_rows(gt), gt), gt)
    if fmt == "vot":
        frames = image_files(folder / "color") if (folder / "color").is_dir() else image_files(folder)
        return _make(folder.name, frames, _to_boxes(_read_rows(gt), gt), gt)
    if fmt == "got10k":
        seq = _make(folder.name, image_files(folder), _to_boxes(_read_rows(gt), gt), gt)
        absence = folder / "absence.label"
        if absence.is_file():
            flags = _read_rows(absence)[: len(seq), 0] > 0
            seq.boxes[: len(flags)][flags] = np.nan
        return seq
    raise InputError(f"unknown sequence format {fmt!r}; choose one of {', '.join(FORMATS)}")


def detect_sequence_format(folder: Path) -> str:
    """Guess a sequence folder's format from the files it holds."""
    if (folder / "groundtruth_rect.txt").is_file():
        return "otb"
    if (folder / "groundtruth.txt").is_file():
        if (folder / "img").is_dir():
            return "plain"
        if (folder / "absence.label").is_file() or (folder / "meta_info.ini").is_file():
            return "got10k"
        return "vot"
    raise InputError(f"{folder}: no groundtruth.txt or groundtruth_rect.txt; not a sequence folder")


def read_dataset(root: str | Path, fmt: str = "auto") -> list[Sequence]:
    """All sequences under ``root`` (a dataset folder, or a single sequence folder), sorted by name.

    A ``list.txt`` (GOT-10k, VOT) names the sequences; otherwise every sub-folder that looks like a sequence.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder not found: {root}")
    listing = root / "list.txt"
    if listing.is_file():
        names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
        if fmt == "auto" and not (root / names[0] / "groundtruth_rect.txt").is_file():
            fmt = "got10k" if not (root / names[0] / "img").is_dir() else "plain"
        folders = [root / n for n in names]
    elif (root / "groundtruth.txt").is_file() or (root / "groundtruth_rect.txt").is_file():
        folders = [root]
    else:
        folders = sorted(
            d for d in root.iterdir()
            if d.is_dir() and ((d / "groundtruth.txt").is_file() or (d / "groundtruth_rect.txt").is_file())
        )  # fmt: skip
    if not folders:
        raise InputError(f"{root}: no sequences found (expected sub-folders with a groundtruth file)")
    return [read_sequence(f, fmt) for f in folders]
