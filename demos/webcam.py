"""Live tracking from a webcam: drag a box around the target, then watch it being followed.

Keys: ``r`` re-selects the target, ``q`` (or Esc) quits. The update() rate and the score are overlaid.
Needs a camera and a display; without either it prints one line and exits with code 2.

    python demos/webcam.py            # camera 0, shipped weights
    python demos/webcam.py 1 --weights my.safetensors --backend onnx
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import cv2
import numpy as np

from tracker import SiamFCTracker, TrackerError, TrackResult

WINDOW = "siamtrack webcam"


def has_display() -> bool:
    """Whether a window can open; on Linux (X11/Wayland) that needs DISPLAY or WAYLAND_DISPLAY, and OpenCV's
    GUI calls abort the process without one, so this is checked first."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def select_target(frame: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (x, y, w, h, 0-based pixels) the user drags on ``frame``, or None if the selection is cancelled."""
    x, y, w, h = cv2.selectROI(WINDOW, frame, showCrosshair=True, fromCenter=False)
    return (x, y, w, h) if w > 0 and h > 0 else None


def draw(frame: np.ndarray, result: TrackResult, fps: float) -> np.ndarray:
    """``frame`` with the tracked box (green when found, red when lost), its score and the update() rate."""
    x, y, w, h = (round(v) for v in result.box)
    colour = (0, 200, 0) if result.found else (0, 0, 255)
    cv2.rectangle(frame, (x, y), (x + w - 1, y + h - 1), colour, 2)
    status = f"score {result.score:.2f}" + ("" if result.found else " LOST")
    cv2.putText(frame, f"{fps:.0f} fps  {status}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    cv2.putText(frame, "r: reselect  q: quit", (8, frame.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
    return frame


def track_live(camera: cv2.VideoCapture, tracker: SiamFCTracker, frame: np.ndarray) -> str | None:
    """Select, track and show until the user quits; returns an error message if the camera stops."""
    box = select_target(frame)
    if box is None:
        return None
    tracker.init(frame, box)
    fps = 0.0
    while True:
        ok, frame = camera.read()
        if not ok:
            return "the camera stopped delivering frames"
        start = time.perf_counter()
        result = tracker.update(frame)
        rate = 1.0 / max(time.perf_counter() - start, 1e-6)
        fps = rate if fps == 0.0 else 0.9 * fps + 0.1 * rate  # smoothed, or the number flickers unreadably
        cv2.imshow(WINDOW, draw(frame, result, fps))
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return None
        if key == ord("r"):
            box = select_target(frame)
            if box is not None:
                tracker.init(frame, box)
                fps = 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the webcam demo; returns the exit code (0 done, 2 no camera, no display or a tracker error)."""
    parser = argparse.ArgumentParser(description="Track a target live from a webcam (r reselects, q quits).")
    parser.add_argument("camera", nargs="?", type=int, default=0, help="camera index (default 0)")
    parser.add_argument("--weights", help="weights file (default: the shipped weights/mobilenetv2_box.safetensors)")
    parser.add_argument("--backend", default="auto", help="auto, torch, onnx or tensorrt (default: auto)")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"webcam: error: {message}", file=sys.stderr)
        return 2

    if not has_display():
        return fail("no display available (DISPLAY and WAYLAND_DISPLAY are unset); this demo needs a window")
    # OpenCV logs several lines when a camera does not open; the message below says it in one
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        tracker = SiamFCTracker(args.weights, backend=args.backend)
    except TrackerError as e:
        return fail(str(e))
    camera = cv2.VideoCapture(args.camera)
    try:
        ok, frame = camera.read() if camera.isOpened() else (False, None)
        if not ok:
            return fail(f"camera {args.camera} could not be opened or delivered no frame")
        error = track_live(camera, tracker, frame)
        return fail(error) if error else 0
    except TrackerError as e:
        return fail(str(e))
    finally:
        camera.release()
        cv2.destroyAllWindows()


if __name__ == "__main__":
    sys.exit(main())
