"""The four artifact kinds on the stand-in Arm64 board (edgecnn.emulation.standin) next to the host.

For INT8 and float TFLite (LiteRT) and the float and Q/DQ ONNX (ONNX Runtime) of one exported run,
the same labelled images go through the host's agent and the board's (aarch64 Python under QEMU,
over SSH): accuracy on both, top-1 agreement, how many class scores differ and by how much (in LSB
of the quantized output where there is one), and the latency on each (the board's is the
emulation's: it says nothing about a Jetson). Also the board's build (when it is not cached) and
start times. Starts the board when none runs, and stops it again.

    python benchmarks/arm64_board.py [--run runs/benchmarks/products] [--data DIR] [--max-images 100]

Results: results/arm64_board.json. Needs root (see edgecnn.emulation.standin).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.recipe_runs import save  # noqa: E402
from edgecnn.emulation import standin  # noqa: E402
from edgecnn.core.protocol import AgentRequest  # noqa: E402
from edgecnn.devices import get_device  # noqa: E402
from edgecnn.devices.emulated import agreement  # noqa: E402
from edgecnn.devices.host import HostDevice  # noqa: E402
from edgecnn.paths import shared_data  # noqa: E402

ARTIFACTS = ("model_int8.tflite", "model_fp32.tflite", "model_fp32.onnx", "model_int8_qdq.onnx")


def compare(artifact: Path, data: Path, max_images: int, board, host) -> dict:
    """One artifact on the host and on the board: accuracy, agreement, score differences, latency."""
    common = dict(model=str(artifact), data=str(data), max_images=max_images, outputs="outputs.npy",
                  warmup=3, min_seconds=0.0)
    on_host = host.run(AgentRequest(**common, runs=200))
    on_board = board.run(AgentRequest(**common, runs=20))
    q = on_host.output.quantization if on_host.output else None
    agree = agreement(on_host.outputs, on_board.outputs, q is not None, q.scale if q else None)
    return {"artifact": artifact.name, "runtime": on_board.runtime, "runtime_version": on_board.runtime_version,
            "images": on_board.evaluation.images, "host_accuracy": on_host.evaluation.accuracy,
            "board_accuracy": on_board.evaluation.accuracy, **{k: agree[k] for k in agree if k != "images"},
            "host_p50_ms": on_host.latency_ms.p50, "board_p50_ms": on_board.latency_ms.p50,
            "board_over_host": on_board.latency_ms.p50 / on_host.latency_ms.p50,
            "board_machine": on_board.device_detail.get("machine"), "board_notes": list(on_board.notes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=ROOT / "runs/benchmarks/products")
    ap.add_argument("--data", type=Path, default=shared_data() / "products" / "test")
    ap.add_argument("--max-images", type=int, default=100)
    args = ap.parse_args()
    started = standin.status() is None
    t0 = time.perf_counter()
    state = standin.start(port=standin.DEFAULT_PORT) if started else standin.status()
    try:
        rows = []
        with get_device("jetson", **state.device_options()) as board, HostDevice() as host:
            for name in ARTIFACTS:
                rows.append(compare(args.run / "export" / name, args.data, args.max_images, board, host))
                r = rows[-1]
                lsb = f"{r['max_diff_lsb']} LSB" if "max_diff_lsb" in r else f"{r['max_abs_diff']:.2g}"
                print(f"{r['artifact']:<22} {r['runtime']:<12} images {r['images']:>4}  host {r['host_accuracy']:.2%}"
                      f"  board {r['board_accuracy']:.2%}  agree {r['top1_agreement']:.1%}  scores differing "
                      f"{r['values_differing']}/{r['values']} (max {lsb})  p50 host {r['host_p50_ms']:.2f} ms, "
                      f"board {r['board_p50_ms']:.1f} ms (x{r['board_over_host']:.0f})", flush=True)
    finally:
        if started:
            t1 = time.perf_counter()
            left = standin.stop()
            stop_s = time.perf_counter() - t1
    save({"board": {"core": state.core, "built_s": state.built_s, "start_s": state.start_s,
                    "stop_s": round(stop_s, 2) if started else None, "left_after_stop": left if started else None,
                    "started_here": started, "wall_s": round(time.perf_counter() - t0, 1)},
          "run": str(args.run.name), "data": str(args.data.name), "max_images": args.max_images, "artifacts": rows},
         "arm64_board.json")


if __name__ == "__main__":
    main()
