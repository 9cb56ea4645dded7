"""What the trackers answer each frame: :class:`TrackResult` (the decoders build it, the trackers return it)."""

from __future__ import annotations

from dataclasses import dataclass

from .geometry import Box


@dataclass(frozen=True)
class TrackResult:
    """One frame's answer: ``box`` (x, y, w, h floats, 0-based pixels, inside the frame, w, h >= 1), ``score``
    (in [0, 1]; for a box head the probability ``sigmoid(cls) * sigmoid(quality)`` at the chosen cell; for
    SiamFC's head the peak response as a probability relative to the target's on the first frame tracked, capped
    at 1: each is what tells a target in view from one gone best for its head, docs/ROBUSTNESS.md) and ``found``
    (target judged present; when False, ``box`` is the last box where it was). A verifying tracker
    (``TrackerConfig.verify_threshold``, or ``verify_redetect``: the default weights' check of re-detections)
    also gives ``similarity``: the cosine similarity in [-1, 1] of the box's
    appearance with the target's (:mod:`tracker.appearance`), which ``score`` is then multiplied by (clipped at
    0), on the frames the verifier runs on (``TrackerConfig.verify_every``; the others' ``score`` carries the last
    one measured); else None."""

    box: Box
    score: float
    found: bool
    similarity: float | None = None
