"""``auto`` on a CPU: the fastest of the available CPU paths for these weights, measured, and remembered.

Only paths whose accuracy equals fp32's are candidates: torch fp32; torch bf16 where the CPU has native bf16;
ONNX Runtime fp32 where onnxruntime is installed; OpenVINO fp32 where openvino is installed; and OpenVINO int8
where the weights ship an int8 search graph calibrated on real footage for these shapes
(:func:`~tracker.backends.graphs.shipped_int8`; on dev within 0.01 success AUC of fp32, docs/DEPLOY.md, "int8").
Other int8 graphs (synthetic calibration) cost accuracy, so they run only when asked for (``precision="int8"``,
which makes the int8 paths the only candidates). They are timed for a moment on random crops at the
tracker's thread setting: each one's ``score()`` for the tracker's targets, a few calls after a warm-up, the
candidates taking turns so a burst of other work hits all of them alike; the median counts (the minimum let one
lucky call decide on a busy machine). The choice is cached in ``<cache>/auto/`` (see
:func:`~tracker.backends.graphs.cache_root`) under a key of the weights' hash, the machine (CPU model and
flags, usable CPUs), the thread setting, the shapes and the library versions, so later starts only read it. The
first start for a weights file also exports its ONNX graphs (seconds), which are cached as well.

A timing taken while other processes kept the CPUs busy says little about this machine (one such timing once
made torch fp32 look 36x slower than ONNX Runtime): where other processes used more than :data:`BUSY_CPUS` CPUs
on average while the candidates ran (Linux: ``/proc/stat`` less this process's own time), the choice serves that
start only and is not cached, so a later start measures again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..errors import BackendError
from .graphs import GraphSpec, cache_root, shipped_int8_path, shipped_weight_bits, weights_sha256

CACHE_FORMAT = "5"  # bump when the candidates or how they run change (3: OpenVINO; 4: shipped int8; 5: bf16 head)
BUSY_CPUS = 0.25  # other processes' average CPU use while timing above which the timing is not cached
WARMUP, ROUNDS = 2, 9  # score() calls per candidate: untimed, then timed (one per round); ~1 s in all here

Candidate = tuple[str, str]  # (backend, precision)


@dataclass(frozen=True)
class Choice:
    """What ``auto`` picked on this CPU and why: the median ms of one ``score()`` per candidate."""

    backend: str
    precision: str
    timings_ms: dict[str, float]  # "onnx:int8" -> ms, for every candidate that ran
    skipped: dict[str, str] = field(default_factory=dict)  # candidate -> why it could not run
    cached: bool = False
    busy_cpus: float | None = None  # other processes' CPU use while timing (None: not measured, or cached)

    def describe(self) -> str:
        """One line, e.g. ``auto picked onnx fp32 (measured: onnx:fp32 25.3 ms, torch:fp32 45.1 ms)``."""
        times = ", ".join(f"{k} {v:.1f} ms" for k, v in sorted(self.timings_ms.items(), key=lambda kv: kv[1]))
        source = "cached measurement" if self.cached else "measured"
        if self.busy_cpus is not None and self.busy_cpus > BUSY_CPUS:
            source = f"measured while other processes used {self.busy_cpus:.1f} CPUs, not cached"
        return f"auto picked {self.backend} {self.precision} ({source}: {times})"


def cpu_candidates(precision: str | None = None, calibrated_int8: bool = False) -> list[Candidate]:
    """The CPU paths worth timing here, restricted to ``precision`` when one is asked for: float paths, and
    OpenVINO int8 where ``calibrated_int8`` (the weights ship a calibrated int8 graph), unless int8 is asked for.
    bf16 is a candidate only with native bf16 instructions: emulated, it took 4x the time of fp32
    (docs/DEPLOY.md)."""
    from ..machine import cpu_has_fast_bf16

    found: list[Candidate] = [("torch", "fp32")]
    if cpu_has_fast_bf16():
        found.append(("torch", "bf16"))
    has_onnx = importlib.util.find_spec("onnxruntime") is not None
    if has_onnx:
        found.append(("onnx", "fp32"))
    has_openvino = importlib.util.find_spec("openvino") is not None
    if has_openvino:
        found.append(("openvino", "fp32"))
    if precision == "int8":
        found += [("onnx", "int8")] * has_onnx + [("openvino", "int8")] * has_openvino
    elif calibrated_int8 and has_openvino:
        found.append(("openvino", "int8"))
    if precision not in (None, "auto"):
        found = [c for c in found if c[1] == precision]
    if not found:
        raise BackendError(f"auto: no CPU backend here runs precision {precision!r}")
    return found


def choose(timings_ms: dict[Candidate, float]) -> Candidate:
    """The fastest candidate."""
    if not timings_ms:
        raise BackendError("auto: no CPU backend could be started")
    return min(timings_ms, key=timings_ms.get)


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine, of this process) so far; None where /proc/stat is not there."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in (fields + ["0"] * 8)[:8])
    own = os.times()
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_busy(run: Callable[[], object]) -> tuple[object, float | None]:
    """``run()``'s result, and how many CPUs other processes kept busy on average while it ran (None: unknown)."""
    before, t0 = _cpu_seconds(), time.perf_counter()
    result = run()
    after, wall = _cpu_seconds(), time.perf_counter() - t0
    if before is None or after is None or wall <= 0:
        return result, None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return result, max(0.0, others / wall)


def time_candidates(
    backends: dict[Candidate, object], scales: int, targets: int = 1, rounds: int = ROUNDS
) -> dict[Candidate, float]:
    """Median ms of one ``score()`` (``targets`` targets, ``scales`` random search crops each) per backend, in
    turns: exported graphs have their batch built in, so all candidates are timed at the batch they will run."""
    rng = np.random.default_rng(0)
    times: dict[Candidate, list[float]] = {c: [] for c in backends}
    inputs = {}
    for c, b in backends.items():
        mc = b.model_config
        exemplar = rng.integers(0, 256, (targets, mc.exemplar_size, mc.exemplar_size, 3), dtype=np.uint8)
        search = rng.integers(0, 256, (targets * scales, mc.search_size, mc.search_size, 3), dtype=np.uint8)
        inputs[c] = (b.embed(exemplar), search)
        for _ in range(WARMUP):
            b.score(*inputs[c])
    for _ in range(rounds):
        for c, b in backends.items():
            t0 = time.perf_counter()
            b.score(*inputs[c])
            times[c].append(time.perf_counter() - t0)
    return {c: 1000.0 * float(np.median(t)) for c, t in times.items()}


def machine_key() -> dict[str, object]:
    """What makes one machine time differently from another: CPU model and flags, usable CPUs, libraries."""
    model, flags = platform.processor() or platform.machine(), ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):  # the first CPU's entries win
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            flags = hashlib.sha256(value.encode()).hexdigest()[:16]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {}
    for package in ("siamtrack", "torch", "onnxruntime", "openvino"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": model, "flags": flags, "cpus": cpus, **versions}


def cache_file(
    weights: str | os.PathLike, threads: int | None, scales: int, targets: int, precision: str | None
) -> Path:
    """The cache entry for this weights file, the int8 search graph shipped for it (a package that ships another
    one times its candidates again), machine and setting."""
    bits = shipped_weight_bits(weights, GraphSpec(targets=targets, scales=scales, precision="int8"))
    key = {
        "format": CACHE_FORMAT,
        "weights": weights_sha256(weights),
        "int8_graph": None if bits is None else weights_sha256(shipped_int8_path(weights, bits)),
        "machine": machine_key(),
        "threads": threads,
        "scales": scales,
        "targets": targets,
        "precision": precision,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_root() / "auto" / f"{digest}.json"


def read_choice(path: Path) -> Choice | None:
    """A cached choice, or None when there is none or it cannot be read (it is then measured again)."""
    try:
        data = json.loads(path.read_text())
        return Choice(str(data["backend"]), str(data["precision"]), dict(data["timings_ms"]), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def measured_cpu_backend(
    weights: str | os.PathLike,
    build: Callable[[str, str], object],
    *,
    threads: int | None = None,
    scales: int = 3,
    targets: int = 1,
    precision: str | None = None,
    candidates: Sequence[Candidate] | None = None,
    timer: Callable[[dict[Candidate, object], int, int], dict[Candidate, float]] = time_candidates,
    load: Callable[[Callable[[], object]], tuple[object, float | None]] = others_busy,
) -> tuple[object, Choice]:
    """The backend ``auto`` picks on a CPU for ``weights``, and the :class:`Choice` behind it.

    ``build(backend, precision)`` makes a backend (a :class:`BackendError` skips that candidate); ``timer``
    times the built ones and ``load`` says how busy the other processes kept the CPUs meanwhile (both injectable,
    so tests need no timing). A cached choice is built without timing; a busy timing is not cached.
    """
    try:
        path: Path | None = cache_file(weights, threads, scales, targets, precision)
    except OSError:  # unreadable weights: the first build says what is wrong with them
        path = None
    cached = None if path is None else read_choice(path)
    if cached is not None:
        try:
            return build(cached.backend, cached.precision), cached
        except BackendError:
            pass  # e.g. onnxruntime uninstalled since: measure again
    built, skipped = {}, {}
    if candidates is None:
        # the graph this CPU would run (the 8-bit one alone counts where the CPU has VNNI), as the cache key names it
        calibrated = shipped_weight_bits(weights, GraphSpec(targets, scales, "uint8", "int8")) is not None
        candidates = cpu_candidates(precision, calibrated)
    for backend, prec in candidates:
        try:
            built[(backend, prec)] = build(backend, prec)
        except BackendError as e:
            skipped[f"{backend}:{prec}"] = str(e)
    timings, busy = load(lambda: timer(built, scales, targets))
    backend, prec = choose(timings)
    choice = Choice(backend, prec, {f"{b}:{p}": ms for (b, p), ms in timings.items()}, skipped, busy_cpus=busy)
    record = {"backend": backend, "precision": prec, "timings_ms": choice.timings_ms, "skipped": skipped}
    try:
        if path is not None and not (busy is not None and busy > BUSY_CPUS):
            write_text(path, json.dumps(record | {"date": time.strftime("%Y-%m-%d")}, indent=2))
    except OSError:
        pass  # an unwritable cache only means measuring again next time
    return built[(backend, prec)], choice
