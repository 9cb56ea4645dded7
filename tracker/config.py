"""Configuration dataclasses.

`ModelConfig` describes the network and must match the weights: it is stored inside every checkpoint and
rebuilds the model on load. `TrackerConfig` holds inference knobs that are safe to tune per use.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class BackboneSpec:
    """What the configuration and training need to know of a backbone without building it. "valid" layers
    (SiamFC's AlexNet) shrink a crop of side n to (n - receptive) / stride + 1 features, "same" layers (TF's
    MobileNets) to ceil(n / stride)."""

    padding: str  # "valid" | "same"
    strides: tuple[int, ...]  # total strides it can be cut at
    trainable: bool  # offered by `python -m train` (handset: fixed features for the tests)
    pretrained: bool  # starts from ImageNet weights of a TFLite file (train.pretrained)


# backbone name -> BackboneSpec: the one table of backbones; their modules are tracker.model.backbones.BUILDERS
BACKBONES: dict[str, BackboneSpec] = {
    "alexnet": BackboneSpec("valid", (8,), trainable=True, pretrained=False),
    "handset": BackboneSpec("valid", (8,), trainable=False, pretrained=False),
    "mobilenetv2": BackboneSpec("same", (8, 16), trainable=True, pretrained=True),
    "mobilenetv1": BackboneSpec("same", (8, 16), trainable=True, pretrained=True),
}
METRICS = ("xcorr", "cosine", "euclidean", "absdiff")
# metric -> its default out_scale (SimilarityHead): the fixed scale of cross-correlation (SiamFC's), the starting
# value of the others' learned one. The unbounded sums over C * k * k features (xcorr, euclidean, absdiff) start
# where SiamFC's 0.001 puts them, a logit spread of 0.05 to 0.6 at initialisation (AlexNet, the pretrained
# MobileNetV2); cosine similarity, within [-1, 1] and spread 0.07 there, starts at 10 (NormFace's and CLIP's order)
METRIC_SCALES = {"xcorr": 0.001, "cosine": 10.0, "euclidean": 0.001, "absdiff": 0.001}


@dataclass(frozen=True)
class HeadSpec:
    """What the configuration and the exporters need to know of a head without running it."""

    outputs: tuple[str, ...]  # the network's named outputs, in graph order; each (N, R, R) but "box" (N, 4, R, R)
    # the maps keep the search features' grid (R = ceil(search / stride)), rather than one cell per exemplar-sized
    # window of it (R = search features - exemplar features + 1)
    on_search_grid: bool
    needs_same_padding: bool  # the backbone must pad "same" (its exemplar features tile a grid: MobileNets)
    metrics: tuple[str, ...] | None  # the similarity metrics it takes (None: every one)
    module: str  # the module with its network, decoder and crops per target

    def impl(self) -> ModuleType:
        """The head's module (imports torch for its network, on first use)."""
        return importlib.import_module(self.module)


# head name -> HeadSpec: the one table of heads; the per-head code is in tracker.heads (one module a head)
HEADS: dict[str, HeadSpec] = {
    # SiamFC's similarity map, searched at several scales
    "fc": HeadSpec(("response",), False, False, None, "tracker.heads.fc"),
    # one crop; classification, box (distances to the four sides) and quality maps off a point-wise correlation
    # (SiamFC++'s design)
    "box": HeadSpec(("cls", "box", "quality"), True, True, ("xcorr",), "tracker.heads.box"),
}
PRECISIONS = (None, "auto", "fp32", "bf16", "fp16", "int8")  # which backend takes which: TrackerConfig.precision


class ConfigError(InputError):
    """A configuration value or key is invalid."""


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build a dataclass from a dict, refusing unknown keys (a misspelled key must not be dropped silently)."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} key(s): {', '.join(unknown)}")
    return cls(**data)


@dataclass(frozen=True)
class ModelConfig:
    """Network description; stored with the weights."""

    # "alexnet" (SiamFC's), "mobilenetv2" / "mobilenetv1" (ImageNet-pretrained, train.pretrained) or "handset"
    # (fixed features, for tests)
    backbone: str = "alexnet"
    width: float = 0.5  # channel multiplier (AlexNet: 1.0 = the paper's 96-256-384-384-256; MobileNet: its alpha)
    stem_kernel: int = 11  # AlexNet's first kernel side (the paper's 11; 7 costs 0.4x in that layer)
    groups: int = 1  # groups of AlexNet's conv2, conv4 and conv5 (the original AlexNet's 2 halves their cost)
    metric: str = "xcorr"  # similarity head: xcorr | cosine | euclidean | absdiff
    # response scale: xcorr's fixed one (SiamFC's; a learned one diverged), the others' starting value of a learned
    # one (SimilarityHead); None: the metric's default, METRIC_SCALES
    out_scale: float | None = None
    exemplar_size: int = 127  # exemplar crop side, pixels
    search_size: int = 255  # search crop side, pixels
    stride: int = 8  # total stride the backbone is cut at (one of its BACKBONES entry's strides)
    neck: int = 0  # MobileNets: a 1x1 conv + BatchNorm to this many channels after the cut (0: none)
    # MobileNets: keep only the first this many blocks after the stem (None: every block up to the stride). The cut
    # must keep the stride, so it can drop only blocks that run at the full stride (their cost without their depth)
    blocks: int | None = None
    # MobileNets: a width multiplier's channel counts are rounded to a multiple of this: TF's 8 (the ImageNet files),
    # or 4 for DeepLabV3's MobileNetV2 0.5 encoder, whose stages keep 12 channels where TF's rounding makes 16
    channel_multiple: int = 8
    # MobileNetV2: the hidden (expanded) channels of each block kept after the cut, in order (None: each block's
    # input channels times its expansion, as in the paper). A network pruned of expansion channels stores its own
    # counts here; a block without expansion (the first) keeps its input's
    expansions: tuple[int, ...] | None = None
    # "fc": SiamFC's similarity map, searched at several scales; "box": one crop, a box regressed at every cell of
    # a point-wise correlation map (SiamFC++'s design; MobileNet backbones)
    head: str = "fc"
    tower: int = 96  # box head: channels of its conv tower
    tower_layers: int = 2  # box head: 3x3 conv + BatchNorm + ReLU layers before its three outputs
    # box head: each tower layer's 3x3 convolution depthwise-separable (a depthwise 3x3, then a 1x1 to the tower's
    # channels), about a tenth of its multiply-adds
    separable_tower: bool = False

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone must be one of {tuple(BACKBONES)}, got {self.backbone!r}")
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.out_scale is None:
            object.__setattr__(self, "out_scale", METRIC_SCALES[self.metric])  # frozen: set once, here
        scale = self.out_scale
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale < math.inf:
            raise ConfigError(f"out_scale must be a positive number, got {self.out_scale!r}")
        if not 0.05 <= self.width <= 4.0:
            raise ConfigError(f"width must be in [0.05, 4], got {self.width}")
        if self.stem_kernel not in (5, 7, 9, 11):
            raise ConfigError(f"stem_kernel must be 5, 7, 9 or 11, got {self.stem_kernel}")
        if self.groups not in (1, 2, 4):
            raise ConfigError(f"groups must be 1, 2 or 4, got {self.groups}")
        if self.exemplar_size % 2 == 0 or self.search_size % 2 == 0 or self.search_size <= self.exemplar_size:
            raise ConfigError("exemplar_size and search_size must be odd with search_size > exemplar_size")
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {tuple(HEADS)}, got {self.head!r}")
        padding, strides = BACKBONES[self.backbone].padding, BACKBONES[self.backbone].strides
        head = HEADS[self.head]
        if head.needs_same_padding and padding != "same":
            raise ConfigError(f"the {self.head} head needs a MobileNet backbone, not {self.backbone}")
        if head.metrics is not None and self.metric not in head.metrics:
            # e.g. the box head's point-wise correlation is a product of features; the other metrics are the fc head's
            others = " or ".join(n for n, h in HEADS.items() if h.metrics is None or self.metric in h.metrics)
            raise ConfigError(
                f"the {self.head} head correlates by {' or '.join(head.metrics)}; metric {self.metric!r} is for the "
                f"{others} head"
            )
        if not isinstance(self.separable_tower, bool):
            raise ConfigError(f"separable_tower must be true or false, got {self.separable_tower!r}")
        if self.tower < 1 or self.tower_layers < 1:
            raise ConfigError(f"tower and tower_layers must be >= 1, got {self.tower} and {self.tower_layers}")
        if self.stride not in strides:
            raise ConfigError(
                f"{self.backbone} can be cut at stride {' or '.join(map(str, strides))}, not {self.stride}"
            )
        if self.blocks is not None and (isinstance(self.blocks, bool) or not isinstance(self.blocks, int)
                                        or self.blocks < 1 or padding != "same"):  # fmt: skip
            raise ConfigError(f"blocks must be None or a count >= 1 for a MobileNet backbone, got {self.blocks!r}")
        if self.expansions is not None:
            counts = self.expansions
            if (
                not isinstance(counts, (list, tuple))
                or not counts
                or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in counts)
            ):
                raise ConfigError(f"expansions must be None or a list of channel counts >= 1, got {counts!r}")
            if self.backbone != "mobilenetv2":
                raise ConfigError(f"expansions are MobileNetV2's hidden channels, not {self.backbone}'s")
            object.__setattr__(self, "expansions", tuple(counts))  # JSON gives a list; frozen: set once, here
        if isinstance(self.channel_multiple, bool) or self.channel_multiple not in (1, 2, 4, 8):
            raise ConfigError(f"channel_multiple must be 1, 2, 4 or 8, got {self.channel_multiple!r}")
        if self.neck < 0 or (self.neck and padding != "same"):
            raise ConfigError(f"neck must be 0 or a channel count for a MobileNet backbone, got {self.neck}")
        if padding == "same" and ((self.exemplar_size + 1) % self.stride or (self.search_size + 1) % self.stride):
            # sides of k * stride - 1 keep the exemplar's and the search's features on one grid, so the response
            # centre is exactly zero displacement
            raise ConfigError(f"exemplar_size and search_size must be multiples of {self.stride} minus 1")

    @property
    def padding(self) -> str:
        """``"valid"`` or ``"same"``: how the backbone's layers pad (:data:`BACKBONES`)."""
        return BACKBONES[self.backbone].padding

    @property
    def response_size(self) -> int:
        """Side R of the output maps. The fc head's: search features minus exemplar features plus one (17 for 127 /
        255 at stride 8, 9 at stride 16); the box head's: the search features' (16 for 255 at stride 16). Cell
        ``r`` is a displacement of ``(r - (R - 1) / 2) * stride`` search-crop pixels from the crop's centre."""
        if HEADS[self.head].on_search_grid:
            return -(-self.search_size // self.stride)
        if self.padding == "same":
            return -(-self.search_size // self.stride) - -(-self.exemplar_size // self.stride) + 1  # ceil(n / s) each
        return (self.search_size - self.exemplar_size) // self.stride + 1

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the network's outputs, in graph order (:data:`HEADS`)."""
        return HEADS[self.head].outputs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, data)


@dataclass(frozen=True)
class TrackerConfig:
    """Inference knobs: the SiamFC paper's, except three tuned on the dev set (see below)."""

    context: float = 0.5  # context margin around the target: p = context * (w + h)
    scale_num: int = 3  # search scales per frame
    scale_step: float = 1.0375  # ratio between neighbouring scales
    # SiamFC's head: scale_penalty, scale_lr and its window_influence (0.3) were chosen on the dev set with
    # tools/tune_tracker.py for the classic weights (docs/EVALUATION.md): the paper's 0.9745, 0.59 and 0.176 let
    # the box size drift with them
    scale_penalty: float = 0.95  # response penalty for changing scale
    scale_lr: float = 0.3  # damping of the size update
    # weight of the cosine window against the response; None: the head's own (WINDOW_INFLUENCE of its decoder:
    # SiamFC's 0.3, the box head's 0.21)
    window_influence: float | None = None
    response_up: int = 16  # bicubic upsampling factor of the response
    # box head (ModelConfig(head="box")): one crop, no scales; pysot's size and aspect-change penalty and the rate
    # at which the box follows the regressed one (times the chosen cell's penalised score). None: the weights' own
    # (their settings file, tracker.tuned), else the head's: SiamFC++'s published values (penalty_k 0.04,
    # window_influence 0.21, lr 0.52), none of them chosen on dev (weights/README.md)
    penalty_k: float | None = None
    box_lr: float | None = None
    # box head: how fast the box's aspect ratio follows the regressed one, as a share of the rate its size follows
    # it. None: the weights' own (tracker.tuned), else 1: width and height each follow at the box's rate. Below 1
    # the size (sqrt(w h)) follows as before and the aspect ratio more slowly; 0 keeps the first box's, as SiamFC
    aspect_rate: float | None = None
    # box head: at init the first frame is searched around the given box, and the regressed box there is compared
    # with the given one; this share (in log space) of that width and height error corrects every later
    # regression of the target (a network that regresses a pedestrian too wide and too short does so on its first
    # frame too). None: the weights' own (tracker.tuned), else 0: off. The gain is kept within [0.5, 2]
    box_calibration: float | None = None
    min_scale: float = 0.2  # target size clamp, relative to the initial size
    max_scale: float = 5.0
    # found: the score high enough and the peak sharp. None: the head's own value (the heads' scores differ: the
    # FOUND of each head's decoder, tracker.heads), calibrated with the absence benchmark (python -m
    # tracker.evaluate DATA --absence) on dev for the first box-head weights and the classic weights, not
    # re-calibrated for the default weights (docs/ROBUSTNESS.md, "Choosing the score and the thresholds")
    found_threshold: float | None = None  # min score (TrackResult.score) to keep tracking
    found_psr: float | None = None  # min peak-to-sidelobe ratio of the raw response (scale- and bias-free)
    redetect_threshold: float | None = None  # min score to re-detect a lost target (a wider search: more false peaks)
    # ...or this fraction of the target's own level, when lower: a target that never scored high is found again too
    redetect_fraction: float | None = None
    # the target's own level: its highest score over its first reference_frames frames tracked, during which no
    # loss is declared (there is no evidence of one yet). Keeping track then needs the lower of found_threshold
    # and found_fraction x that level, so a target the network scores low from the start is not lost on frame 1
    # (a found_fraction above 1 / level leaves found_threshold alone)
    reference_frames: int = 5
    found_fraction: float | None = None
    redetect_floor: float | None = None  # a re-detection's score is never below this, whatever the target's level
    # while lost, a candidate away from the held box must score this many times the held box's own score
    redetect_margin: float = 1.5
    psr_exclude: int = 2  # response cells either side of the peak that belong to the peak, not the sidelobe
    # while lost: hold the last confident box and search a grid of crops around it, at the target's scale
    lost_search_growth: float = 1.5  # the searched reach grows by this factor per lost frame...
    lost_search_max: float = 3.0  # ...up to this multiple of the tracking search's reach (3: a 3x3 grid)
    # after this many lost frames, every other frame searches the next 3x3-tile block of the whole frame instead
    # (round robin), so a target that comes back anywhere is found; None: never beyond the capped reach
    lost_scan_after: int | None = 4
    # a re-detection beyond the tracking search's reach of the held box counts once it has been found this many
    # further frames in a row at the re-detection's bar (score and similarity); lost again before that, the box (and
    # the search's reach) return to where they were held, not to a look-alike that peaked for a frame or two. One
    # within that reach (the target back where it left) counts at once. 0: every re-detection counts at once
    redetect_confirm: int = 0
    # a target lost again within this many frames of a re-detection resumes the lost search where it was before the
    # re-detection (its reach, and the whole-frame scan's turn), from the box the re-detection took: a look-alike
    # that peaked for a frame during an absence does not shrink the search back to one crop. 0: off
    redetect_keep_reach: int = 0
    # while lost with the appearance verifier, the re-detection's best few separate peaks are all verified (this
    # many, the first as without it: the best, or the held box's where a far peak does not beat it by
    # redetect_margin), and the one that looks most like the target among those that pass both the score's and
    # the similarity's bars is taken: a look-alike that outscores the returning target no longer hides it.
    # 1: only the best is verified
    redetect_candidates: int = 1
    # while tracked, a frame whose score falls below this fraction of the target's own level is ambiguous: the
    # verifier runs on it and it must pass the re-detection's similarity bar (verify_redetect) to count as found, so
    # a look-alike taken as the target leaves is caught where the score dips, without judging confident frames.
    # None: off
    verify_ambiguous: float | None = None
    # the similarity such an ambiguous frame needs; None: the re-detection's (verify_redetect)
    verify_ambiguous_bar: float | None = None
    # a tracked frame's appearance joins the target's memory (and moves the kernel, template_rate) only where its
    # score reaches this fraction of the target's own level: the memory holds confidently tracked appearances, not
    # a look-alike or background the track slid onto at a low score. None: every frame that adds to the memory
    memory_confidence: float | None = None
    # while lost, a candidate's centre is its cell's plus the box the head regresses there (the box head's; the
    # size stays the held one), not the cell's centre alone, half a cell (8 crop pixels) off at worst: the crop the
    # verifier judges is then centred on what the network found. False: the cell's centre
    redetect_refine: bool = False
    # while lost, the verifier remembers up to this many candidates it refused (look-alikes that passed the score's
    # bar but not the similarity's), and a later candidate that falls short of the similarity's bar by at most
    # distractor_margin is still taken where it looks more like the target than like every one of them by that
    # margin: the scene's own look-alikes, not a fixed bar, tell an unseen target from them. 0: off
    redetect_distractors: int = 0
    distractor_margin: float = 0.1
    # appearance verification (tracker.appearance): the target counts as found only while the chosen box's
    # appearance has at least this cosine similarity with the target's remembered ones (the first frame's and up to
    # verify_memory confidently tracked ones); it needs the weights' appearance embedding file. None: a tracked
    # target is never judged by its appearance (verify_redetect may still judge re-detections)
    verify_threshold: float | None = None
    verify_memory: int = 4
    # the similarity a re-detection (a candidate taken while lost) must reach; None: verify_threshold. A jump to
    # another place needs more evidence that it is the target than keeping track of it does. Set alone (with
    # verify_threshold None), only re-detections are judged by their appearance
    verify_redetect: float | None = None
    # the similarity a re-detection beyond the tracking search's reach of the held box must reach (a jump elsewhere,
    # not the target coming back where it left); None: verify_redetect (or verify_threshold) wherever it lies
    verify_redetect_far: float | None = None
    # while the target is tracked past its first reference_frames, the verifier runs on every verify_every-th frame
    # (and on every frame that adds to the memory); the frames between carry the last similarity in their score.
    # While lost it runs on every frame: a re-detection is taken only when it verifies. None: 1 (every frame), or
    # the weights' re-detection check's
    verify_every: int | None = None
    # the weights' re-detection check (tracker.appearance.with_redetect_check): where their appearance embedding
    # records one and neither verify_threshold nor verify_redetect is set, re-detections must look like the target,
    # with the verify_redetect, redetect_threshold, redetect_fraction and verify_every recorded there (for the
    # fields left None). False: no appearance verifier at all
    verify: bool = True
    # template update: on each frame whose appearance the verifier adds to the target's memory (found, tracked, every
    # 10th frame), the kernel moves this far towards the exemplar features of the box found there (a linear
    # update); it needs the verifier or the weights' re-detection check, whose crop it reuses. 0: the first frame's
    # kernel throughout; None: the weights' settings (tracker.tuned), else 0
    template_rate: float | None = None
    # CPU threads of the network, for this tracker only; None: the backend's default (torch 1, onnx one per core)
    threads: int | None = None
    # network precision, None for the backend's default: torch auto | fp32 | bf16 | fp16 (CUDA); onnx fp32 | fp16 |
    # int8 (CPU: int8 convolutions, see docs/DEPLOY.md); tensorrt fp16 | fp32
    precision: str | None = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):  # a NaN would pass every range check below
            value = getattr(self, field.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{field.name} must be finite, got {value}")
        if self.scale_num < 1 or self.scale_num % 2 == 0:
            raise ConfigError(f"scale_num must be odd and >= 1, got {self.scale_num}")
        if self.scale_step <= 1.0 and self.scale_num > 1:
            raise ConfigError(f"scale_step must be > 1, got {self.scale_step}")
        if self.window_influence is not None and not 0.0 <= self.window_influence <= 1.0:
            raise ConfigError(f"window_influence must be in [0, 1], got {self.window_influence}")
        if not 0.0 < self.scale_lr <= 1.0:
            raise ConfigError(f"scale_lr must be in (0, 1], got {self.scale_lr}")
        if self.penalty_k is not None and self.penalty_k < 0:
            raise ConfigError(f"penalty_k must be >= 0, got {self.penalty_k}")
        if self.box_lr is not None and not 0.0 < self.box_lr <= 1.0:
            raise ConfigError(f"box_lr must be in (0, 1], got {self.box_lr}")
        if self.aspect_rate is not None and not 0.0 <= self.aspect_rate <= 1.0:
            raise ConfigError(f"aspect_rate must be in [0, 1], got {self.aspect_rate}")
        if self.box_calibration is not None and not 0.0 <= self.box_calibration <= 1.0:
            raise ConfigError(f"box_calibration must be in [0, 1], got {self.box_calibration}")
        if self.response_up < 1:
            raise ConfigError(f"response_up must be >= 1, got {self.response_up}")
        if not 0 < self.min_scale <= 1.0 <= self.max_scale:
            raise ConfigError("need 0 < min_scale <= 1 <= max_scale")
        if self.context < 0:
            raise ConfigError(f"context must be >= 0, got {self.context}")
        if isinstance(self.reference_frames, bool) or self.reference_frames < 1 or self.redetect_margin < 1.0:
            raise ConfigError("need reference_frames >= 1 and redetect_margin >= 1")
        if self.found_fraction is not None and self.found_fraction < 0:
            raise ConfigError(f"found_fraction must be >= 0 or None, got {self.found_fraction}")
        shares = ("found_threshold", "redetect_threshold", "redetect_fraction", "redetect_floor", "verify_ambiguous",
                  "memory_confidence")  # fmt: skip
        for name in shares:
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1] or None, got {value}")
        if (self.found_psr is not None and self.found_psr < 0) or self.psr_exclude < 0:
            raise ConfigError("found_psr (or None) and psr_exclude must be >= 0")
        if self.lost_search_growth < 1.0 or self.lost_search_max < 1.0:
            raise ConfigError("lost_search_growth and lost_search_max must be >= 1")
        if self.lost_scan_after is not None and (isinstance(self.lost_scan_after, bool) or self.lost_scan_after < 0):
            raise ConfigError(f"lost_scan_after must be an integer >= 0 or None, got {self.lost_scan_after!r}")
        for name in ("redetect_confirm", "redetect_keep_reach", "redetect_distractors"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        n = self.redetect_candidates
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"redetect_candidates must be an integer >= 1, got {n!r}")
        if not isinstance(self.redetect_refine, bool):
            raise ConfigError(f"redetect_refine must be True or False, got {self.redetect_refine!r}")
        if not 0.0 <= self.distractor_margin <= 1.0:
            raise ConfigError(f"distractor_margin must be in [0, 1], got {self.distractor_margin}")
        if self.template_rate is not None and not 0.0 <= self.template_rate <= 1.0:
            raise ConfigError(f"template_rate must be in [0, 1], got {self.template_rate}")
        for name in ("verify_threshold", "verify_redetect", "verify_redetect_far", "verify_ambiguous_bar"):  # cosines
            value = getattr(self, name)
            if value is not None and not -1.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [-1, 1] or None, got {value}")
        if isinstance(self.verify_memory, bool) or not isinstance(self.verify_memory, int) or self.verify_memory < 0:
            raise ConfigError(f"verify_memory must be an integer >= 0, got {self.verify_memory!r}")
        every = self.verify_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
            raise ConfigError(f"verify_every must be an integer >= 1 or None, got {self.verify_every!r}")
        if not isinstance(self.verify, bool):
            raise ConfigError(f"verify must be True or False, got {self.verify!r}")
        if not self.verify and any(v is not None for v in (self.verify_threshold, self.verify_redetect,
                                                          self.verify_redetect_far)):  # fmt: skip
            raise ConfigError("verify=False turns the appearance verifier off: leave verify_threshold, "
                              "verify_redetect and verify_redetect_far at None")  # fmt: skip
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or None, got {self.threads}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(map(str, PRECISIONS))}; got {self.precision!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackerConfig:
        return _from_dict(cls, data)
