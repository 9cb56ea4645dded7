"""The shipped models, by name, and where their weights are: the copy inside the installed package, else a
checkout's ``weights/`` folder (the source the package copy is built from).

``weights=`` anywhere (``Tracker``, ``track --weights``, ``track-export --weights``, the benchmarks) takes a
name of :data:`MODELS` or a path; ``$SIAMTRACK_WEIGHTS`` (either) replaces the default.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import WeightsError

# model name -> its weights file in weights/ (the model card, weights/README.md, has a row for each)
MODELS = {
    "accurate": "mobilenetv2_box.safetensors",  # the box head on MobileNetV2 1.0
    # "accurate" with a quarter fewer expansion channels in its blocks 2-6, distilled from it
    "balanced": "mobilenetv2_pruned_box.safetensors",
    "fast": "mobilenetv1_box.safetensors",  # the box head on MobileNetV1 0.25, distilled from "accurate"
    "classic": "siamfc.safetensors",  # SiamFC's AlexNet and 3-scale head, trained from scratch
}
DEFAULT_MODEL = "balanced"
WEIGHTS_NAME = MODELS[DEFAULT_MODEL]
DATA = Path(__file__).resolve().parent / "data"  # a built wheel: weights/ files are packaged here
SOURCE = Path(__file__).resolve().parent.parent / "weights"  # a source checkout (or an editable install)
CHECKOUT = SOURCE / WEIGHTS_NAME  # the checkout's copy of the default, whatever the environment says


def model_weights(name: str) -> Path:
    """The weights file of the shipped model ``name`` (installed package first, then the checkout)."""
    file = MODELS[name]
    return DATA / file if (DATA / file).is_file() else SOURCE / file


def default_weights() -> Path:
    """The default weights file: ``$SIAMTRACK_WEIGHTS`` when set (a model name or a path), else the default
    model's. The path returned may not exist; callers report that as a WeightsError."""
    return resolve_weights(os.environ.get("SIAMTRACK_WEIGHTS") or DEFAULT_MODEL)


def resolve_weights(weights: str | os.PathLike | None) -> Path:
    """``weights`` as a path: None -> the default, a name of :data:`MODELS` -> its file, anything else as given.

    Raises WeightsError for a bare word (no folder, no file suffix) that is neither a model name nor an existing
    path, listing the names: a misspelled name must not read as a missing file."""
    if weights is None:
        return default_weights()
    text = os.fspath(weights)
    if text in MODELS:  # a name wins over a file of that name in the working folder (pass ./NAME for that)
        return model_weights(text)
    path = Path(weights)
    if not path.exists() and path.parent == Path(".") and not path.suffix:
        raise WeightsError(
            f"unknown model {text!r}: the shipped models are {', '.join(MODELS)}; or give a weights file path"
        )
    return path
