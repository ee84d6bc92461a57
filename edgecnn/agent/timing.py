"""Timing on the device: single-image latency, two models timed in turns, peak memory, threads."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from ..core.protocol import Latency


def latency_stats(samples_ns: list[int]) -> Latency:
    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return Latency(p50=float(p50), p90=float(p90), p99=float(p99), mean=float(a.mean()),
                   std=float(a.std(ddof=1)) if len(a) > 1 else 0.0, min=float(a.min()), max=float(a.max()),
                   n=int(len(a)))


def _infer_one(runner):
    """The runner's latency path (no copy-out) where it has one, else a full inference."""
    return getattr(runner, "infer_one", None) or (lambda v: runner.infer(v))


def measure_latency(runner, x: np.ndarray, warmup: int, runs: int, min_seconds: float) -> Latency:
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
                        block: int = 20, settle: int = 3) -> tuple[Latency, Latency]:
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
