"""Rewrite tests/data/golden_bobot.json from a run of the current default weights on the demo clip.

    python tests/regenerate_golden.py

Run it when the default weights, their settings file or the TrackerConfig defaults change (and look at the
annotated demo, `python demos/run_demo.py`, before committing the new reference).
"""

from __future__ import annotations

import json

from golden import FIRST_BOX, REFERENCE, WEIGHTS, sha256, track_clip


def main() -> None:
    """Track the clip and write the reference file."""
    rows = track_clip()
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "weights_sha256": sha256(WEIGHTS),
        "first_box": list(FIRST_BOX),
        "run": "torch, fp32, CPU, 1 thread, default TrackerConfig and the weights' settings file",
        "rows": "x, y, w, h, score, found per frame after the first",
        "boxes": [[round(float(v), 3) for v in row[:5]] + [int(row[5])] for row in rows],
    }
    text = json.dumps(data, indent=1)
    for row in data["boxes"]:  # one frame per line
        text = text.replace(json.dumps(row, indent=1).replace("\n", "\n  "), json.dumps(row), 1)
    REFERENCE.write_text(text + "\n")
    print(f"wrote {REFERENCE}: {len(rows)} frames, found on {int(rows[:, 5].sum())}")


if __name__ == "__main__":
    main()
