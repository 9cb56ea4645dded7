"""The training loop: SiamFC pairs, the chosen loss (train.losses), SGD with warm-up and cosine decay, bf16 autocast,
atomic checkpoints with exact resume, optional DDP (torchrun), and validation by real tracking (OPE AUC)."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from tracker import atomic
from tracker.config import BACKBONES, ConfigError, ModelConfig
from tracker.machine import default_precision
from tracker.model import SiamFC, build_backbone
from tracker.model.inference import inference_form
from tracker.shipped import resolve_weights
from tracker.weights import load_weights, save_weights

from .heads import TRAIN_HEADS
from .losses import LOSSES, feature_distill
from .pairs import PairConfig, PairDataset
from .pretrained import load_pretrained


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides data; saved as ``config.json`` in the run folder and beside shipped weights."""

    model: ModelConfig = field(default_factory=ModelConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    loss: str = "logistic"
    optimizer: str = "sgd"  # sgd | adamw
    # ImageNet initialisation of a MobileNet backbone: a TFLite file (train.pretrained); None trains from scratch
    pretrained: str | None = None
    freeze_layers: int = 0  # leading backbone layers (stem = 1, then one per block) never trained
    freeze_steps: int = 0  # the whole backbone stays frozen for this many steps (the head and neck settle first)
    backbone_lr: float = 1.0  # backbone learning rate as a multiple of lr (pretrained features: below 1)
    lr: float = 1e-2
    min_lr: float = 1e-4
    warmup_steps: int = 300
    steps: int = 20000  # total optimisation steps
    batch_size: int = 16  # per process
    weight_decay: float = 5e-4
    momentum: float = 0.9
    clip_grad: float = 10.0
    precision: str = "auto"  # auto | fp32 | bf16
    workers: int = 1
    seed: int = 0
    checkpoint_every: int = 250  # steps between checkpoints
    val_every: int = 2000  # steps between validations (0: never)
    # training videos held apart: no pairs are drawn from them, and they are the validation split that picks the
    # best checkpoint (so that dev stays for reporting)
    holdout: tuple[str, ...] = ()
    # distillation: a trained model (a weights file, or a shipped model's name) whose head maps on the same pairs
    # the model also learns (TRAIN_HEADS' distill loss, times distill_weight, added to the label loss); several
    # (a list): their maps averaged, an ensemble as teacher; None, or a distill_weight of 0: labels only
    teacher: str | tuple[str, ...] | None = None
    distill_weight: float = 1.0
    # distillation of the features too: the backbone's outputs (after the neck) on the exemplar and search crops
    # learn the teacher's (losses.feature_distill), times this weight, beside its maps. It needs one teacher whose
    # features have the model's channels and grid (the same neck width), and one process. 0: maps only
    feature_weight: float = 0.0
    # a trained model (a weights file, or a shipped model's name) whose tensors start every layer of the same name
    # and shape (after ``pretrained``); the others keep their initialisation. A cut-down copy of a trained network
    # (fewer blocks, a new neck) starts from what it keeps of it. None: no such start
    init: str | None = None
    # exponential moving average of the weights (and BatchNorm statistics), updated after every step with this
    # decay (0: off). With it on, ema.safetensors holds the average, and validation and best.safetensors use it;
    # last.safetensors stays the last step's weights, so one run compares the two at the same data and seed
    ema: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "lr", "min_lr", "backbone_lr", "weight_decay", "momentum", "clip_grad", "distill_weight", "feature_weight",
        ):  # fmt: skip
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"TrainConfig: {name} must be finite")
        checks = [
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (self.optimizer in ("sgd", "adamw"), "optimizer must be sgd or adamw"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
            (self.steps >= 1 and self.batch_size >= 1, "steps and batch_size must be >= 1"),
            (0 <= self.min_lr <= self.lr and self.lr > 0, "need 0 <= min_lr <= lr and lr > 0"),
            (0 < self.backbone_lr <= 10, "backbone_lr must be in (0, 10]"),
            (min(self.warmup_steps, self.freeze_layers, self.freeze_steps, self.workers) >= 0, "counts must be >= 0"),
            (self.weight_decay >= 0 and 0 <= self.momentum < 1, "need weight_decay >= 0 and 0 <= momentum < 1"),
            (self.clip_grad > 0, "clip_grad must be > 0"),
            (self.distill_weight >= 0, "distill_weight must be >= 0"),
            (self.feature_weight >= 0, "feature_weight must be >= 0"),
            (
                self.feature_weight == 0 or (isinstance(self.teacher, str) and self.distill_weight > 0),
                "feature_weight needs one teacher (and a distill_weight above 0)",
            ),
            (0 <= self.ema < 1, "ema must be in [0, 1)"),
            (self.checkpoint_every >= 1 and self.val_every >= 0, "need checkpoint_every >= 1, val_every >= 0"),
            (self.pretrained is None or BACKBONES[self.model.backbone].pretrained, "pretrained needs a MobileNet"),
            (self.init is None or isinstance(self.init, str), "init must be a weights file or a shipped model's name"),
            (
                self.teacher is None
                or isinstance(self.teacher, str)
                or (isinstance(self.teacher, tuple) and self.teacher and all(isinstance(t, str) for t in self.teacher)),
                "teacher must be a weights file or a shipped model's name, or a non-empty list of them",
            ),
        ]
        if self.model.blocks is not None:
            build_backbone(self.model)  # a cut that loses the stride is refused here, before a run folder is made
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"TrainConfig: {message}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from plain data, refusing unknown keys at every level (a misspelled key must not be dropped)."""
        d = dict(d)
        model = ModelConfig.from_dict(d.pop("model", {}))
        pairs = dict(d.pop("pairs", {}))
        for key in ("exemplar_size", "search_size", "response_size", "stride"):  # older configs repeated these
            if key in pairs and pairs.pop(key) != getattr(model, key):
                raise ConfigError(f"TrainConfig: pairs.{key} disagrees with the model's; remove it")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown TrainConfig key(s): {', '.join(unknown)}")
        try:
            pairs_cfg = PairConfig(**pairs)
        except TypeError as e:
            raise ConfigError(f"TrainConfig.pairs: {e}") from None
        if "holdout" in d:
            d["holdout"] = tuple(d["holdout"])
        if isinstance(d.get("teacher"), list):
            d["teacher"] = tuple(d["teacher"])
        return cls(model=model, pairs=pairs_cfg, **d)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``min_lr`` at ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def _atomic_torch_save(obj: dict, path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        torch.save(obj, tmp)


def backbone_layers(model: SiamFC) -> list[torch.nn.Module]:
    """The backbone's layers in order (what ``freeze_layers`` counts): its ``features`` entries."""
    return list(getattr(model.backbone, "features", []))


class TeacherEnsemble(torch.nn.Module):
    """Several teachers as one: each head output (logits, box distances) is the mean of theirs."""

    def __init__(self, teachers: list[SiamFC]) -> None:
        super().__init__()
        self.teachers = torch.nn.ModuleList(teachers)

    def forward(self, exemplar: torch.Tensor, search: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = [t(exemplar, search) for t in self.teachers]
        return {k: torch.stack([o[k] for o in outputs]).mean(0) for k in outputs[0]}


def load_teacher(path: str | tuple[str, ...], student: ModelConfig, device: torch.device) -> torch.nn.Module:
    """The frozen teacher of a distillation run (several: a :class:`TeacherEnsemble`). Its maps must lie on the
    student's grid: the same head, crop sizes and stride (the backbone, widths, neck and tower may differ)."""
    if not isinstance(path, str):
        members = [load_teacher(p, student, device) for p in path]
        return members[0] if len(members) == 1 else TeacherEnsemble(members).eval()
    teacher = load_weights(resolve_weights(path), device="cpu")
    t = teacher.config
    for key in ("head", "exemplar_size", "search_size", "stride"):
        if getattr(t, key) != getattr(student, key):
            raise ConfigError(
                f"TrainConfig: the teacher {path} has {key} {getattr(t, key)!r}, the model {getattr(student, key)!r};"
                " a teacher must share the model's head, crop sizes and stride"
            )
    for p in teacher.parameters():
        p.requires_grad_(False)
    # it only runs forward: BatchNorm folded into the convolutions and channels_last, as the torch backend runs a
    # model (0.27 -> 0.18 s for 16 pairs of MobileNetV2 1.0 in bf16 on 2 cores, measured)
    teacher.eval().backbone = inference_form(teacher.backbone)
    return teacher.to(device, memory_format=torch.channels_last)


def check_features(model: SiamFC, teacher: torch.nn.Module, config: ModelConfig) -> None:
    """Refuse a feature distillation whose teacher's features differ from the model's in shape (channels or grid)."""
    crop = torch.zeros(1, 3, config.exemplar_size, config.exemplar_size)
    training = model.training
    model.eval()  # no BatchNorm statistics from this crop
    with torch.no_grad():
        own = tuple(model.embed(crop.to(next(model.parameters()).device)).shape)
        theirs = tuple(teacher.embed(crop.to(next(teacher.parameters()).device)).shape)
    model.train(training)
    if own != theirs:
        raise ConfigError(
            f"TrainConfig: feature_weight needs the teacher's features in the model's shape: the teacher's exemplar "
            f"features are {theirs}, the model's {own} (give the model the teacher's neck width)"
        )


def init_from(model: SiamFC, path: str) -> tuple[int, int]:
    """Copy into ``model`` every tensor of the trained model ``path`` (a weights file or a shipped name) whose name
    and shape match; returns (tensors copied, tensors in ``model``). Another backbone, or none copied, is an error:
    the start was asked for and would silently not happen."""
    trained = load_weights(resolve_weights(path), device="cpu")
    if trained.config.backbone != model.config.backbone:
        raise ConfigError(
            f"TrainConfig: init {path} has backbone {trained.config.backbone}, the model {model.config.backbone}"
        )
    source, own = trained.state_dict(), model.state_dict()
    matched = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ConfigError(f"TrainConfig: init {path} shares no tensor of the same name and shape with the model")
    model.load_state_dict(matched, strict=False)
    return len(matched), len(own)


def make_optimizer(model: SiamFC, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW in four groups: (backbone, rest) x (decayed weights, BatchNorm and biases). The backbone
    groups run at ``backbone_lr`` times the rate (``lr_scale``); frozen layers are left out."""
    frozen = {id(p) for layer in backbone_layers(model)[: cfg.freeze_layers] for p in layer.parameters()}
    in_backbone = {id(p) for p in model.backbone.backbone_parameters()}  # e.g. a MobileNet's neck is not
    groups = []
    for backbone in (True, False):
        params = [p for p in model.parameters() if (id(p) in in_backbone) == backbone and id(p) not in frozen]
        scale = cfg.backbone_lr if backbone else 1.0
        # no weight decay on BatchNorm and biases: it only shrinks them towards meaningless values
        for decayed in (True, False):
            groups.append({
                "params": [p for p in params if (p.ndim > 1) == decayed], "lr_scale": scale, "backbone": backbone,
                "weight_decay": cfg.weight_decay if decayed else 0.0,
            })  # fmt: skip
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    groups = [g for g in groups if g["params"]]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


class Trainer:
    """Owns model, optimiser and data; ``run()`` trains to ``cfg.steps``, checkpointing in ``out``."""

    def __init__(self, cfg: TrainConfig, cache_dir: Path, out: Path, validate=None, resume: bool = False):
        self.cfg, self.out, self.validate = cfg, out, validate
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        self.device = torch.device(
            f"cuda:{self.rank % torch.cuda.device_count()}" if torch.cuda.is_available() else "cpu"
        )
        precision = cfg.precision
        if precision == "auto":
            precision = default_precision(self.device.type)
        self.amp_dtype = torch.bfloat16 if precision == "bf16" else None
        torch.manual_seed(cfg.seed)
        self.model = SiamFC(cfg.model)
        if cfg.pretrained and not resume:
            loaded = load_pretrained(self.model.backbone, cfg.pretrained)
            if self.rank == 0:
                tqdm.write(f"backbone: {loaded} layers from {cfg.pretrained}")
        if cfg.init and not resume:
            loaded, total = init_from(self.model, cfg.init)
            if self.rank == 0:
                tqdm.write(f"init: {loaded} of {total} tensors from {cfg.init}")
        self.model.to(self.device)
        self.net = torch.nn.parallel.DistributedDataParallel(self.model) if self.distributed else self.model
        distil = cfg.teacher and cfg.distill_weight > 0  # a teacher of weight 0 would run for nothing
        self.teacher = load_teacher(cfg.teacher, cfg.model, self.device) if distil else None
        if cfg.feature_weight > 0:
            check_features(self.model, self.teacher, cfg.model)
            if self.distributed:
                raise ConfigError("TrainConfig: feature_weight runs in one process (the features bypass DDP)")
        self.optimizer = make_optimizer(self.model, cfg)
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
        )
        self.step, self.best_auc = 0, -1.0
        self.cache_dir = cache_dir
        out.mkdir(parents=True, exist_ok=True)
        if resume and (out / "checkpoint.pt").is_file():
            self._load(out / "checkpoint.pt")

    def _load(self, path: Path) -> None:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and dicts, no pickled code
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema"])
        self.step, self.best_auc = ckpt["step"], ckpt["best_auc"]
        torch.set_rng_state(ckpt["torch_rng"])

    def save(self) -> None:
        if self.rank != 0:
            return
        ckpt = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "best_auc": self.best_auc,
            "torch_rng": torch.get_rng_state(),
            "config": self.cfg.to_dict(),
        }
        if self.ema is not None:
            ckpt["ema"] = self.ema.state_dict()
        _atomic_torch_save(ckpt, self.out / "checkpoint.pt")
        self._write_weights()

    def _write_weights(self) -> Path:
        """Write last.safetensors (and, with ``ema`` on, ema.safetensors); returns the file that validation and
        best.safetensors use."""
        step = {"step": str(self.step)}
        save_weights(self.model, self.out / "last.safetensors", step)
        if self.ema is None:
            return self.out / "last.safetensors"
        save_weights(self.ema.module, self.out / "ema.safetensors", {**step, "ema": str(self.cfg.ema)})
        return self.out / "ema.safetensors"

    @property
    def shipped_model(self) -> SiamFC:
        """The network a run's validation and best.safetensors use: the weight average when ``ema`` is on."""
        return self.ema.module if self.ema is not None else self.model

    def _loader(self) -> DataLoader:
        cfg = self.cfg
        total = cfg.steps * cfg.batch_size * self.world
        # sample indices are global: resuming at step k starts exactly at the first pair step k would have seen
        dataset = Subset(
            PairDataset(self.cache_dir, total, cfg.model, cfg.pairs, cfg.seed, exclude=cfg.holdout),
            range(self.step * cfg.batch_size * self.world, total),
        )
        sampler = DistributedSampler(dataset, shuffle=False) if self.distributed else None
        return DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
            persistent_workers=cfg.workers > 0, drop_last=True,
        )  # fmt: skip

    def train_step(self, batch: list[torch.Tensor]) -> float:
        z, x, *targets = (t.to(self.device, non_blocking=True) for t in batch)
        lr = learning_rate(self.step, self.cfg)
        backbone_on = self.step >= self.cfg.freeze_steps
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g["lr_scale"] if backbone_on or not g["backbone"] else 0.0
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
        ):
            features = self.cfg.feature_weight > 0  # one process (checked): the model's parts run directly
            if features:
                zf, xf = self.model.embed(z.float()), self.model.backbone(x.float())
                outputs = self.model.head_outputs(zf, xf)
            else:
                outputs = self.net(z.float(), x.float())
            if self.teacher is not None:
                with torch.no_grad():
                    cl = torch.channels_last
                    zt, xt = z.float().contiguous(memory_format=cl), x.float().contiguous(memory_format=cl)
                    if features:
                        tz, tx = self.teacher.embed(zt), self.teacher.backbone(xt)
                        taught = self.teacher.head_outputs(tz, tx)
                    else:
                        taught = self.teacher(zt, xt)
        head = TRAIN_HEADS[self.cfg.model.head]
        loss = head.loss(outputs, *targets, classification=self.cfg.loss)
        if self.teacher is not None:
            loss = loss + self.cfg.distill_weight * head.distill(outputs, taught)
        if features:
            loss = loss + self.cfg.feature_weight * (feature_distill(zf, tz) + feature_distill(xf, tx))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.step}; lower the learning rate")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return loss.item()

    def run(self, max_minutes: float | None = None) -> None:
        cfg, start = self.cfg, time.time()
        if self.step >= cfg.steps:
            return  # a finished run resumed: nothing to train, and its weights and log stay as they are
        log_path = self.out / "log.csv"
        new_log = not log_path.is_file()
        log = open(log_path, "a", newline="")
        writer = csv.writer(log)
        if new_log and self.rank == 0:
            writer.writerow(["step", "loss", "lr", "pairs_per_s", "val_auc", "val_precision", "minutes"])
        self.net.train()
        bar = tqdm(total=cfg.steps, initial=self.step, desc="training", disable=self.rank != 0, dynamic_ncols=True)
        t_last, s_last, running = time.time(), self.step, None
        for batch in self._loader():
            loss = self.train_step(batch)
            running = loss if running is None else 0.98 * running + 0.02 * loss
            bar.update(1)
            elapsed = time.time() - t_last
            rate = (self.step - s_last) * cfg.batch_size * self.world / max(elapsed, 1e-9)
            bar.set_postfix(loss=f"{running:.4f}", lr=f"{learning_rate(self.step, cfg):.2e}", pairs_s=f"{rate:.0f}")
            done = self.step >= cfg.steps
            out_of_time = max_minutes is not None and time.time() - start > max_minutes * 60
            val = {}
            if self.validate and self.rank == 0 and (done or (cfg.val_every and self.step % cfg.val_every == 0)):
                val = self._validate()
            if self.step % cfg.checkpoint_every == 0 or done or out_of_time or val:
                self.save()
                if self.rank == 0:
                    writer.writerow([self.step, f"{running:.5f}", f"{learning_rate(self.step, cfg):.3e}",
                                     f"{rate:.1f}", val.get("auc", ""), val.get("precision", ""),
                                     f"{(time.time() - start) / 60:.1f}"])  # fmt: skip
                    log.flush()
                t_last, s_last = time.time(), self.step
            if done or out_of_time:
                break
        bar.close()
        log.close()

    def _validate(self) -> dict:
        self.net.eval()
        result = self.validate(self._write_weights())
        self.net.train()
        tqdm.write(f"step {self.step}: validation AUC {result['auc']:.3f}, precision {result['precision']:.3f}")
        if result["auc"] > self.best_auc:
            self.best_auc = result["auc"]
            meta = {
                "step": str(self.step),
                "dev_auc": f"{result['auc']:.4f}",
                "dev_precision": f"{result['precision']:.4f}",
            }
            save_weights(self.shipped_model, self.out / "best.safetensors", meta)
        return result
