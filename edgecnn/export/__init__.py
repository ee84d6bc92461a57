"""`edgecnn export`: every artifact converted, written atomically, and measured against the float
model through its own runtime. Answers "what does INT8 cost me, and can I trust this file?"."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import contract as C
from .. import data as D
from .. import recipe as R
from ..artifact import read_contract, tflite_with_contract
from ..errors import BudgetError, InputError
from ..evaluate import compare
from ..io import atomic_write_bytes, atomic_write_json
from ..paths import REPO_ROOT
from ..runtimes import runner_for
from ..runtimes.base import reconcile

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class ExportOptions:
    run_dir: Path
    precisions: tuple[str, ...] = ("fp32", "int8")
    onnx: bool = False
    tensorrt: bool = False
    calibration: Path | None = None
    calibration_size: int | None = None
    max_drop: float | None = None
    eval_data: Path | None = None
    int8_input: str = "int8"
    fallback_steps: int = 6
    calibration_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("EDGECNN_CALIBRATION_DIR") or REPO_ROOT / "calibration"))
    seed: int = 0


@dataclass
class Run:
    dir: Path
    contract: C.Contract
    metrics: dict
    recipe: R.Recipe

    @property
    def data_root(self) -> Path | None:
        root = self.metrics.get("data", {}).get("root")
        return Path(root) if root and Path(root).is_dir() else None


def load_run(run_dir: Path) -> Run:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    contract = C.load(run_dir / "contract.json")
    if not (run_dir / "model.keras").is_file():
        raise InputError(f"{run_dir} has no model.keras (train it with 'edgecnn train')")
    metrics = {}
    if (run_dir / "metrics.json").is_file():
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text())
        except json.JSONDecodeError:
            raise InputError(f"{run_dir}/metrics.json is not valid JSON") from None
    name = contract.model.get("recipe")
    try:
        recipe = R.load(name) if name else R.Recipe(name="custom")
    except R.RecipeError:
        recipe = R.Recipe(name=name)
    return Run(run_dir, contract, metrics, recipe)


def _eval_samples(run: Run, eval_data: Path | None) -> tuple[list[D.Sample], str]:
    if eval_data is None:
        root = run.data_root
        if root is None or not (root / "test").is_dir():
            raise InputError("the run has no reachable test split: pass --eval-data DIR (class folders)")
        eval_data = root / "test"
    samples, _ = D.scan_eval_folder(eval_data, run.contract.labels)
    return samples, str(eval_data)


def evaluate_artifact(path: Path, x_float: np.ndarray, y: np.ndarray, ref: np.ndarray | None,
                      labels, paths, threads: int | None = None) -> dict:
    """Accuracy of an artifact through its own runtime, fed by its own contract."""
    contract = read_contract(path)
    with runner_for(path, threads=threads) as r:
        contract = reconcile(r, contract, path)
        xs = x_float if contract.input_dtype == "float32" else C.quantize(
            x_float, contract.input_dtype, contract.input_quantization)
        probs = np.concatenate([r.probabilities(xs[i:i + 64]) for i in range(0, len(xs), 64)])
        desc = r.describe()
    res = compare(y, probs.argmax(1), None if ref is None else ref.argmax(1), labels, paths)
    if ref is not None:
        res["max_abs_score_diff"] = float(np.abs(probs - ref).max())
    res["runtime"] = desc
    return res


def _record(path: Path, fmt: str, precision: str, seconds: float, ev: dict) -> dict:
    return {"artifact": path.name, "format": fmt, "precision": precision,
            "size_mb": round(path.stat().st_size / 1e6, 4), "export_s": round(seconds, 2), **ev}


def export(opts: ExportOptions, log: Callable[[str], None] = print) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_all = time.perf_counter()
    run = load_run(opts.run_dir)
    contract, recipe = run.contract, run.recipe
    out_dir = run.dir / "export"
    out_dir.mkdir(exist_ok=True)
    max_drop = recipe.budgets.max_int8_drop_pp if opts.max_drop is None else opts.max_drop
    size = opts.calibration_size or recipe.calibration_size
    precisions = tuple(p for p in PRECISIONS if p in opts.precisions)
    if opts.tensorrt and "int8" not in precisions:
        precisions += ("int8",)

    # -- data: evaluation set and calibration set, both preprocessed by the contract
    eval_samples, eval_source = _eval_samples(run, opts.eval_data)
    y = np.array([s.label for s in eval_samples])
    eval_paths = [str(s.path) for s in eval_samples]
    x_eval = C.preprocess_batch([s.path for s in eval_samples], contract)
    calib = None
    calib_source = calib_list = None
    if "int8" in precisions:
        train_samples = None
        if opts.calibration is None and run.data_root is not None:
            with tempfile.TemporaryDirectory() as cache:
                train_samples = D.scan(run.data_root, cache_dir=cache, progress=False).train
        from .calibration import load_batch, resolve
        calib_paths, calib_source, calib_list = resolve(
            opts.calibration, default_list=opts.calibration_dir / f"{recipe.name}.txt",
            data_root=run.data_root, train_samples=train_samples, size=size, recipe=recipe.name,
            seed=opts.seed, run_list=out_dir / "calibration.txt", log=log)
        calib = load_batch(calib_paths, contract)
        log(f"calibration: {len(calib)} images from {calib_source}")

    from ..native import captured_output
    with captured_output():  # TensorFlow's import-time log lines
        import keras
    model = keras.saving.load_model(str(run.dir / "model.keras"), compile=False)
    ref = np.concatenate([np.asarray(model.predict_on_batch(x_eval[i:i + 64]))
                          for i in range(0, len(x_eval), 64)])
    float_eval = compare(y, ref.argmax(1), None, contract.labels, eval_paths)
    log(f"float reference (Keras): accuracy {float_eval['accuracy']:.2%} on {len(y)} images of {eval_source}")

    from . import onnx as ONNX
    from . import tflite as TFL
    records: list[dict] = []

    def tflite_artifact(precision: str, data: bytes, name: str, t0: float, extra: dict | None = None) -> dict:
        path = out_dir / name
        tmp_probe = out_dir / f".probe-{name}"
        atomic_write_bytes(tmp_probe, data)   # read the real I/O types back before stamping the contract
        try:
            with runner_for(tmp_probe) as r:
                art_contract = contract.with_quantization(r.input.dtype, r.input.quantization,
                                                          r.output.quantization)
        finally:
            tmp_probe.unlink(missing_ok=True)
        atomic_write_bytes(path, tflite_with_contract(data, art_contract))
        rec = _record(path, "tflite", precision, time.perf_counter() - t0,
                      evaluate_artifact(path, x_eval, y, ref, contract.labels, eval_paths))
        rec.update(extra or {})
        records[:] = [r for r in records if r["artifact"] != name]   # a fallback step replaces the last
        records.append(rec)
        log(f"wrote {name}: {rec['size_mb']:.2f} MB, accuracy {rec['accuracy']:.2%} "
            f"(drop {rec['accuracy_drop_pp']:+.2f} pp, agreement {rec['top1_agreement']:.2%})")
        return rec

    for p in precisions:
        t0 = time.perf_counter()
        data = TFL.convert(model, p, calib if p == "int8" else None, input_type=opts.int8_input)
        tflite_artifact(p, data, f"model_{p}.tflite", t0)

    if opts.onnx or opts.tensorrt:
        fp32_onnx = out_dir / "model_fp32.onnx"
        t0 = time.perf_counter()
        ONNX.export_float(model, contract, fp32_onnx)
        if "fp32" in precisions or opts.onnx:
            rec = _record(fp32_onnx, "onnx", "fp32", time.perf_counter() - t0,
                          evaluate_artifact(fp32_onnx, x_eval, y, ref, contract.labels, eval_paths))
            records.append(rec)
            log(f"wrote {fp32_onnx.name}: {rec['size_mb']:.2f} MB, accuracy {rec['accuracy']:.2%}")
        if "int8" in precisions:
            t0 = time.perf_counter()
            qdq = out_dir / "model_int8_qdq.onnx"
            facts = ONNX.export_qdq(fp32_onnx, contract, calib, qdq)
            rec = _record(qdq, "onnx", "int8-qdq", time.perf_counter() - t0,
                          evaluate_artifact(qdq, x_eval, y, ref, contract.labels, eval_paths))
            rec["qdq"] = facts
            records.append(rec)
            log(f"wrote {qdq.name}: {rec['size_mb']:.2f} MB, accuracy {rec['accuracy']:.2%} "
                f"(drop {rec['accuracy_drop_pp']:+.2f} pp), {facts['quantize_nodes']} Q/DQ pairs, zero points all 0")

    # -- accuracy budget on the INT8 TFLite, with per-layer sensitivity fallback
    budget = None
    int8 = next((r for r in records if r["artifact"] == "model_int8.tflite"), None)
    if int8 is not None:
        budget = {"max_drop_pp": max_drop, "int8_drop_pp": int8["accuracy_drop_pp"],
                  "pass": int8["accuracy_drop_pp"] <= max_drop, "fallback": None}
        if not budget["pass"]:
            log(f"INT8 drop {int8['accuracy_drop_pp']:.2f} pp exceeds the budget of {max_drop} pp: "
                f"measuring per-layer quantisation sensitivity")
            budget["fallback"] = fb = _fallback(model, calib, opts, max_drop, tflite_artifact, log)
            budget["pass"] = fb["pass"]
            if fb["artifact"]:
                fb["cost"] = _fallback_cost(out_dir / "model_int8.tflite", out_dir / fb["artifact"])
                log(f"fallback cost: {fb['cost']['size_mb']['mixed']:.2f} MB vs {fb['cost']['size_mb']['int8']:.2f} MB, "
                    f"p50 {fb['cost']['latency_p50_ms']['mixed']:.2f} ms vs {fb['cost']['latency_p50_ms']['int8']:.2f} ms")

    trt_info = None
    if opts.tensorrt:
        from ..runtimes.base import RuntimeMissing
        from . import tensorrt as TRT
        try:
            trt_info = TRT.build_engine(out_dir / "model_int8_qdq.onnx", out_dir / "model_int8.engine",
                                        timing_cache=out_dir / "tensorrt.timing.cache", log=log)
        except RuntimeMissing as e:
            trt_info = {"built": False, "reason": str(e)}
            log(f"tensorrt: skipped: {e}")

    report = {
        "run": str(run.dir), "recipe": recipe.name, "eval_data": eval_source, "eval_images": len(y),
        "calibration": {"source": calib_source, "list": str(calib_list) if calib_list else None,
                        "images": int(len(calib)) if calib is not None else 0},
        "reference": {"artifact": "model.keras", "format": "keras", "accuracy": float_eval["accuracy"]},
        "artifacts": records, "budget": budget, "tensorrt": trt_info,
        "export_s": round(time.perf_counter() - t_all, 2),
    }
    atomic_write_json(out_dir / "export_report.json", report)
    return report


def check_budget(report: dict) -> None:
    """Raise BudgetError when the report's INT8 accuracy budget does not hold."""
    b = report.get("budget")
    if b is not None and not b["pass"]:
        raise BudgetError(f"INT8 accuracy drop {b['int8_drop_pp']:.2f} pp exceeds the budget of {b['max_drop_pp']} pp "
                          f"and keeping the most sensitive ops in float did not bring it within budget; "
                          f"every artifact and export_report.json were kept in {report['run']}/export")


def _fallback_cost(int8: Path, mixed: Path, runs: int = 100) -> dict:
    """Size and p50 latency of the mixed model vs full INT8, measured side by side by the agent in
    fresh processes (never with TensorFlow imported), best of two interleaved rounds."""
    from ..devices import get_device

    host = get_device("host")
    args = ["--runs", str(runs), "--warmup", "10", "--threads", "2"]
    p50 = {"int8": [], "mixed": []}
    for _ in range(2):
        for key, path in (("int8", int8), ("mixed", mixed)):
            p50[key].append(host.run_agent(path, args)["latency_ms"]["p50"])
    lat = {k: min(v) for k, v in p50.items()}
    size = {"int8": round(int8.stat().st_size / 1e6, 4), "mixed": round(mixed.stat().st_size / 1e6, 4)}
    return {"size_mb": size, "latency_p50_ms": lat, "latency_ratio": lat["mixed"] / lat["int8"],
            "note": "host CPU, 2 threads, fresh processes without TensorFlow"}


def _fallback(model, calib, opts: ExportOptions, max_drop: float, write, log) -> dict:
    from . import tflite as TFL

    t0 = time.perf_counter()
    ranking = TFL.layer_sensitivity(model, calib)
    log(f"sensitivity: {len(ranking)} layers ranked in {time.perf_counter() - t0:.0f} s; most sensitive: "
        + ", ".join(f"{d['op']} {d['rmse_per_step']:.2f}" for d in ranking[:3]))
    steps, k = [], 1
    while k <= len(ranking) and len(steps) < opts.fallback_steps:
        steps.append(k)
        k *= 2
    tried = []
    for k in steps:
        t = time.perf_counter()
        nodes = [d["tensor"] for d in ranking[:k]]
        data = TFL.convert_int8_with_float_ops(model, calib, nodes, input_type=opts.int8_input)
        rec = write("int8-mixed", data, "model_int8_mixed.tflite", t,
                    {"float_ops": [{"tensor": d["tensor"], "op": d["op"],
                                    "rmse_per_step": round(d["rmse_per_step"], 4)} for d in ranking[:k]]})
        tried.append({"float_ops": k, "accuracy_drop_pp": rec["accuracy_drop_pp"], "size_mb": rec["size_mb"]})
        if rec["accuracy_drop_pp"] <= max_drop:
            log(f"fallback: budget holds with {k} op(s) in float")
            return {"pass": True, "artifact": rec["artifact"], "float_ops": rec["float_ops"], "steps": tried,
                    "ranking": ranking[:32]}
    return {"pass": False, "artifact": "model_int8_mixed.tflite" if tried else None,
            "float_ops": rec["float_ops"] if tried else [], "steps": tried, "ranking": ranking[:32]}
