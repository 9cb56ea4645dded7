"""Typed errors raised by the library; each carries one clear message."""

from __future__ import annotations

import re
from collections.abc import Callable


class TrackerError(Exception):
    """Base class of every error siamtrack raises on purpose."""


class InputError(TrackerError, ValueError):
    """A frame, box or argument is malformed (wrong dtype, shape, NaN, non-positive size...)."""


class NotInitializedError(TrackerError, RuntimeError):
    """``update`` was called before ``init``."""


class UnknownTargetError(TrackerError, LookupError):
    """A target id that a :class:`~tracker.MultiTracker` does not hold (never added, or removed)."""


class WeightsError(TrackerError, RuntimeError):
    """A weights file is missing, unreadable, or does not fit the model it describes."""


class BackendError(TrackerError, RuntimeError):
    """A backend is unavailable (a missing package or device) or failed to run."""


# what the runtimes say when memory, a device or a provider fails them (torch, onnxruntime, TensorRT, CUDA)
_RUNTIME_FAILURE = re.compile(r"out of memory|failed to allocate|\bcuda|cudnn|cublas|provider|tensorrt", re.I)
_RUNTIME_MODULES = ("onnxruntime", "tensorrt", "cuda")


def _runtime_failure(e: Exception) -> bool:
    """Whether ``e`` is a known failure of a runtime rather than a bug: memory, an import, the OS, an
    onnxruntime execution-provider failure, or a runtime error whose message names memory, CUDA, an execution
    provider or TensorRT."""
    if isinstance(e, (MemoryError, OSError, ImportError)) or type(e).__name__ in ("OutOfMemoryError", "EPFail"):
        return True
    from_runtime = isinstance(e, RuntimeError) or type(e).__module__.startswith(_RUNTIME_MODULES)
    return from_runtime and bool(_RUNTIME_FAILURE.search(str(e)))


def guard_runtime(fn: Callable[..., object], what: str) -> Callable[..., object]:
    """``fn`` with the known failures of the runtimes underneath (out of memory, a missing library, device or
    execution provider, a file they cannot read) turned into one :class:`BackendError` whose message is
    ``what`` and their first line, the original chained as its cause. Anything else, such as a shape bug in this
    package's own code, passes through unchanged, so its traceback still shows where it is; so do TrackerErrors.
    """

    def call(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except TrackerError:
            raise
        except Exception as e:
            if not _runtime_failure(e):
                raise
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BackendError(f"{what}: {first}") from e

    return call
