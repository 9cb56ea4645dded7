"""Typed errors raised by the library; each carries one clear message."""

from __future__ import annotations


class TrackerError(Exception):
    """Base class of every error siamtrack raises on purpose."""


class InputError(TrackerError, ValueError):
    """A frame, box or argument is malformed (wrong dtype, shape, NaN, non-positive size...)."""


class NotInitializedError(TrackerError, RuntimeError):
    """``update`` was called before ``init``."""


class WeightsError(TrackerError, RuntimeError):
    """A weights file is missing, unreadable, or does not fit the model it describes."""


class BackendError(TrackerError, RuntimeError):
    """A backend is unavailable (a missing package or device) or failed to run."""
