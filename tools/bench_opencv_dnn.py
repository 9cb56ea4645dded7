"""OpenCV's DNN module as a runtime for the search graph, against ONNX Runtime and OpenVINO on the same graph.

NanoTrack runs on OpenCV's DNN module and opencv is already a dependency, so it is worth one measurement. The
search graph of ``--weights`` (one crop, float32 inputs, which OpenCV's DNN needs) runs on each runtime at
``--threads``: median ms of ``--calls`` runs after a warm-up, the runtimes taking turns, and OpenCV's largest
difference to ONNX Runtime as a share of each output's range. Usage (docs/DEPLOY.md):

    python tools/bench_opencv_dnn.py --weights accurate fast --threads 1,2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from tracker.backends.exported import export_graphs
from tracker.backends.graphs import EXEMPLAR_FILE, SEARCH_FILE, GraphSpec
from tracker.shipped import resolve_weights


def sessions(folder: Path, threads: int) -> dict:
    """One callable per runtime: (kernel, search) -> outputs in graph order."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(folder / SEARCH_FILE), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    net = cv2.dnn.readNetFromONNX(str(folder / SEARCH_FILE))

    def run_opencv(kernel: np.ndarray, search: np.ndarray) -> list[np.ndarray]:
        cv2.setNumThreads(threads)
        net.setInput(kernel, "kernel")
        net.setInput(search, "search")
        return list(net.forward(names))

    runs = {
        "ONNX Runtime": lambda k, x: session.run(names, {"kernel": k, "search": x}),
        "OpenCV DNN": run_opencv,
    }
    try:
        import openvino as ov

        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
        request = ov.Core().compile_model(str(folder / SEARCH_FILE), "CPU", config).create_infer_request()
        runs["OpenVINO"] = lambda k, x: list(request.infer({"kernel": k, "search": x}).values())
    except ImportError:
        pass
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", default=["accurate"], help="model names or weights files")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| weights | threads | runtime | search graph ms | largest difference to ONNX Runtime |")
    print("|---|---:|---|---:|---:|")
    for weights in args.weights:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            meta = export_graphs(resolve_weights(weights), folder, GraphSpec(scales=1, input_dtype="float32"))
            cfg = meta.model_config
            exemplar = ort.InferenceSession(str(folder / EXEMPLAR_FILE), providers=["CPUExecutionProvider"])
            z = rng.integers(0, 256, (1, cfg.exemplar_size, cfg.exemplar_size, 3)).astype(np.float32)
            x = rng.integers(0, 256, (1, cfg.search_size, cfg.search_size, 3)).astype(np.float32)
            kernel = exemplar.run(None, {"exemplar": z})[0]
            for threads in (int(t) for t in args.threads.split(",")):
                runs = sessions(folder, threads)
                reference = runs["ONNX Runtime"](kernel, x)
                times: dict[str, list[float]] = {name: [] for name in runs}
                for _ in range(10):
                    for run in runs.values():
                        run(kernel, x)
                for _ in range(args.calls):
                    for name, run in runs.items():
                        start = time.perf_counter()
                        run(kernel, x)
                        times[name].append(time.perf_counter() - start)
                for name, run in runs.items():
                    got = run(kernel, x)
                    diff = max(
                        float(np.abs(a - b).max() / (np.ptp(b) or 1.0)) for a, b in zip(got, reference, strict=True)
                    )
                    ms = 1000 * statistics.median(times[name])
                    print(f"| {weights} | {threads} | {name} | {ms:.2f} | {diff:.1e} of the range |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
