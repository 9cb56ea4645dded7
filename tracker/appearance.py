"""Appearance verification: "is this still my target?", answered by a Siamese embedding of the target's crop.

The tracking score says *where* the target is in a crop that holds it; it scores any object of the target's kind
high, so a frame without the target but with a look-alike keeps the track. The verifier compares *what* is in the
chosen box with what the target looked like: the box's exemplar-sized crop goes through the exemplar branch (the
same backbone, the graph every backend already runs at ``init``), its features become a unit vector, and the
cosine similarity with a small memory of the target's own vectors (the first frame's, and a few confidently
tracked ones) must reach a threshold for the target to count as found.

The vector is made of the exemplar features in one of two ways (:data:`POOLS`): ``flat``, the whole (C, k, k)
map centred on its mean over the training crops and flattened (context and all); or ``box``, the features
averaged over the cells the box itself covers and centred, a C-vector of what is inside the box, which the
context around a target (a wall it walks past, the road under a car) does not sway. Either may have the box's
colour beside it (a hue-saturation histogram, :func:`colour_histograms`). An :class:`Embedding` file
(safetensors, beside the network's weights) holds that mean, its pooling, and optionally a learned projection
(``train.appearance`` trains one with a triplet or contrastive loss and writes the file). Which one a file holds
was chosen by a verification ROC on videos held apart from training (weights/README.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import WeightsError

if TYPE_CHECKING:
    from .config import TrackerConfig

FORMAT = "siamtrack-appearance"
POOLS = ("flat", "box")  # the whole map flattened; the features averaged over the box's cells


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` normalised to unit length (a zero row stays zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def weights_digest(weights: str | os.PathLike) -> str:
    """The SHA-256 of a weights file, or of the file a ``track-export`` folder was exported from: an embedding
    file names the network whose features it was made for."""
    from .backends.graphs import read_graph_meta, weights_sha256

    weights = Path(weights)
    return read_graph_meta(weights).weights_sha256 if weights.is_dir() else weights_sha256(weights)


def embedding_path(weights: str | os.PathLike) -> Path:
    """Where the embedding of ``weights`` lives: ``<stem>_appearance.safetensors`` beside a weights file,
    ``appearance.safetensors`` inside a ``track-export`` folder."""
    weights = Path(weights)
    if weights.is_dir():
        return weights / "appearance.safetensors"
    return weights.with_name(f"{weights.stem}_appearance.safetensors")


def to_array(kernel: object) -> np.ndarray:
    """A backend's kernel handle (a float32 array, or a torch tensor) as a float32 numpy array."""
    if hasattr(kernel, "detach"):  # torch, without importing it
        kernel = kernel.detach().float().cpu().numpy()
    return np.asarray(kernel, dtype=np.float32)


def box_cells(extents: np.ndarray, k: int) -> np.ndarray:
    """How much of each cell of a k x k exemplar map a centred box covers, (B, k, k) in [0, 1]; ``extents`` (B, 2):
    the box's (w, h) as fractions of the exemplar crop's side. A box is taken as at least one cell wide and high,
    so that every box covers some cells."""
    extents = np.clip(np.asarray(extents, dtype=np.float64).reshape(-1, 2), 1.0 / k, 1.0)
    edges = np.arange(k + 1) / k
    low, high = 0.5 - extents / 2, 0.5 + extents / 2  # (B, 2)
    cover = np.clip(np.minimum(edges[1:], high[..., None]) - np.maximum(edges[:-1], low[..., None]), 0, None) * k
    return (cover[:, 1, :, None] * cover[:, 0, None, :]).astype(np.float32)  # rows: h, columns: w


COLOUR_BINS = (16, 8)  # hue x saturation bins of the colour histogram
COLOUR_SIZE = COLOUR_BINS[0] * COLOUR_BINS[1]  # its length


def colour_histograms(crops: np.ndarray, extents: np.ndarray) -> np.ndarray:
    """Hue-saturation histograms (B, 16 * 8) of the box inside each exemplar-sized crop (B, E, E, 3) uint8 BGR, the
    box centred with ``extents`` (B, 2) as in :func:`box_cells`; square-rooted and normalised, so that the dot
    product of two is their Bhattacharyya coefficient."""
    import cv2

    crops = np.asarray(crops)
    side = crops.shape[1]
    out = np.zeros((len(crops), COLOUR_SIZE), np.float32)
    for i, (crop, extent) in enumerate(zip(crops, np.asarray(extents, dtype=np.float64).reshape(-1, 2), strict=True)):
        w, h = np.clip(extent, 2.0 / side, 1.0) * side
        x0, y0 = int(round((side - w) / 2)), int(round((side - h) / 2))
        roi = np.ascontiguousarray(crop[y0 : side - y0, x0 : side - x0])
        hsv = cv2.cvtColor(roi, cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, list(COLOUR_BINS), [0, 180, 0, 256]).ravel()
        out[i] = np.sqrt(hist / max(float(hist.sum()), 1.0))
    return out


def box_pool(features: np.ndarray, extents: np.ndarray) -> np.ndarray:
    """Features (B, C, k, k) averaged over the cells each centred box covers (:func:`box_cells`), (B, C)."""
    cells = box_cells(extents, features.shape[-1])
    return np.einsum("bcij,bij->bc", features, cells) / cells.sum((1, 2))[:, None]


@dataclass(frozen=True)
class Embedding:
    """Exemplar features ``(B, C, k, k)`` -> unit vectors ``(B, D)``. ``pool`` "flat": centred on ``mean``
    (C, k, k) and flattened; "box": averaged over the box's cells (:func:`box_cells`, the box's ``extents``) and
    centred on ``mean`` (C,). Then projected by ``projection`` (D, ·) when there is one, and normalised."""

    mean: np.ndarray
    projection: np.ndarray | None = None
    info: dict = field(default_factory=dict)  # how it was made, from the file's metadata
    pool: str = "flat"
    # with the colour of the box: the mean of the training crops' colour_histograms, which the box's histogram is
    # centred on; the vector is then the features' unit vector and the colour's, side by side, normalised (a
    # similarity is the mean of the two cues'). None: the features alone
    colour_mean: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise WeightsError(f"appearance embedding pooling {self.pool!r}: expected one of {', '.join(POOLS)}")
        if self.mean.ndim != (3 if self.pool == "flat" else 1):
            raise WeightsError(f"a {self.pool!r} appearance embedding cannot have a mean of shape {self.mean.shape}")
        if self.colour_mean is not None and self.colour_mean.shape != (COLOUR_SIZE,):
            raise WeightsError(f"an appearance embedding's colour mean must have {COLOUR_SIZE} bins, "
                               f"got {self.colour_mean.shape}")  # fmt: skip

    def __call__(
        self,
        features: np.ndarray,
        extents: np.ndarray | None = None,
        crops: np.ndarray | None = None,
        histograms: np.ndarray | None = None,
    ) -> np.ndarray:
        """Unit vectors of ``features`` (B, C, k, k); ``extents`` (B, 2): each box's (w, h) as fractions of the
        exemplar crop's side, which a "box" embedding needs (:meth:`TargetSearch.appearance_extent`); ``crops``
        (B, E, E, 3): the exemplar-sized crops the features are of, or their ``histograms``
        (:func:`colour_histograms`), which one with the colour needs."""
        features = np.asarray(features, dtype=np.float32)
        if self.colour_mean is None:
            return self._features(features, extents)
        if histograms is None:
            if extents is None or crops is None:
                raise ValueError("an appearance embedding with the colour needs the crops and the boxes' extents")
            histograms = colour_histograms(crops, extents)
        colour = _unit(np.asarray(histograms, dtype=np.float32) - self.colour_mean)
        return _unit(np.concatenate([self._features(features, extents), colour], axis=1))

    def _features(self, features: np.ndarray, extents: np.ndarray | None) -> np.ndarray:
        if self.pool == "box":
            if features.ndim != 4 or features.shape[1] != len(self.mean):
                raise WeightsError(f"appearance embedding expects {len(self.mean)} feature channels, got "
                                   f"{features.shape[1:]}")  # fmt: skip
            if extents is None:
                raise ValueError("a 'box' appearance embedding needs the boxes' extents")
            x = box_pool(features, extents) - self.mean
        else:
            if features.shape[1:] != self.mean.shape:
                raise WeightsError(f"appearance embedding expects features {self.mean.shape}, got {features.shape[1:]}")
            x = (features - self.mean).reshape(len(features), -1)
        if self.projection is not None:
            x = x @ self.projection.T
        return _unit(x)

    def save(self, path: str | os.PathLike, weights: str | os.PathLike, info: dict | None = None) -> None:
        """Write the embedding for the network ``weights`` (its digest goes into the file) to ``path``."""
        from safetensors.numpy import save

        from .atomic import atomic_path

        tensors = {"mean": np.ascontiguousarray(self.mean, dtype=np.float32)}
        if self.projection is not None:
            tensors["projection"] = np.ascontiguousarray(self.projection, dtype=np.float32)
        if self.colour_mean is not None:
            tensors["colour_mean"] = np.ascontiguousarray(self.colour_mean, dtype=np.float32)
        meta = {"format": FORMAT, "weights_sha256": weights_digest(weights), "info": json.dumps(info or self.info),
                "pool": self.pool}  # fmt: skip
        with atomic_path(path) as tmp:
            tmp.write_bytes(save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | os.PathLike, weights: str | os.PathLike) -> Embedding:
        """The embedding in ``path``, checked to be made for the network ``weights``.

        Raises:
            WeightsError: the file is missing, unreadable, or made for other weights.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise WeightsError(
                f"no appearance embedding at {path}: make one with `python -m train.appearance --weights "
                f"{weights} --data TRAIN_DIR`, or leave verify_threshold at None"
            )
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"cannot read the appearance embedding {path}: {e}") from None
        if meta.get("format") != FORMAT or "mean" not in tensors:
            raise WeightsError(f"{path} is not a siamtrack appearance embedding")
        if meta.get("weights_sha256") != weights_digest(weights):
            raise WeightsError(f"the appearance embedding {path} was made for other weights than {weights}")
        try:
            return cls(tensors["mean"], tensors.get("projection"), json.loads(meta.get("info", "{}")),
                       meta.get("pool", "flat"), tensors.get("colour_mean"))  # fmt: skip
        except WeightsError as e:
            raise WeightsError(f"{path}: {e}") from None


def calibrated_verifier(weights: str | os.PathLike) -> dict[str, float | int]:
    """The verifier's settings calibrated for ``weights``, as recorded in their embedding file: TrackerConfig
    fields, ``verify_threshold`` and those calibrated with it (``info["settings"]``, e.g. the re-detection's
    thresholds), for ``TrackerConfig(**calibrated_verifier(w))``.

    Raises:
        WeightsError: no embedding file, one without a calibrated threshold, or settings that are no numeric
            TrackerConfig fields.
    """
    from dataclasses import fields

    from .config import TrackerConfig

    info = Embedding.load(embedding_path(weights), weights).info
    if not isinstance(info.get("threshold"), int | float):
        raise WeightsError(f"the appearance embedding of {weights} records no calibrated threshold: pass one")
    extra = info.get("settings", {})
    known = {f.name for f in fields(TrackerConfig)}
    if not isinstance(extra, dict) or any(
        k not in known or isinstance(v, bool) or not isinstance(v, int | float) for k, v in extra.items()
    ):
        raise WeightsError(f"the appearance embedding of {weights} records settings that are not TrackerConfig's")
    return {"verify_threshold": float(info["threshold"]), **extra}


# what a weights' re-detection check may set: the lost mode's own settings, nothing of the tracking
REDETECT_CHECK = ("verify_redetect", "redetect_threshold", "redetect_fraction", "verify_every")


def is_redetect_check(check: object) -> bool:
    """Whether ``check`` is a re-detection check: a dict of numeric :data:`REDETECT_CHECK` fields, empty or with
    ``verify_redetect`` among them."""
    return (
        isinstance(check, dict)
        and (not check or "verify_redetect" in check)
        and all(
            k in REDETECT_CHECK and not isinstance(v, bool) and isinstance(v, int | float) for k, v in check.items()
        )
    )


def redetect_check(weights: str | os.PathLike) -> dict[str, float | int]:
    """The re-detection check calibrated for ``weights``, as recorded in their embedding file
    (``info["redetect_check"]``): TrackerConfig fields of :data:`REDETECT_CHECK`, ``verify_redetect`` among them;
    {} where the weights have no embedding file or it records none.

    Raises:
        WeightsError: an embedding file that is unreadable, made for other weights, or records a check that is
            not such fields.
    """
    if not embedding_path(weights).is_file():
        return {}
    check = Embedding.load(embedding_path(weights), weights).info.get("redetect_check", {})
    if not is_redetect_check(check):
        raise WeightsError(f"the appearance embedding of {weights} records a re-detection check that is not "
                           f"TrackerConfig's {', '.join(REDETECT_CHECK)}")  # fmt: skip
    return dict(check)


def with_redetect_check(config: TrackerConfig, weights: str | os.PathLike) -> TrackerConfig:
    """``config`` with the weights' re-detection check (:func:`redetect_check`) in the fields it leaves None, when
    it verifies by default (``verify`` True, neither ``verify_threshold`` nor ``verify_redetect`` set): a target
    lost is taken back only where the candidate looks like it; a tracked target is never judged by its
    appearance, so tracking is unchanged until the first loss.

    Raises:
        WeightsError: as :func:`redetect_check`; a check out of TrackerConfig's ranges.
    """
    from dataclasses import replace

    from .config import ConfigError

    if not config.verify or config.verify_threshold is not None or config.verify_redetect is not None:
        return config
    unset = {k: v for k, v in redetect_check(weights).items() if getattr(config, k) is None}
    try:
        return replace(config, **unset) if unset else config
    except ConfigError as e:
        raise WeightsError(f"the re-detection check recorded for {weights}: {e}") from None


@dataclass
class Memory:
    """A target's appearances: the first frame's vector, always kept, and up to ``size`` later ones (oldest
    dropped first); and up to ``distractors`` look-alikes refused while the target was lost (oldest dropped first)."""

    first: np.ndarray
    size: int
    recent: list[np.ndarray] = field(default_factory=list)
    distractors: int = 0
    refused: list[np.ndarray] = field(default_factory=list)

    def similarity(self, vector: np.ndarray) -> float:
        """The highest cosine similarity of ``vector`` with a remembered one, in [-1, 1]."""
        return float(max(np.dot(v, vector) for v in [self.first, *self.recent]))

    def distractor_similarity(self, vector: np.ndarray) -> float | None:
        """The highest cosine similarity of ``vector`` with a refused look-alike; None where none is remembered."""
        return float(max(np.dot(v, vector) for v in self.refused)) if self.refused else None

    def add(self, vector: np.ndarray) -> None:
        if self.size:
            self.recent = [*self.recent, vector][-self.size :]

    def refuse(self, vector: np.ndarray) -> None:
        """Remember a look-alike refused while the target was lost."""
        if self.distractors:
            self.refused = [*self.refused, vector][-self.distractors :]
