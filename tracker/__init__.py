"""siamtrack: real-time single-object tracking with a SiamFC fully convolutional Siamese network."""

from .config import ConfigError, ModelConfig, TrackerConfig
from .errors import BackendError, InputError, NotInitializedError, TrackerError, UnknownTargetError, WeightsError
from .geometry import Box
from .multi import MultiTracker
from .tracker import SiamFCTracker, Tracker, TrackResult

__all__ = [
    "BackendError",
    "Box",
    "ConfigError",
    "InputError",
    "ModelConfig",
    "MultiTracker",
    "NotInitializedError",
    "SiamFCTracker",
    "TrackResult",
    "Tracker",
    "TrackerConfig",
    "TrackerError",
    "UnknownTargetError",
    "WeightsError",
]
__version__ = "0.1.0"
