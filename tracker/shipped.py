"""Where the default weights are: ``$SIAMTRACK_WEIGHTS``, else the copy inside the installed package, else a
checkout's ``weights/`` folder (the source the package copy is built from)."""

from __future__ import annotations

import os
from pathlib import Path

WEIGHTS_NAME = "mobilenetv2_box.safetensors"  # the box head on MobileNetV2 (weights/README.md)
PACKAGED = Path(__file__).resolve().parent / "data" / WEIGHTS_NAME  # a built wheel: weights/ is packaged here
CHECKOUT = Path(__file__).resolve().parent.parent / "weights" / WEIGHTS_NAME  # a source checkout (or editable)


def default_weights() -> Path:
    """The default weights file: ``$SIAMTRACK_WEIGHTS`` when set, else the shipped weights (installed package
    first, then the checkout). The path returned may not exist; callers report that as a WeightsError."""
    if os.environ.get("SIAMTRACK_WEIGHTS"):
        return Path(os.environ["SIAMTRACK_WEIGHTS"])
    return PACKAGED if PACKAGED.is_file() else CHECKOUT
