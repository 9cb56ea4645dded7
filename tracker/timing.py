"""Optional stage timing of ``SiamFCTracker.update()``, for benchmarks: the real code path, timed from inside."""

from __future__ import annotations

import time

STAGES = ("crop", "network", "decode", "verify", "post")


class StageClock:
    """Seconds spent in each stage of every ``update()`` of the tracker it is attached to.

    ``tracker.stage_clock = StageClock()`` turns it on (``None``, the default, turns it off; the hooks then cost
    a few attribute look-ups). Stages: ``crop`` (frame check and search crops), ``network`` (the backend's
    ``score``, with the padding and NaN guard around it), ``decode`` (the head's maps to the peak and its box),
    ``verify`` (the appearance check's crop and exemplar branch; about nothing on frames it does not run on),
    ``post`` (judging the peak and the state update); together they cover the whole call.
    """

    def __init__(self) -> None:
        self.laps: dict[str, list[float]] = {stage: [] for stage in STAGES}
        self._last = 0.0

    def start(self) -> None:
        """Mark the start of an update."""
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Charge the time since the last mark to ``stage``."""
        now = time.perf_counter()
        self.laps[stage].append(now - self._last)
        self._last = now

    def clear(self) -> None:
        """Forget the laps recorded so far."""
        for times in self.laps.values():
            times.clear()


class _NoClock:
    """The stand-in when timing is off."""

    def start(self) -> None:
        pass

    def lap(self, stage: str) -> None:
        pass


NO_CLOCK = _NoClock()
