"""siamtrack: real-time single-object tracking with a SiamFC fully convolutional Siamese network."""

from .config import ModelConfig, TrackerConfig
from .errors import BackendError, InputError, NotInitializedError, TrackerError, WeightsError
from .geometry import Box
from .tracker import SiamFCTracker, TrackResult

__all__ = [
    "BackendError",
    "Box",
    "InputError",
    "ModelConfig",
    "NotInitializedError",
    "SiamFCTracker",
    "TrackResult",
    "TrackerConfig",
    "TrackerError",
    "WeightsError",
]
__version__ = "0.1.0"
