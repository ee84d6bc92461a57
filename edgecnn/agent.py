"""The program that runs where the model runs: host, Jetson, emulated phone.

It needs numpy, Pillow and one runtime, never TensorFlow (with TensorFlow imported, LiteRT ran
about 2x slower here), and no Click: argparse only, so a bare board with python3 can run it. It
reads the artifact and its contract, preprocesses images by the contract, measures latency and
accuracy, and prints (or writes) one JSON document.

    python -m edgecnn.agent MODEL [--data DIR] [--threads N] [--runs N] [--baseline MODEL] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a plain file from a zip or folder: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "edgecnn"

from edgecnn import contract as C  # noqa: E402
from edgecnn.artifact import format_of, read_contract  # noqa: E402
from edgecnn.errors import EdgecnnError, InputError  # noqa: E402
from edgecnn.runtimes import runner_for  # noqa: E402
from edgecnn.runtimes.base import reconcile  # noqa: E402

SCHEMA = "edgecnn.agent/1"


def latency_stats(samples_ns: list[int]) -> dict:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(a.mean()),
            "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "min": float(a.min()), "max": float(a.max()),
            "n": int(len(a))}


def _infer_one(runner):
    """The runner's latency path (no copy-out) where it has one, else a full inference."""
    return getattr(runner, "infer_one", None) or (lambda v: runner.infer(v))


def measure_latency(runner, x: np.ndarray, warmup: int, runs: int, min_seconds: float) -> dict:
    """Single-image latency: warm-up, then at least `runs` timed inferences and `min_seconds`."""
    one = _infer_one(runner)
    for _ in range(warmup):
        one(x)
    times: list[int] = []
    start = time.perf_counter()
    while len(times) < runs or (time.perf_counter() - start) < min_seconds:
        t0 = time.perf_counter_ns()
        one(x)
        times.append(time.perf_counter_ns() - t0)
        if len(times) >= 100 * max(runs, 1):
            break
    return latency_stats(times)


def measure_alternating(a, xa: np.ndarray, b, xb: np.ndarray, warmup: int, runs: int, min_seconds: float,
                        block: int = 20, settle: int = 3) -> tuple[dict, dict]:
    """Latency of two models measured in turns in one process: blocks of `block` timed inferences,
    A then B, each block's first `settle` inferences untimed (the other model has just used the caches).
    A slow spell of a busy machine lands on both, so their ratio holds where absolute times do not."""
    one_a, one_b = _infer_one(a), _infer_one(b)
    for _ in range(warmup):
        one_a(xa)
        one_b(xb)
    ta: list[int] = []
    tb: list[int] = []

    def turn(one, x, out):
        for _ in range(settle):
            one(x)
        for _ in range(block):
            t0 = time.perf_counter_ns()
            one(x)
            out.append(time.perf_counter_ns() - t0)

    start = time.perf_counter()
    while len(ta) < runs or (time.perf_counter() - start) < min_seconds:
        turn(one_a, xa, ta)
        turn(one_b, xb, tb)
        if len(ta) >= 100 * max(runs, 1):
            break
    return latency_stats(ta), latency_stats(tb)


def latency_input(r, contract, samples) -> np.ndarray:
    """One input for timing: the first image by the contract, else contract-shaped random pixels."""
    if samples:
        x = C.preprocess(samples[0].path, contract)[None]
    else:
        rng = np.random.default_rng(0)
        shape = tuple(v or 1 for v in r.input.shape)
        x = rng.integers(0, 256, shape).astype(np.float32)
        if contract is not None:
            x = C.preprocess_array(x[0].astype(np.uint8), contract)[None]
        elif r.input.dtype != "float32":
            info = np.iinfo(r.input.dtype)
            x = rng.integers(info.min, info.max + 1, shape).astype(r.input.dtype)
        else:
            x = (x / 127.5 - 1.0).astype(np.float32)
    return np.ascontiguousarray(x.astype(r.input.dtype, copy=False))


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process. Linux: VmHWM, which starts afresh at exec (ru_maxrss
    would carry over the high-water mark of the parent that spawned us, e.g. one holding TensorFlow)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    try:
        import resource
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(kb / 1024 if sys.platform != "darwin" else kb / 2**20, 1)
    except Exception:
        return None


def default_threads() -> int:
    """All cores up to 4 (LiteRT alone would use one thread)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, min(4, n))


def run(model: Path, *, data: Path | None = None, engine: str | None = None, threads: int | None = None,
        warmup: int = 10, runs: int = 100, min_seconds: float = 0.0, latency: bool = True,
        max_images: int | None = None, outputs: Path | None = None, cpus: list[int] | None = None,
        baseline: Path | None = None) -> dict:
    """Describe, time and evaluate one model. With `baseline`, both models are timed in turns in this
    process (measure_alternating) and the result carries the baseline's latency and the ratios."""
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    contract = read_contract(model, required=data is not None)
    threads = threads or default_threads()
    t_load = time.perf_counter()
    with runner_for(model, engine=engine, threads=threads) as r:
        load_ms = (time.perf_counter() - t_load) * 1e3
        if contract is not None:
            contract = reconcile(r, contract, model)
        result = {"schema": SCHEMA, "artifact": model.name, "format": format_of(model),
                  "size_mb": round(model.stat().st_size / 1e6, 4), **r.describe(),
                  "load_ms": round(load_ms, 2), "contract": contract.to_dict() if contract else None,
                  "platform": {"machine": platform.machine(), "system": platform.system(),
                               "python": platform.python_version(), "cpus": os.cpu_count(),
                               "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
                  "tensorflow_imported": "tensorflow" in sys.modules}
        samples = []
        if data is not None:
            from edgecnn.data import scan_eval_folder
            samples, skipped = scan_eval_folder(data, contract.labels)
            samples = samples[:max_images] if max_images else samples
            result["skipped"] = skipped
        if latency and baseline is not None:
            result.update(_versus(r, latency_input(r, contract, samples), baseline, threads,
                                  warmup, runs, min_seconds))
        elif latency:
            lat = measure_latency(r, latency_input(r, contract, samples), warmup, runs, min_seconds)
            result.update(latency_ms=lat, throughput_ips=round(1000.0 / lat["mean"], 2), warmup=warmup)
        if samples:
            probs = []
            for s in samples:
                probs.append(r.probabilities(C.preprocess(s.path, contract)[None])[0])
            probs = np.stack(probs)
            y = np.array([s.label for s in samples])
            pred = probs.argmax(1)
            result.update(accuracy=float((pred == y).mean()), images=len(samples),
                          paths=[str(s.path) for s in samples], y_true=y.tolist(), top1=pred.tolist())
            if outputs is not None:
                np.save(outputs, probs.astype(np.float32))
                result["outputs_file"] = str(outputs)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def _versus(r, x: np.ndarray, baseline: Path, threads: int, warmup: int, runs: int, min_seconds: float) -> dict:
    """The candidate (runner r, input x) and the baseline model timed in turns; the ratios."""
    baseline = Path(baseline)
    if not baseline.is_file():
        raise InputError(f"baseline model not found: {baseline}")
    bc = read_contract(baseline, required=False)
    with runner_for(baseline, threads=threads) as b:
        if bc is not None:
            bc = reconcile(b, bc, baseline)
        lat, blat = measure_alternating(r, x, b, latency_input(b, bc, []), warmup, runs, min_seconds)
        bdesc = b.describe()
    return {"latency_ms": lat, "throughput_ips": round(1000.0 / lat["mean"], 2), "warmup": warmup,
            "baseline": {"artifact": baseline.name, "format": format_of(baseline),
                         "size_mb": round(baseline.stat().st_size / 1e6, 4), "runtime": bdesc.get("runtime"),
                         "latency_ms": blat},
            "vs_baseline": {"p50_ratio": lat["p50"] / blat["p50"], "p90_ratio": lat["p90"] / blat["p90"],
                            "method": "timed in turns in one process (blocks of 20 inferences)"},
            "peak_rss_includes_baseline": True}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edgecnn-agent", description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--data", type=Path, help="class folders for accuracy")
    ap.add_argument("--engine", help="runner name (default: by file format)")
    ap.add_argument("--threads", type=int, help="inference threads (default: all cores up to 4)")
    ap.add_argument("--cpus", help="comma-separated CPU ids to pin to")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--min-seconds", type=float, default=0.0)
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--baseline", type=Path, help="a second model timed in turns with MODEL (ratios in the JSON)")
    ap.add_argument("--max-images", type=int)
    ap.add_argument("--outputs", type=Path, help="save the class scores (N, classes) as .npy")
    ap.add_argument("--json", type=Path, help="write the result here instead of stdout")
    a = ap.parse_args(argv)
    try:
        res = run(a.model, data=a.data, engine=a.engine, threads=a.threads, warmup=a.warmup, runs=a.runs,
                  min_seconds=a.min_seconds, latency=not a.no_latency, max_images=a.max_images,
                  outputs=a.outputs, cpus=[int(c) for c in a.cpus.split(",")] if a.cpus else None,
                  baseline=a.baseline)
    except EdgecnnError as e:
        print(json.dumps({"schema": SCHEMA, "error": str(e), "exit_code": e.exit_code}))
        return e.exit_code
    text = json.dumps(res)
    if a.json:
        tmp = a.json.with_name(a.json.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, a.json)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
