"""Make an int8 search graph shipped beside a weights file (``<stem>_int8.onnx``, and with ``--weight-bits 8``
``<stem>_int8_w8.onnx`` for CPUs with VNNI; tracker.backends.graphs): ``track-export --int8 --calibrate DATA``
for one target, its search graph tagged with the weights' SHA-256 and how it was calibrated, so that
``precision="int8"`` and ``auto`` on OpenVINO run it for those weights only.

    python tools/ship_int8.py --weights accurate --calibrate ../shared/data/train [--weight-bits 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import onnx

from tracker.backends.exported import export_graphs
from tracker.backends.graphs import SEARCH_FILE, SHIPPED_INT8_SPEC, shipped_int8_path
from tracker.errors import TrackerError
from tracker.shipped import resolve_weights


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="a shipped model name or a .safetensors file")
    p.add_argument("--calibrate", required=True, type=Path, help="annotated footage (dataset or sequence folder)")
    p.add_argument("--weight-bits", type=int, choices=(7, 8), default=7, help="dense weights' bits (8: VNNI only)")
    args = p.parse_args(argv)
    try:
        weights = resolve_weights(args.weights)
        with tempfile.TemporaryDirectory() as tmp:
            meta = export_graphs(weights, Path(tmp) / "graphs", SHIPPED_INT8_SPEC, args.calibrate, args.weight_bits)
            model = onnx.load(str(Path(tmp) / "graphs" / SEARCH_FILE))
    except TrackerError as e:
        print(f"ship_int8: error: {e}", file=sys.stderr)
        return 2
    calibration = dict(meta.calibration, data=args.calibrate.name)  # the folder's name, not this machine's path
    for key, value in (
        ("siamtrack_weights_sha256", meta.weights_sha256),
        ("siamtrack_calibration", json.dumps(calibration)),
    ):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    out = shipped_int8_path(weights, args.weight_bits)
    onnx.save(model, str(out))
    print(f"wrote {out} (for {weights.name}, sha256 {meta.weights_sha256[:12]}; {calibration})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
