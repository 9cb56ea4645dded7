"""Decoder settings chosen for one weights file, kept beside it (each pysot model has its own post-processing
settings, for the same reason: how fast a network's boxes should be followed, and how much a change of size and
shape costs, depends on how good its regression is).

The file is ``<stem>_settings.json`` beside a weights file, ``settings.json`` inside a ``track-export`` folder
(the export copies it). It names the weights it was chosen for (their SHA-256), holds ``TrackerConfig`` fields,
and says where and how they were chosen. A tracker takes them for the fields its ``TrackerConfig`` leaves None;
a value given in the config always wins; weights without the file run on their head's own defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from .appearance import weights_digest
from .atomic import write_text
from .config import ConfigError, TrackerConfig
from .errors import InputError, WeightsError

FORMAT = "siamtrack-settings"
# the fields a weights file may carry: the box decoder's and the template update's (None in TrackerConfig until a file
# or the head fills them)
TUNABLE = ("penalty_k", "box_lr", "window_influence", "aspect_rate", "box_calibration", "template_rate")


def settings_path(weights: str | os.PathLike) -> Path:
    """Where the settings of ``weights`` live: ``<stem>_settings.json`` beside a weights file, ``settings.json``
    inside a ``track-export`` folder."""
    weights = Path(weights)
    return weights / "settings.json" if weights.is_dir() else weights.with_name(f"{weights.stem}_settings.json")


def tuned_settings(weights: str | os.PathLike) -> dict[str, float]:
    """The ``TrackerConfig`` fields chosen for ``weights`` ({} where there is no settings file).

    Raises:
        WeightsError: the file is unreadable, not a settings file, made for other weights, or holds fields that
            are not tunable ``TrackerConfig`` numbers.
    """
    path = settings_path(weights)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"cannot read the settings file {path}: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("settings"), dict):
        raise WeightsError(f"{path} is not a siamtrack settings file")
    if data.get("weights_sha256") != weights_digest(weights):
        raise WeightsError(
            f"the settings file {path} was chosen for other weights than {weights}: delete it (the head's defaults "
            "then apply) or choose settings for these weights with tools/tune_tracker.py --save"
        )
    settings = data["settings"]
    bad = [k for k, v in settings.items() if k not in TUNABLE or isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        raise WeightsError(f"the settings file {path} holds {', '.join(map(repr, bad))}: not tunable settings")
    try:
        TrackerConfig(**settings)  # in range, as any config
    except ConfigError as e:
        raise WeightsError(f"the settings file {path}: {e}") from None
    return {k: float(v) for k, v in settings.items()}


def with_tuned(config: TrackerConfig, weights: str | os.PathLike) -> TrackerConfig:
    """``config`` with the fields it leaves None taken from the settings chosen for ``weights``.

    Raises:
        WeightsError: as :func:`tuned_settings`.
    """
    unset = {k: v for k, v in tuned_settings(weights).items() if getattr(config, k) is None}
    return dataclasses.replace(config, **unset) if unset else config


def save_settings(
    weights: str | os.PathLike, settings: dict[str, float], chosen: dict, overwrite: bool = False
) -> Path:
    """Write the settings file of ``weights``: ``settings`` (tunable fields) and ``chosen`` (where and how they
    were chosen: data, command, scores). Returns its path.

    Raises:
        InputError: fields that are not tunable, or a settings file already there and not ``overwrite``.
        WeightsError: ``weights`` missing.
    """
    bad = [k for k in settings if k not in TUNABLE]
    if bad:
        raise InputError(f"{', '.join(map(repr, bad))}: not settings a weights file carries ({', '.join(TUNABLE)})")
    if not Path(weights).exists():
        raise WeightsError(f"weights not found: {weights}")
    path = settings_path(weights)
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists; pass overwrite to replace it")
    data = {"format": FORMAT, "weights_sha256": weights_digest(weights), "settings": settings, "chosen": chosen}
    write_text(path, json.dumps(data, indent=2) + "\n")
    return path
