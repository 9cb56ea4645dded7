"""Evaluation plots: success and precision curves, and speed against accuracy, written as PNG files.

Figures are built with ``matplotlib.figure.Figure`` on an Agg canvas rather than through pyplot, so nothing
needs a display and no process-wide backend setting is changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from .metrics import IOU_THRESHOLDS, PRECISION_AT, PRECISION_THRESHOLDS


def _figure() -> tuple[Figure, object]:
    fig = Figure(figsize=(6, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _colours(results: dict[str, dict]) -> dict[str, str]:
    """One colour per tracker, by its place in ``results``, so a tracker looks the same in every plot."""
    return {name: f"C{i % 10}" for i, name in enumerate(results)}


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path)


def success_plot(results: dict[str, dict], path: str | Path, title: str = "Success plot (OPE)") -> None:
    """Success curves of every tracker; ``results`` maps tracker name -> ``overall`` dict (with ``curves``
    and ``auc``). The legend gives each tracker's AUC, best first."""
    fig, ax = _figure()
    colour = _colours(results)
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["auc"]):
        ax.plot(IOU_THRESHOLDS, r["curves"]["success"], color=colour[name], label=f"{name} [{r['auc']:.3f}]")
    ax.set(xlabel="overlap threshold (IoU > t)", ylabel="success rate", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    _save(fig, Path(path))


def precision_plot(results: dict[str, dict], path: str | Path, title: str = "Precision plot (OPE)") -> None:
    """Precision curves (centre error <= t px) of every tracker; the legend gives precision at 20 px."""
    fig, ax = _figure()
    colour = _colours(results)
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["precision"]):
        label = f"{name} [{r['precision']:.3f}]"
        ax.plot(PRECISION_THRESHOLDS, r["curves"]["precision"], color=colour[name], label=label)
    ax.axvline(PRECISION_AT, color="grey", lw=0.8, ls=":")
    ax.set(
        xlabel="location error threshold (px)", ylabel="precision", xlim=(0, PRECISION_THRESHOLDS[-1]),
        ylim=(0, 1), title=title,
    )  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, Path(path))


LABEL_AT = (5, 4)  # a point's label: this many points right of it and up


def label_offsets(ax: object, points: dict[str, tuple[float, float]], size: float = 8.0) -> dict[str, tuple]:
    """Offsets in points (:data:`LABEL_AT`, then up or down by whole lines) for labels of ``points`` (data
    coordinates on ``ax``) such that no two labels' boxes overlap, taken from the top of the plot down; a label
    is about 0.6 ``size`` wide a character and ``size`` high."""
    to_pt = 72.0 / ax.figure.dpi
    placed: list[tuple[float, float, float, float]] = []
    offsets = {}
    finite = {n: p for n, p in points.items() if np.isfinite(p).all()}
    for name in sorted(finite, key=lambda n: -finite[n][1]):
        x, y = (v * to_pt for v in ax.transData.transform(finite[name]))
        width = 0.6 * size * len(name)
        for step in (0, -1, 1, -2, 2, -3, 3, -4, 4):
            dx, dy = LABEL_AT[0], LABEL_AT[1] + step * (size + 2)
            box = (x + dx, y + dy, x + dx + width, y + dy + size)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        offsets[name] = (dx, dy)
    return {**offsets, **{n: LABEL_AT for n in points if n not in offsets}}


def frontier_plot(results: dict[str, dict], path: str | Path, threads: int | None = None) -> None:
    """The speed / accuracy frontier: success AUC against median update() ms (log scale), one labelled point
    per tracker, all from the same run; labels that would cover each other are moved up or down."""
    fig, ax = _figure()
    colour = _colours(results)
    points = {name: (1000.0 / r["fps"] if r["fps"] else np.nan, r["auc"]) for name, r in results.items()}
    for name, (ms, auc) in points.items():
        ax.scatter([ms], [auc], s=30, color=colour[name])
    suffix = f", {threads} thread(s)" if threads else ""
    ax.set(xlabel=f"update() ms, median{suffix} (left is faster)", ylabel="success AUC", title="Speed vs accuracy")
    ax.set_xscale("log")
    for axis in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis(FormatStrFormatter("%g"))  # plain milliseconds, not powers of ten
    ax.set_ylim(0, max(0.1, *(r["auc"] for r in results.values())) * 1.15)
    ax.grid(alpha=0.3, which="both")
    for name, offset in label_offsets(ax, points).items():
        line = None if offset == LABEL_AT else {"arrowstyle": "-", "lw": 0.6, "color": colour[name]}  # a moved one
        ax.annotate(name, points[name], textcoords="offset points", xytext=offset, fontsize=8, arrowprops=line)
    _save(fig, Path(path))
