"""The program that runs where the model runs: host, Jetson, emulated phone.

It needs numpy, Pillow and one runtime, never TensorFlow (with TensorFlow imported, LiteRT ran
about 2x slower here), and no Click. It reads one typed request (:class:`AgentRequest`, JSON),
loads the artifact and its contract, preprocesses images by the contract, measures latency and
accuracy, and writes one typed result (:class:`AgentResult`) or one failure line.

    python3 agent.pyz --request request.json [--result result.json]     (on a device)
    python3 -m edgecnn.agent --request -                                  (request on stdin)
    python3 agent.pyz --build-engine engine-request.json [--result ...]   (TensorRT, on the target)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ..core import contract as C
from ..core.artifact import format_of, read_contract
from ..core.errors import EdgecnnError, InputError
from ..core.images import scan_eval_folder, scan_unlabeled
from ..core.io import atomic_write_text
from ..core.protocol import (AgentFailure, AgentRequest, AgentResult, BaselineTiming, EngineBuildRequest, Evaluation,
                             Message, Predictions, Skipped, Tensor, VsBaseline)
from .runtimes import runner_for
from .runtimes.base import reconcile
from .timing import default_threads, measure_alternating, measure_latency, peak_rss_mb


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


def _tensor(spec) -> Tensor | None:
    return None if spec is None else Tensor(spec.name, tuple(spec.shape), spec.dtype, spec.quantization)


def _platform() -> dict:
    return {"machine": platform.machine(), "system": platform.system(), "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}


def _predict(r, contract, samples, outputs: str | None) -> Evaluation:
    """Top-1 of every labelled sample through the runner (the class scores saved to `outputs` when asked):
    the agent only predicts; the host compares the predictions with the reference's (evaluate.versus)."""
    probs = np.stack([r.probabilities(C.preprocess(s.path, contract)[None])[0] for s in samples])
    if outputs:
        np.save(outputs, probs.astype(np.float32))
    return Evaluation(paths=tuple(str(s.path) for s in samples), y_true=tuple(int(s.label) for s in samples),
                      top1=tuple(int(v) for v in probs.argmax(1)))


def _predict_unlabeled(r, contract, folder: str | None) -> tuple[Predictions | None, list[dict]]:
    """Top-1 of every readable photo under an unlabeled folder (the changes they show need no labels)."""
    if folder is None:
        return None, []
    paths, skipped = scan_unlabeled(folder)
    top1 = [int(r.probabilities(C.preprocess(p, contract)[None])[0].argmax()) for p in paths]
    return Predictions(paths=tuple(str(p) for p in paths), top1=tuple(top1)), skipped


def _versus(r, x: np.ndarray, req: AgentRequest, threads: int) -> dict:
    """The candidate (runner r, input x) and the baseline model timed in turns in this process."""
    baseline = Path(req.baseline)
    if not baseline.is_file():
        raise InputError(f"baseline model not found: {baseline}")
    bc = read_contract(baseline, required=False)
    with runner_for(baseline, threads=threads) as b:
        if bc is not None:
            bc = reconcile(b, bc, baseline)
        lat, blat = measure_alternating(r, x, b, latency_input(b, bc, []), req.warmup, req.runs, req.min_seconds)
        runtime = b.name
    return {"latency_ms": lat,
            "baseline": BaselineTiming(artifact=baseline.name, format=format_of(baseline),
                                       size_mb=round(baseline.stat().st_size / 1e6, 4), runtime=runtime,
                                       latency_ms=blat),
            "vs_baseline": VsBaseline(p50_ratio=lat.p50 / blat.p50, p90_ratio=lat.p90 / blat.p90,
                                      method="timed in turns in one process (blocks of 20 inferences)")}


def _pin(cpus: tuple[int, ...]) -> None:
    """Run on these CPU ids only; ids this machine does not offer are refused by name."""
    have = sorted(os.sched_getaffinity(0))
    missing = sorted(set(cpus) - set(have))
    if missing:
        raise InputError(f"--cpus {','.join(map(str, cpus))}: no CPU {', '.join(map(str, missing))} here; "
                         f"this machine offers CPUs {','.join(map(str, have))}")
    os.sched_setaffinity(0, set(cpus))


def run(req: AgentRequest) -> AgentResult:
    """Describe, time and evaluate one model as the request says."""
    if req.cpus:
        _pin(req.cpus)
    model = Path(req.model)
    contract = read_contract(model, required=req.data is not None or req.unlabeled is not None)
    threads = req.threads or default_threads()
    t_load = time.perf_counter()
    with runner_for(model, engine=req.engine, threads=threads) as r:
        load_ms = (time.perf_counter() - t_load) * 1e3
        if contract is not None:
            contract = reconcile(r, contract, model)
        samples, skipped = [], []
        if req.data is not None:
            samples, skipped = scan_eval_folder(Path(req.data), contract.labels)
            samples = samples[:req.max_images] if req.max_images else samples
        timing: dict = {}
        if req.latency and req.baseline is not None:
            timing = _versus(r, latency_input(r, contract, samples), req, threads)
        elif req.latency:
            timing = {"latency_ms": measure_latency(r, latency_input(r, contract, samples), req.warmup,
                                                    req.runs, req.min_seconds)}
        evaluation = _predict(r, contract, samples, req.outputs) if samples else None
        unlabeled, unread = _predict_unlabeled(r, contract, req.unlabeled)
        return AgentResult(
            artifact=model.name, format=format_of(model), size_mb=round(model.stat().st_size / 1e6, 4),
            runtime=r.name, runtime_version=str(r.version()), threads=r.threads, input=_tensor(r.input),
            output=_tensor(r.output), contract=contract, load_ms=round(load_ms, 2), platform=_platform(),
            tensorflow_imported="tensorflow" in sys.modules, warmup=req.warmup if req.latency else None,
            evaluation=evaluation, unlabeled=unlabeled,
            skipped=tuple(Skipped(s["path"], s["reason"]) for s in skipped + unread),
            peak_rss_mb=peak_rss_mb(), **timing)


def build_engine(req: EngineBuildRequest):
    from .tensorrt_build import build_engine as build
    return build(req)


def _write(reply: Message, dest: str | None) -> None:
    text = reply.to_json()
    if dest and dest != "-":
        atomic_write_text(dest, text)
    else:
        print(text, flush=True)


def _read_request(src: str, cls):
    text = sys.stdin.read() if src == "-" else Path(src).read_text(encoding="utf-8")
    return cls.from_json(text, source=f"request {src}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edgecnn-agent", description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--request", help="an AgentRequest as JSON (a file, or - for stdin)")
    what.add_argument("--build-engine", help="an EngineBuildRequest as JSON (a file, or - for stdin)")
    ap.add_argument("--result", help="write the reply here (default: stdout)")
    a = ap.parse_args(argv)
    try:
        if a.request is not None:
            reply = run(_read_request(a.request, AgentRequest))
        else:
            reply = build_engine(_read_request(a.build_engine, EngineBuildRequest))
    except EdgecnnError as e:
        _write(AgentFailure(error=str(e), exit_code=e.exit_code), a.result)
        return e.exit_code
    except OSError as e:
        _write(AgentFailure(error=f"{e.filename or 'I/O'}: {e.strerror or e}", exit_code=2), a.result)
        return 2
    _write(reply, a.result)
    return 0
