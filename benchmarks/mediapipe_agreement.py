"""MediaPipe Tasks' ImageClassifier on the recipes' real runs: top-1 agreement with edgecnn bench.

    python benchmarks/mediapipe_agreement.py [--recipes products traffic_signs crop_disease] [--out DIR]

For each recipe: train at its defaults (or reuse a finished run in --out), export float, FP16 and
INT8 TFLite (standard metadata, uint8 INT8 I/O: the defaults), then classify the recipe's whole test
split with MediaPipe (photos given resized by the contract, and at full size for MediaPipe to
resize) and with edgecnn's agent. Needs `pip install mediapipe` (the test extra has it). The
summary lands in benchmarks/results/mediapipe_agreement.json.
"""

from __future__ import annotations

import sys
import time

from recipe_runs import ROOT, arguments, cli, ensure_trained, recipe_runs, save

sys.path.insert(0, str(ROOT / "tests"))
from mediapipe_client import HOW, agreement  # noqa: E402

ARTIFACTS = ("model_fp32.tflite", "model_fp16.tflite", "model_int8.tflite")


def main() -> int:
    summary: dict = {}
    for r in recipe_runs(arguments(__doc__)):
        t = time.perf_counter()
        ensure_trained(r)
        cli("export", str(r.dir), "--float", "--fp16", "--int8", "--fallback-steps", "0")
        summary[r.name] = got = {name: agreement(r.dir / "export" / name, r.data / "test") for name in ARTIFACTS}
        print(f"{r.name} ({time.perf_counter() - t:.0f} s): " + "; ".join(
            f"{name} " + ", ".join(f"{how} {got[name][how]['agreement']:.2%}" for how in HOW)
            + f" of {got[name]['images']}" for name in ARTIFACTS), flush=True)
    save(summary, "mediapipe_agreement.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
