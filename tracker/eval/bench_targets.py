"""The several-targets part of ``python -m tracker.bench``: one MultiTracker for all K targets, timed in the same
turns as K separate SiamFCTrackers, and the table of target updates per second that compares them."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from ..config import TrackerConfig
from ..errors import TrackerError
from ..multi import MultiTracker


class AllTargets:
    """A MultiTracker behind the benchmark's one-tracker-per-target calls: ``init`` (re)starts all the targets
    of the first frame at once (the box it is given is ignored), ``update`` updates them all."""

    def __init__(self, multi: MultiTracker, first_boxes: np.ndarray) -> None:
        self.multi, self.first_boxes = multi, first_boxes

    def init(self, frame: np.ndarray, box: object) -> None:
        for i in self.multi.ids:
            self.multi.remove(i)
        self.multi.add(frame, self.first_boxes)

    def update(self, frame: np.ndarray) -> None:
        self.multi.update(frame)


def all_targets(
    weights: str | os.PathLike, backend: str, config: TrackerConfig, first_boxes: np.ndarray
) -> tuple[str, AllTargets] | None:
    """The backend name and a MultiTracker (default options) following all the targets of ``first_boxes`` (K, 4);
    None, with a warning, where it cannot start."""
    try:
        multi = MultiTracker(weights, backend=backend, config=config)
    except TrackerError as e:
        print(f"warning: no MultiTracker for {len(first_boxes)} targets on {backend}: {e}", file=sys.stderr)
        return None
    return multi.backend_name + (" (auto)" if backend == "auto" else ""), AllTargets(multi, first_boxes)


def print_targets_table(entries: Sequence[object], busy_levels: Sequence[int]) -> None:
    """Markdown: target updates per second of each MultiTracker entry (``multi_of`` set) against its entry of
    one tracker per target, at each busy level (``times``: busy level -> seconds per frame)."""
    pairs = [(e.multi_of, e) for e in entries if getattr(e, "multi_of", None) is not None]
    if not pairs:
        return
    print("\nTarget updates per second (targets x frames / s): one SiamFCTracker per target, updated in turn,")
    print("against one MultiTracker (every target's crops in one batched score()), timed in the same turns.\n")
    print("| tracker | backend | threads | targets | busy | separate trackers | MultiTracker | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for one, multi in pairs:
        k = len(one.trackers)
        for b in busy_levels:
            separate, batched = (float(np.median(x.times[b])) for x in (one, multi))
            print(f"| {one.label} | {multi.backend} | {one.threads} | {k} | {b} | {k / separate:.1f} | "
                  f"{k / batched:.1f} | {separate / batched:.2f}x |")  # fmt: skip
