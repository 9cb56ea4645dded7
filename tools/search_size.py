"""Set the search crop of a trained box-head network: the same tensors, another ``ModelConfig.search_size``.

The box head is fully convolutional, so a network trained on 255-pixel search crops runs on smaller ones: a
smaller crop costs less per frame and reaches less far (the target may move ``(search_size - exemplar_size) / 2``
crop pixels a frame before it leaves the crop and lost-mode re-detection has to find it). The size is part of the
model config stored in the weights, so this rewrites the weights file (or writes a copy with ``--out``) and
re-tags the files tied to its digest: the decoder settings (``tracker.tuned``) and the appearance embedding
(``tracker.appearance``), whose tensors do not depend on the search crop. The int8 search graphs do: remake them
with ``tools/ship_int8.py``.

    python tools/search_size.py --weights accurate --search-size 223 [--out W.safetensors]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from tracker.appearance import Embedding, embedding_path
from tracker.backends.graphs import shipped_int8_path
from tracker.errors import TrackerError
from tracker.model import SiamFC
from tracker.shipped import resolve_weights
from tracker.tuned import save_settings, settings_path, tuned_settings
from tracker.weights import load_weights, read_metadata, save_weights


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", required=True, help="a shipped model name or a .safetensors file")
    p.add_argument("--search-size", required=True, type=int, help="search crop side in pixels (k * stride - 1)")
    p.add_argument("--out", type=Path, help="write a copy here (default: rewrite the weights file in place)")
    p.add_argument("--note", default="", help="how the size was chosen, recorded in the files it re-tags")
    args = p.parse_args(argv)
    try:
        source = resolve_weights(args.weights)
        out = args.out or source
        if args.out is not None and args.out.exists():
            raise TrackerError(f"{args.out} exists; give a new file, or no --out to rewrite {source.name} in place")
        model = load_weights(source)
        old = model.config.search_size
        resized = SiamFC(dataclasses.replace(model.config, search_size=args.search_size))
        resized.load_state_dict(model.state_dict())
        settings = tuned_settings(source)  # checked to be the source's: a stale file is refused, not re-tagged
        embedding = Embedding.load(embedding_path(source), source) if embedding_path(source).is_file() else None
        extra = {k: v for k, v in read_metadata(source).items() if k not in ("format_version", "model_config")}
        record = {"search_size": args.search_size, "was": old, "from": source.name, "note": args.note}
        save_weights(resized, out, {**extra, "search_size_set": json.dumps(record)})
        if settings:
            chosen = {**json.loads(settings_path(source).read_text()).get("chosen", {}), "search_size_set": record}
            save_settings(out, settings, chosen, overwrite=True)
        if embedding is not None:
            embedding.save(embedding_path(out), out, {**embedding.info, "search_size_set": record})
    except (TrackerError, OSError, ValueError) as e:
        print(f"search_size: error: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {out}: search crop {old} -> {args.search_size} px"
        f"{', settings re-tagged' if settings else ''}{', embedding re-tagged' if embedding else ''}"
    )
    stale = [path for path in (shipped_int8_path(out, 7), shipped_int8_path(out, 8)) if path.is_file()]
    if stale:
        print(f"remake the int8 graphs: python tools/ship_int8.py --weights {out} --calibrate DATA [--weight-bits 8]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
