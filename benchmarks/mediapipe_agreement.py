"""MediaPipe Tasks' ImageClassifier on the recipes' real runs: top-1 agreement with edgecnn bench.

    python benchmarks/mediapipe_agreement.py [--recipes products traffic_signs crop_disease] [--out DIR]

For each recipe: train at its defaults (or reuse a finished run in --out), export float, FP16 and
INT8 TFLite (standard metadata, uint8 INT8 I/O: the defaults), then classify the recipe's whole test
split with MediaPipe (photos given resized by the contract, and at full size for MediaPipe to
resize) and with edgecnn's agent. Needs `pip install mediapipe` (the test extra has it). The
summary lands in benchmarks/results/mediapipe_agreement.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from edgecnn.paths import shared_data  # noqa: E402
from mediapipe_client import HOW, agreement  # noqa: E402

ARTIFACTS = ("model_fp32.tflite", "model_fp16.tflite", "model_int8.tflite")


def cli(*args: str) -> None:
    p = subprocess.run([sys.executable, "-m", "edgecnn.cli", *args], cwd=ROOT, text=True, capture_output=True)
    if p.returncode not in (0, 1, 3):
        sys.exit(f"edgecnn {' '.join(args)} failed:\n{p.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=["products", "traffic_signs", "crop_disease"])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks")
    a = ap.parse_args()
    summary = {}
    for r in a.recipes:
        data, run = shared_data() / r, a.out / r
        if not data.is_dir():
            print(f"skip {r}: {data} not found", file=sys.stderr)
            continue
        t = time.perf_counter()
        if not (run / "metrics.json").is_file():
            cli("train", "--recipe", r, "--data", str(data), "--out", str(run), "--quiet", "--overwrite")
        cli("export", str(run), "--float", "--fp16", "--int8", "--fallback-steps", "0")
        summary[r] = {name: agreement(run / "export" / name, data / "test") for name in ARTIFACTS}
        print(f"{r} ({time.perf_counter() - t:.0f} s): " + "; ".join(
            f"{name} " + ", ".join(f"{how} {summary[r][name][how]['agreement']:.2%}" for how in HOW)
            + f" of {summary[r][name]['images']}" for name in ARTIFACTS), flush=True)
    out = ROOT / "benchmarks" / "results" / "mediapipe_agreement.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
