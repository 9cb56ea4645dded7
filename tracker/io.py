"""Frame sources (video file, image folder, camera) and output writers that never leave half-written files.

Boxes are 0-based ``x, y, w, h`` floats in pixels; frames are ``H x W x 3`` uint8 BGR, as OpenCV reads them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from .atomic import atomic_path, temp_beside
from .datasets import IMAGE_SUFFIXES, image_files
from .errors import InputError

DEFAULT_FPS = 30.0  # for image folders and for streams that do not report a rate
VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}
BOX_COLUMNS = ("frame", "target", "x", "y", "w", "h", "score", "found")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence what OpenCV and FFmpeg print straight to file descriptor 2 (several lines per failed open);
    callers turn the failure into one clear error of their own instead. This redirects the whole process's
    stderr meanwhile, so keep it around short calls made once (opening a file), never around a loop."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr (e.g. a windowed app): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FrameSource:
    """Iterate over the frames of a video file, a folder of images, or a camera, as ``(index, frame)``.

    ``index`` is the frame's 0-based position in the source (for folders: in the natural-sorted image list),
    so it stays honest when a frame is skipped. An unreadable image inside a folder is skipped (its index goes
    to ``skipped``) and reported through ``on_warning(message)`` (default: a ``RuntimeWarning``), as is a
    video that ends before the frame count its header announced; an unreadable first frame is an error.
    Videos and cameras are read once: iterate a source once.

    Args:
        spec: a video file, a folder of images, or a camera index (an int or an integer string like "0").
        start_frame: index of the first frame to yield (earlier video and camera frames are read and dropped).
        on_warning: called with one line per skipped frame or early end.

    Attributes:
        kind: "video", "images" or "camera".
        frame_count: frames in the whole source, or None for a camera (for videos, as the container reports).
        fps: frames per second (``DEFAULT_FPS`` when the source reports none, and for folders).
        name: the source as given, for messages.
        skipped: indices of the frames skipped so far.

    Raises:
        InputError: a missing, unreadable, empty or undecodable file; a folder without images; a camera that
            does not open; ``start_frame`` negative or past the end.
    """

    def __init__(
        self,
        spec: str | os.PathLike | int,
        start_frame: int = 0,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if start_frame < 0:
            raise InputError(f"start frame must be >= 0, got {start_frame}")
        self.start_frame = start_frame
        self.name = str(spec)
        self._warn = on_warning or (lambda msg: warnings.warn(msg, RuntimeWarning, stacklevel=2))
        self.skipped: list[int] = []
        self._capture: cv2.VideoCapture | None = None
        self._images: list[Path] = []
        self.fps = DEFAULT_FPS
        if isinstance(spec, int) or re.fullmatch(r"\d+", str(spec)):
            self.kind, self.frame_count = "camera", None
            self._open_capture(int(spec), cv2.CAP_ANY, f"camera {int(spec)} could not be opened")
            return
        path = Path(spec)
        if not path.exists():
            raise InputError(f"video not found: {path}")
        if path.is_dir():
            self.kind = "images"
            self._images = image_files(path)
            if not self._images:
                raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
            self.frame_count = len(self._images)
        else:
            self.kind = "video"
            if not os.access(path, os.R_OK):
                raise InputError(f"cannot read {path}: permission denied")
            if path.stat().st_size == 0:
                raise InputError(f"video file is empty (0 bytes): {path}")
            # FFmpeg by name: the default would read a name like "img_%02d.jpg" as an image-sequence pattern
            self._open_capture(str(path), cv2.CAP_FFMPEG, f"cannot decode {path} as a video (corrupt or unsupported)")
            count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = count if count > 0 else None
        if self.frame_count is not None and start_frame >= self.frame_count:
            raise InputError(f"start frame {start_frame} is past the end of {path} ({self.frame_count} frames)")

    def _open_capture(self, target: str | int, api: int, error: str) -> None:
        with quiet_native_stderr():
            capture = cv2.VideoCapture(target, api)
        if not capture.isOpened():
            raise InputError(error)
        self._capture = capture
        fps = capture.get(cv2.CAP_PROP_FPS)
        if np.isfinite(fps) and 0 < fps < 1000:
            self.fps = float(fps)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self._iter_images() if self.kind == "images" else self._iter_capture()

    def _iter_images(self) -> Iterator[tuple[int, np.ndarray]]:
        size = None  # (H, W) of the first frame: a tracked stream keeps one size
        for index in range(self.start_frame, len(self._images)):
            path = self._images[index]
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                if index == self.start_frame:
                    raise InputError(f"cannot read the first frame {path} (corrupt or not an image)")
                self.skipped.append(index)
                self._warn(f"skipped frame {index}: cannot read {path}")
                continue
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                self.skipped.append(index)
                self._warn(
                    f"skipped frame {index}: {path} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                    f"{size[1]}x{size[0]}"
                )
                continue
            yield index, frame

    def _iter_capture(self) -> Iterator[tuple[int, np.ndarray]]:
        capture, index = self._capture, 0
        while True:
            # no fd-2 redirection here: it would swallow other threads' output on every frame; FFmpeg's notes on
            # damaged packets are quietened once per process by the `track` command instead
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            if index >= self.start_frame:
                yield index, frame
            index += 1
        if index <= self.start_frame:
            what = f"camera {self.name}" if self.kind == "camera" else self.name
            raise InputError(f"{what} delivered no frame at index {self.start_frame} (read {index} frames)")
        if self.frame_count is not None and index < self.frame_count:
            self._warn(f"{self.name}: read {index} frames, its header announced {self.frame_count} (truncated?)")

    def close(self) -> None:
        """Release the camera or video file."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _temp_beside(path: Path) -> Path:
    """:func:`tracker.atomic.temp_beside`, a failure reported as an InputError naming ``path``."""
    try:
        return temp_beside(path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path, a hard link, or a symbolic link to it."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): only the same path would make them one
        return Path(a).resolve() == Path(b).resolve()


def check_not_inputs(outputs: dict[str, str | os.PathLike | None], source: str | os.PathLike) -> None:
    """Raise InputError if an output path (by option name, e.g. ``{"--output": path}``) is the source video, an
    image of the source folder, or another output, so that writing it would destroy data the run reads or writes.
    Hard links and symbolic links count as the file they lead to."""
    given = {flag: Path(p) for flag, p in outputs.items() if p}
    source = Path(source)
    inputs = image_files(source) if source.is_dir() else [source] if source.is_file() else []
    for flag, path in given.items():
        if path.exists():
            for inp in inputs:
                if same_file(path, inp):
                    raise InputError(f"{flag} {path} is the input {inp}: it would be overwritten; choose another path")
    flags = list(given)
    for i, first in enumerate(flags):
        for second in flags[i + 1 :]:
            if same_file(given[first], given[second]):
                raise InputError(f"{first} and {second} name the same file {given[first]}; choose two paths")


def check_writable(path: str | os.PathLike) -> None:
    """Raise InputError now, rather than after a long run, if ``path`` cannot be written: its nearest existing
    folder (``..`` resolved as the system will) is a file, or no file can be created in it. Leaves nothing
    behind, so a run that fails leaves no empty folders."""
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        message = f"cannot write {path}: no file can be created in the folder {folder} ({e.strerror or e})"
        raise InputError(message) from None


atomic_output = atomic_path  # write to a temporary file beside the target, renamed into place on success


def check_boxes_path(path: str | os.PathLike) -> Path:
    """Return ``path`` if it names a box file this module writes (``.csv`` or ``.json``), else raise InputError."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".json"):
        raise InputError(f"boxes file must end in .csv or .json, got {path.name!r}")
    return path


def write_boxes(path: str | os.PathLike, rows: Sequence[Sequence[object]]) -> None:
    """Write rows of ``frame, target, x, y, w, h, score, found`` (box: 0-based pixels) to ``.csv`` or ``.json``,
    atomically.

    CSV: a header line, then one line per row, ``found`` as 1 or 0. JSON: a list of objects with those keys,
    ``found`` as true or false.
    """
    path = check_boxes_path(path)
    records = [
        {"frame": int(f), "target": int(t), "x": round(float(x), 2), "y": round(float(y), 2),
         "w": round(float(w), 2), "h": round(float(h), 2), "score": round(float(s), 4), "found": bool(found)}
        for f, t, x, y, w, h, s, found in rows
    ]  # fmt: skip
    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".json":
            tmp.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")  # a row per line
        else:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(BOX_COLUMNS)
                writer.writerows([[r[c] if c != "found" else int(r[c]) for c in BOX_COLUMNS] for r in records])


class VideoOutput:
    """An annotated-video writer that writes to a temporary file and renames it into place on :meth:`commit`.

    The codec follows the extension (``.mp4``/``.m4v``/``.mov``/``.mkv``: mp4v, ``.avi``: MJPG). The frame size
    is taken from the first frame written. :meth:`close` without :meth:`commit` deletes the temporary file.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_FOURCC:
            raise InputError(f"output video must end in {', '.join(VIDEO_FOURCC)}; got {self.path.name!r}")
        self.fps = fps
        self._tmp = _temp_beside(self.path)
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        """Append one BGR uint8 frame (all frames must have the first frame's size)."""
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_FOURCC[self.path.suffix.lower()])
            with quiet_native_stderr():
                self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (frame.shape[1], frame.shape[0]))
            if not self._writer.isOpened():
                raise InputError(f"cannot write video {self.path} (codec unavailable or folder not writable)")
        self._writer.write(frame)

    def commit(self) -> None:
        """Finish the file and move it to its final name."""
        if self._writer is None:
            raise InputError(f"no frames to write to {self.path}")
        self._writer.release()
        self._writer = None
        os.replace(self._tmp, self.path)

    def close(self) -> None:
        """Release the writer; delete the temporary file if :meth:`commit` did not move it into place."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# box colours (BGR) by target, none of them red, which marks a lost target
TARGET_COLOURS = ((0, 200, 0), (255, 160, 0), (0, 215, 255), (255, 0, 255), (255, 255, 0), (0, 128, 255), (160, 80, 0))
LOST_COLOUR = (0, 0, 255)


def draw_results(frame: np.ndarray, results: Sequence[object], label: str = "") -> np.ndarray:
    """A copy of ``frame`` with each target's box drawn (``results``: TrackResult-like, with ``box`` x, y, w, h in
    0-based pixels, ``score`` and ``found``, in target order): in the target's colour when found, red with a
    "LOST" mark when not, the score above it, prefixed by the target number when there are several targets; and
    ``label`` (e.g. the frame index) in the top-left corner."""
    out = frame.copy()
    for target, r in enumerate(results):
        x, y, w, h = (float(v) for v in r.box)
        colour = TARGET_COLOURS[target % len(TARGET_COLOURS)] if r.found else LOST_COLOUR
        cv2.rectangle(out, (round(x), round(y)), (round(x + w - 1), round(y + h - 1)), colour, 2)
        text = f"{r.score:.2f}" if r.found else f"LOST {r.score:.2f}"
        text = f"{target}: {text}" if len(results) > 1 else text
        cv2.putText(out, text, (round(x), max(12, round(y) - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    if label:
        cv2.putText(out, label, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out
