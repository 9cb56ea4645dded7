"""Checkpoints that describe themselves: safetensors tensors plus the model config and a format version in the
metadata, so loading executes no code and rebuilds the right network."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .atomic import atomic_path
from .config import ConfigError, ModelConfig
from .errors import WeightsError
from .model import SiamFC

FORMAT_VERSION = "1"


def save_weights(model: SiamFC, path: str | os.PathLike, extra: dict[str, str] | None = None) -> None:
    """Write ``model``'s tensors and config to ``path`` (safetensors), atomically (temp file + rename), with the
    usual permissions of a new file (0o666 under the umask)."""
    metadata = {"format_version": FORMAT_VERSION, "model_config": json.dumps(model.config.to_dict())}
    metadata.update(extra or {})
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        # bytes written here, not safetensors.save_file, which creates its files private (mode 0o600)
        tmp.write_bytes(save(tensors, metadata=metadata))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a weights file (format version, model config, and what training recorded)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"weights file {path} is not a readable safetensors file ({e})") from None


def load_weights(path: str | os.PathLike, device: str | torch.device = "cpu") -> SiamFC:
    """Rebuild the model a weights file describes and load its tensors, in eval mode on ``device``."""
    meta = read_metadata(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path}: unsupported weights format version {meta.get('format_version')!r}")
    try:
        config = ModelConfig.from_dict(json.loads(meta["model_config"]))
    except (KeyError, json.JSONDecodeError, TypeError, ConfigError) as e:
        raise WeightsError(f"{path}: no valid model config in the metadata ({e})") from None
    model = SiamFC(config)
    try:
        state = load_file(str(path))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as e:
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()] or [type(e).__name__]
        first = lines[1] if len(lines) > 1 else lines[0]  # torch's first line only says "Error(s) in loading"
        raise WeightsError(f"{path}: tensors do not fit the {config.backbone} model it describes ({first})") from None
    # safetensors has no checksum: NaN/inf is the one sign of corrupt or diverged tensors we can see
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsError(f"{path}: tensor {bad[0]!r} holds NaN or infinite values (corrupt or diverged weights)")
    return model.to(device).eval()
