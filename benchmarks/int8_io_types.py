"""INT8 TFLite with int8 vs uint8 input/output, on every recipe: accuracy, drop and latency side by side.

    python benchmarks/int8_io_types.py [--recipes products traffic_signs crop_disease] [--out DIR]

For each recipe: train at its defaults (or reuse a finished run in --out), export the INT8 TFLite
twice from the same model and calibration list (``--int8-input int8``, then ``uint8``, the default),
then bench the uint8 model with the int8 one as its ``--baseline`` (timed in turns in one process,
so the latency ratio is not a comparison of two noisy moments). Every step is the CLI in its own
process. The summary lands in benchmarks/results/int8_io_types.json.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

from recipe_runs import Run, arguments, cli, ensure_trained, recipe_runs, save

IO_TYPES = ("int8", "uint8")


def int8_record(run: Path) -> dict:
    rep = json.loads((run / "export" / "export_report.json").read_text())
    rec = next(r for r in rep["artifacts"] if r["artifact"] == "model_int8.tflite")
    return {k: rec.get(k) for k in ("size_mb", "accuracy", "accuracy_drop_pp", "worst_class", "top1_agreement")} | {
        "input_dtype": rec["runtime"]["input"]["dtype"], "float_accuracy": rep["reference"]["accuracy"],
        "eval_images": rep["eval_images"], "budget_verdict": (rep.get("budget") or {}).get("verdict")}


def one_recipe(r: Run) -> dict:
    ensure_trained(r)
    run, data = r.dir, r.data
    models, out = {}, {}
    for io in IO_TYPES:
        cli("export", str(run), "--int8", "--int8-input", io, "--fallback-steps", "0")
        out[io] = int8_record(run)
        models[io] = run / f"int8_io_{io}.tflite"
        shutil.copyfile(run / "export" / "model_int8.tflite", models[io])
    bench = run / "int8_io_bench.json"
    cli("bench", str(models["uint8"]), "--baseline", str(models["int8"]), "--data", str(data / "test"),
        "--threads", "2", "--repeat", "3", "--json", str(bench))
    b = json.loads(bench.read_text())["devices"][0]["records"][0]
    out["latency"] = {"uint8_p50_ms": b["latency_ms"]["p50"], "int8_p50_ms": b["baseline"]["latency_ms"]["p50"],
                      "p50_ratio_uint8_over_int8": b["vs_baseline"]["p50_ratio"],
                      "method": b["vs_baseline"]["method"]}
    out["bench_accuracy_uint8"] = b.get("accuracy")
    return out


def main() -> int:
    summary = {}
    for r in recipe_runs(arguments(__doc__)):
        t = time.perf_counter()
        summary[r.name] = s = one_recipe(r)
        print(f"{r.name}: int8 I/O {s['int8']['accuracy']:.2%} ({s['int8']['accuracy_drop_pp']:+.2f} pp), uint8 I/O "
              f"{s['uint8']['accuracy']:.2%} ({s['uint8']['accuracy_drop_pp']:+.2f} pp); p50 uint8/int8 "
              f"{s['latency']['p50_ratio_uint8_over_int8']:.3f} ({time.perf_counter() - t:.0f} s)", flush=True)
    save(summary, "int8_io_types.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
