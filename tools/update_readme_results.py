"""Copy an evaluation's results table (and optionally its plots) into the README between two markers.

    python tools/update_readme_results.py [--results results/dev] [--readme README.md] [--plots-dir DIR]

Replaces everything between ``<!-- results:start -->`` and ``<!-- results:end -->`` with ``results.md`` from
``--results`` and one line describing the machine (CPU model, threads, date) as recorded in ``results.json``
when the evaluation ran, so README figures never get typed by hand. With ``--plots-dir`` the three PNG plots
are copied there (a tracked folder: ``results/`` is git-ignored) and linked below the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
PLOTS = ("success.png", "precision.png", "frontier.png")


def machine_line(results: dict) -> str:
    """'Measured on <CPU> (<n> logical CPUs), <t> thread(s), <date>.' from results.json (else this machine)."""
    m = results.get("machine")
    if m is None:
        # imported here because it pulls in torch and OpenCV, which a normal run (results.json present) skips
        from tracker.machine import machine_info

        m = machine_info()
    threads = results.get("threads", "?")
    return f"Measured on {m['cpu']} ({m['logical_cpus']} logical CPUs), {threads} thread(s), {m['date']}."


def results_block(results_dir: Path, readme: Path, plots_dir: Path | None) -> str:
    """The Markdown that goes between the markers."""
    table = (results_dir / "results.md").read_text().strip()
    summary_path = results_dir / "results.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    parts = [table, "", machine_line(summary)]
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
        links = []
        for name in PLOTS:
            shutil.copyfile(results_dir / name, plots_dir / name)
            rel = Path(os.path.relpath(plots_dir / name, readme.resolve().parent)).as_posix()
            links.append(f"![{name[:-4]}]({rel})")
        parts += ["", " ".join(links)]
    return "\n".join(parts)


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with the part between the start and end markers replaced by ``block``.

    Raises:
        ValueError: a marker is missing, repeated, or the end comes before the start.
    """
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"expected one {START} followed by one {END}")
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Update the README in place; returns the exit status (2 for missing files or markers)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("results/dev"), help="folder written by tracker.evaluate")
    p.add_argument("--readme", type=Path, default=Path("README.md"))
    p.add_argument("--plots-dir", type=Path, help="copy the PNG plots here and link them (e.g. docs/results)")
    args = p.parse_args(argv)
    try:
        block = results_block(args.results, args.readme, args.plots_dir)
        text = args.readme.read_text()
        args.readme.write_text(replace_between_markers(text, block))
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"updated {args.readme} from {args.results}/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
