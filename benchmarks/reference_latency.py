"""Our INT8 / float TFLite exports of MobileNetV2 1.0 at 224 against Google's two reference INT8
MobileNetV2 1.0/224 models, measured interleaved in one run, each in a fresh agent process that
never imports TensorFlow; then the same pairs timed in turns inside one agent process (--baseline),
and the repeatability of five `edgecnn bench` runs, absolute and against a baseline. Prints and
saves the ratios.

    python benchmarks/reference_latency.py [--rounds 5] [--runs 200] [--threads 2]

Our models are built with the project's own export code (edgecnn.export.tflite) from the local
ImageNet backbone and a 10-class head, calibrated on real product photos: latency does not depend
on the head's training. Results go to benchmarks/results/reference_latency.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgecnn.paths import shared_data  # noqa: E402


def build_ours(out: Path) -> dict[str, Path]:
    """model_fp32.tflite and model_int8.tflite at 224, with an embedded contract."""
    from edgecnn.core import contract as C
    from edgecnn import model as M
    from edgecnn.core.artifact import tflite_with_contract
    from edgecnn.export.tflite import convert
    from edgecnn.agent.runtimes import runner_for

    photos = sorted((shared_data() / "products" / "train").glob("*/*.jpg"))[::9][:100]
    labels = tuple(sorted(p.name for p in (shared_data() / "products" / "train").iterdir()))
    contract = C.Contract(input_size=(224, 224), labels=labels, model={"arch": "mobilenet_v2", "alpha": 1.0})
    model = M.build(len(labels), 224, weights=M.resolve_weights(None))
    calib = C.preprocess_batch(photos, contract)
    paths = {}
    for precision in ("fp32", "int8"):
        data = convert(model, precision, calib if precision == "int8" else None)
        probe = out / f"probe_{precision}.tflite"
        probe.write_bytes(data)
        with runner_for(probe) as r:
            c = contract.with_quantization(r.input.dtype, r.input.quantization, r.output.quantization)
        paths[f"ours_{precision}"] = out / f"model_{precision}.tflite"
        paths[f"ours_{precision}"].write_bytes(tflite_with_contract(data, c))
        probe.unlink()
    return paths


def agent_p50(model: Path, runs: int, threads: int, min_seconds: float, baseline: Path | None = None) -> dict:
    """One fresh agent process on the host device (the typed request bench sends), as JSON."""
    from edgecnn.core.protocol import AgentRequest
    from edgecnn.devices import get_device
    req = AgentRequest(model=str(model), runs=runs, warmup=20, threads=threads, min_seconds=min_seconds,
                       baseline=str(baseline) if baseline else None)
    with get_device("host") as host:
        res = host.run(req)
    assert not res.tensorflow_imported
    return res.to_dict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=2.0, help="timing window of each measurement")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "reference_latency.json")
    a = ap.parse_args()
    ref = shared_data() / "weights" / "reference"
    if not ref.is_dir():
        print(f"reference models not found in {ref}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        models = build_ours(Path(tmp))
        build_s = time.perf_counter() - t
        models["google_tf2_ptq_int8"] = ref / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
        models["google_qat_uint8"] = ref / "mobilenet_v2_1.0_224_quant.tflite"
        rng = random.Random(0)
        p50s: dict[str, list[float]] = {k: [] for k in models}
        sizes = {k: round(p.stat().st_size / 1e6, 3) for k, p in models.items()}
        for rnd in range(a.rounds):
            order = list(models)
            rng.shuffle(order)  # interleaved, in a different order each round
            for k in order:
                p50s[k].append(agent_p50(models[k], a.runs, a.threads, a.min_seconds)["latency_ms"]["p50"])
            print(f"round {rnd + 1}/{a.rounds}: " + ", ".join(f"{k} {p50s[k][-1]:.2f} ms" for k in models),
                  flush=True)
        # the same comparisons timed in turns in one process (agent --baseline): a slow spell of this
        # shared machine lands on both models of a pair, so the ratio holds where absolute times drift
        pairs = {"ours_int8_vs_google_tf2_ptq": ("ours_int8", "google_tf2_ptq_int8"),
                 "ours_int8_vs_google_qat": ("ours_int8", "google_qat_uint8"),
                 "ours_fp32_vs_ours_int8": ("ours_fp32", "ours_int8")}
        turns: dict[str, list[float]] = {k: [] for k in pairs}
        for rnd in range(a.rounds):
            for k, (m, base) in pairs.items():
                turns[k].append(agent_p50(models[m], a.runs, a.threads, a.min_seconds,
                                          baseline=models[base])["vs_baseline"]["p50_ratio"])
            print(f"in turns, round {rnd + 1}/{a.rounds}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in turns.items()),
                  flush=True)
        # wall time of one CLI bench of one artifact with 200 inferences (no minimum window)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "edgecnn.cli", "bench", str(models["ours_int8"]), "--runs", "200",
                        "--warmup", "20", "--min-seconds", "0", "--threads", str(a.threads)],
                       capture_output=True, text=True, cwd=ROOT, check=True)
        bench_wall = time.perf_counter() - t
        # repeatability: five back-to-back `edgecnn bench` runs of our INT8 at the CLI defaults
        repeat = []
        for _ in range(5):
            with tempfile.NamedTemporaryFile(suffix=".json") as jf:
                subprocess.run([sys.executable, "-m", "edgecnn.cli", "bench", str(models["ours_int8"]),
                                "--threads", str(a.threads), "--json", jf.name],
                               capture_output=True, text=True, cwd=ROOT, check=True)
                repeat.append(json.loads(Path(jf.name).read_text())["devices"][0]["records"][0]["latency_ms"]["p50"])
        # the same five runs' question asked as a CI gate would: our INT8 against a baseline, in turns
        repeat_ratio = []
        for _ in range(5):
            with tempfile.NamedTemporaryFile(suffix=".json") as jf:
                subprocess.run([sys.executable, "-m", "edgecnn.cli", "bench", str(models["ours_int8"]),
                                "--baseline", str(models["google_tf2_ptq_int8"]),
                                "--threads", str(a.threads), "--json", jf.name],
                               capture_output=True, text=True, cwd=ROOT, check=True)
                repeat_ratio.append(json.loads(Path(jf.name).read_text())["devices"][0]["records"][0]["vs_baseline"]["p50_ratio"])

    med = {k: statistics.median(v) for k, v in p50s.items()}
    ours = repeat
    result = {
        "threads": a.threads, "runs_per_measurement": a.runs, "min_seconds": a.min_seconds, "rounds": a.rounds, "sizes_mb": sizes,
        "p50_ms_per_round": p50s, "p50_ms_median": med,
        "ratios": {
            "ours_int8_vs_google_tf2_ptq": med["ours_int8"] / med["google_tf2_ptq_int8"],
            "ours_int8_vs_google_qat": med["ours_int8"] / med["google_qat_uint8"],
            "ours_fp32_vs_ours_int8": med["ours_fp32"] / med["ours_int8"],
        },
        "repeat_bench_p50_ms": repeat,
        "repeat_bench_p50_spread_pct": 100 * (max(ours) - min(ours)) / statistics.median(ours),
        "repeat_bench_p50_cv_pct": 100 * statistics.stdev(ours) / statistics.mean(ours),
        "ratios_in_turns_median": {k: statistics.median(v) for k, v in turns.items()},
        "ratios_in_turns_per_round": turns,
        "repeat_bench_baseline_p50_ratio": repeat_ratio,
        "repeat_bench_baseline_p50_ratio_cv_pct": 100 * statistics.stdev(repeat_ratio) / statistics.mean(repeat_ratio),
        "repeat_bench_baseline_p50_ratio_spread_pct":
            100 * (max(repeat_ratio) - min(repeat_ratio)) / statistics.median(repeat_ratio),
        "bench_one_artifact_200_runs_wall_s": round(bench_wall, 2),
        "build_ours_s": round(build_s, 1),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    r = result["ratios"]
    print(f"\nmedian p50 over {a.rounds} interleaved rounds, {a.threads} threads, {a.runs} runs each:")
    for k, v in med.items():
        print(f"  {k:<22} {v:7.2f} ms  {sizes[k]:5.2f} MB")
    print(f"ours INT8 / Google TF2 PTQ INT8: {r['ours_int8_vs_google_tf2_ptq']:.2f}  (goal <= 1.0)")
    print(f"ours INT8 / Google QAT uint8:    {r['ours_int8_vs_google_qat']:.2f}")
    print(f"ours float / ours INT8:          {r['ours_fp32_vs_ours_int8']:.2f}x (goal >= 2.2x)")
    print(f"ours INT8 p50 over 5 repeated 'edgecnn bench' runs: {', '.join(f'{v:.3f}' for v in repeat)} ms: "
          f"spread {result['repeat_bench_p50_spread_pct']:.1f}% (max-min)/median, "
          f"CV {result['repeat_bench_p50_cv_pct']:.1f}% (goal <= 5%)")
    rt = result["ratios_in_turns_median"]
    print(f"timed in turns in one process (median of {a.rounds}): ours INT8 / Google TF2 PTQ "
          f"{rt['ours_int8_vs_google_tf2_ptq']:.3f}, ours INT8 / Google QAT {rt['ours_int8_vs_google_qat']:.3f}, "
          f"ours float / ours INT8 {rt['ours_fp32_vs_ours_int8']:.2f}x")
    print(f"ours INT8 / Google TF2 PTQ p50 ratio over 5 repeated 'edgecnn bench --baseline' runs: "
          f"{', '.join(f'{v:.3f}' for v in repeat_ratio)}: CV {result['repeat_bench_baseline_p50_ratio_cv_pct']:.1f}%, "
          f"spread {result['repeat_bench_baseline_p50_ratio_spread_pct']:.1f}%")
    print(f"wall time of 'edgecnn bench' of one artifact with 200 inferences: {bench_wall:.1f} s")
    print(f"saved {a.out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
