"""`edgecnn export`: every artifact converted, written atomically, and measured against the float
model through its own runtime. Answers "what does INT8 cost me, and can I trust this file?"."""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .. import data as D
from ..core import contract as C
from ..core.artifact import model_card, read_contract, tflite_with_contract
from .. import verdict as V
from ..core.errors import InputError
from ..core.images import scan_eval_folder, scan_unlabeled
from ..core.io import atomic_write_bytes, sha256_file
from ..agent.runtimes import runner_for
from ..agent.runtimes.base import reconcile
from ..evaluate import accuracy, changes_without_labels, versus
from ..paths import builtin
from .. import results
from ..results import (CalibrationUsed, Comparison, ExportBudget, ExportRecord, ExportReport, Fallback, FallbackCost,
                       KerasReference, UnlabeledSet)
from .budget import decision, fallback_steps, search_fallback
from .graph import integer_only
from .route import HeldOut, int8_route, litert_scores, ort_scores
from ..rundir import EXPORT_REPORT, Run, load_run

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
    unlabeled: Path | None = None     # photos without labels: their changed predictions bound the drop
    int8_input: str = "uint8"         # the INT8 TFLite's I/O type: uint8 is what standard clients feed
    fallback_steps: int = 6
    int8_route: str = "auto"          # ptq, bias-correction, or auto: chosen on the run's held-out images
    point_estimate: bool = False      # judge the INT8 budget on the point estimate alone (no interval)
    author: str | None = None         # model card fields of the standard metadata
    license: str | None = None
    calibration_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("EDGECNN_CALIBRATION_DIR") or builtin("calibration")))   # recorded lists, read only
    seed: int = 0


@dataclass
class EvalSet:
    """The labelled images every artifact is judged on, preprocessed once by the contract."""

    x: np.ndarray
    y: np.ndarray
    paths: list[str]
    source: str
    skipped: list[dict]
    unlabeled: "Unlabeled | None" = None


@dataclass
class Unlabeled:
    """Photos of the domain without labels, preprocessed once; their changes are evidence too."""

    x: np.ndarray
    paths: list[str]
    source: str
    skipped: list[dict]


@dataclass
class _Export:
    """What the steps of one export share."""

    opts: ExportOptions
    run: Run
    eval: EvalSet
    calib: np.ndarray | None
    calib_info: dict
    model: object                      # the Keras model (converters take it)
    reference: np.ndarray              # its class scores on eval.x, through the Keras runner
    reference_unlabeled: np.ndarray | None   # and on the unlabeled photos
    held_out: HeldOut | None           # the run's validation images (route choice only, never judged)
    log: Callable[[str], None]
    records: list[ExportRecord] = field(default_factory=list)

    @property
    def out_dir(self) -> Path:
        return self.run.export_dir

    @property
    def contract(self) -> C.Contract:
        return self.run.contract


def export(opts: ExportOptions, log: Callable[[str], None] = print) -> ExportReport:
    """Every asked-for artifact converted, written atomically, measured against float; one report."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    t_all = time.perf_counter()
    x = _prepare(opts, load_run(opts.run_dir), log)
    # artifacts are rewritten one by one: should this export stop half way (Ctrl-C), no report may
    # remain that names the hashes and accuracies of files since replaced
    (x.out_dir / EXPORT_REPORT).unlink(missing_ok=True)
    precisions = _precisions(opts)
    for p in precisions:
        _tflite(x, p)
    if opts.onnx or opts.tensorrt:
        _onnx(x, float_record="fp32" in precisions or opts.onnx, qdq="int8" in precisions)
    budget = _int8_budget(x)
    trt = _tensorrt(x) if opts.tensorrt else None
    report = _report(x, budget, trt, time.perf_counter() - t_all)
    results.write(x.out_dir / EXPORT_REPORT, report)
    return report


def _precisions(opts: ExportOptions) -> tuple[str, ...]:
    precisions = tuple(p for p in PRECISIONS if p in opts.precisions)
    return precisions + ("int8",) if opts.tensorrt and "int8" not in precisions else precisions


def _prepare(opts: ExportOptions, run: Run, log) -> _Export:
    """The evaluation set, the calibration set and the float reference through the Keras runner."""
    run.export_dir.mkdir(exist_ok=True)
    ev = _eval_set(run, opts.eval_data)
    if ev.skipped:
        log(f"evaluation: {len(ev.skipped)} unreadable image(s) skipped (listed in export_report.json)")
    calib, calib_info = _calibration(opts, run, log) if "int8" in opts.precisions or opts.tensorrt else (None, {})
    ev.unlabeled = _unlabeled_set(opts, run, calib_info)
    with runner_for(run.model_path) as keras_ref:
        reference = _scores(keras_ref, ev.x)
        reference_unlabeled = _scores(keras_ref, ev.unlabeled.x) if ev.unlabeled else None
        held = _held_out(opts, run, calib_info, ev, keras_ref) if calib is not None else None
        model = keras_ref.model
    log(f"float reference (Keras): accuracy {accuracy(ev.y, reference.argmax(1)):.2%} on {len(ev.y)} images of {ev.source}"
        + (f", and {len(ev.unlabeled.paths)} unlabeled photos of {ev.unlabeled.source}" if ev.unlabeled else ""))
    return _Export(opts, run, ev, calib, calib_info, model, reference, reference_unlabeled, held, log)


def _unlabeled_set(opts: ExportOptions, run: Run, calib_info: dict) -> Unlabeled | None:
    """--unlabeled: photos the model has never seen (not its calibration or training images), preprocessed."""
    if opts.unlabeled is None:
        return None
    from ..core.io import sha256_file
    from ..evaluate import refuse_seen_photos, seen_by_the_model
    paths, skipped = scan_unlabeled(opts.unlabeled)
    seen = seen_by_the_model(run)
    seen.update({sha256_file(Path(p)): f"calibration image {Path(p).name}" for p in calib_info.get("paths", [])})
    refuse_seen_photos(paths, seen)
    return Unlabeled(C.preprocess_batch(paths, run.contract), [str(p) for p in paths], str(opts.unlabeled), skipped)


def _run_split(run: Run) -> D.Dataset:
    """The run's own train/validation split (its recipe's fraction and seed)."""
    with tempfile.TemporaryDirectory() as cache:
        return D.scan(run.data_root, val_fraction=run.recipe.training.validation_split,
                      seed=int(run.metrics.get("seed", 0)), cache_dir=cache, progress=False)


def _held_out(opts: ExportOptions, run: Run, calib_info: dict, ev: EvalSet, keras_ref,
              most: int = 1000) -> HeldOut | None:
    """The run's validation images, at most `most`, with the float scores: what the INT8 route is chosen
    on. Never a calibration image (the correction is fitted to those) nor one that judges the budget.
    None when there is nothing to choose or no data to choose on."""
    if opts.int8_route != "auto" or run.data_root is None:
        return None
    taken = set(calib_info.get("paths", [])) | {str(Path(p).resolve()) for p in ev.paths} | set(ev.paths)
    paths = [str(s.path) for s in _run_split(run).val
             if str(s.path) not in taken and str(Path(s.path).resolve()) not in taken]
    if not paths:
        return None
    pick = sorted(np.random.default_rng(opts.seed).permutation(len(paths))[:most])
    x = C.preprocess_batch([paths[i] for i in pick], run.contract)
    return HeldOut(x, _scores(keras_ref, x), f"{len(pick)} validation images of the run's training data")


def _scores(runner, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([runner.probabilities(x[i:i + batch]) for i in range(0, len(x), batch)])


def _eval_set(run: Run, eval_data: Path | None) -> EvalSet:
    if eval_data is None:
        root = run.data_root
        if root is None or not (root / "test").is_dir():
            raise InputError("the run has no reachable test split: pass --eval-data DIR (class folders)")
        eval_data = root / "test"
    samples, skipped = scan_eval_folder(eval_data, run.contract.labels)
    return EvalSet(C.preprocess_batch([s.path for s in samples], run.contract), np.array([s.label for s in samples]),
                   [str(s.path) for s in samples], str(eval_data), skipped)


def _calibration(opts: ExportOptions, run: Run, log) -> tuple[np.ndarray, dict]:
    from .calibration import load_batch, resolve
    train_samples = None
    if opts.calibration is None and run.data_root is not None:
        train_samples = _run_split(run).train
    paths, source, listed = resolve(
        opts.calibration, default_list=opts.calibration_dir / f"{run.recipe.name}.txt", data_root=run.data_root,
        train_samples=train_samples, size=opts.calibration_size or run.recipe.calibration_size,
        recipe=run.recipe.name, seed=opts.seed, run_list=run.export_dir / "calibration.txt", log=log)
    calib = load_batch(paths, run.contract)
    log(f"calibration: {len(calib)} images from {source}")
    return calib, {"source": source, "list": str(listed) if listed else None, "images": int(len(calib)),
                   "paths": [str(p) for p in paths]}


@dataclass
class Scored:
    """An artifact's predictions through its own runtime, compared with the float reference."""

    comparison: Comparison
    max_abs_score_diff: float        # the largest class-score difference from the reference
    runtime: dict                    # the runner's description of itself


def evaluate_artifact(path: Path, ev: EvalSet, reference: np.ndarray, labels, threads: int | None = None,
                      reference_unlabeled: np.ndarray | None = None) -> Scored:
    """An artifact through its own runtime, fed by its own contract, compared with the reference's scores
    (evaluate.versus); with unlabeled photos and their reference scores, the changes among them too."""
    contract = read_contract(path)
    with runner_for(path, threads=threads) as r:
        contract = reconcile(r, contract, path)
        feed = lambda x: x if contract.input_dtype == "float32" else C.quantize(  # noqa: E731
            x, contract.input_dtype, contract.input_quantization)
        probs = _scores(r, feed(ev.x))
        probs_u = _scores(r, feed(ev.unlabeled.x)) if ev.unlabeled is not None else None
        desc = r.describe()
    unlabeled = None
    if probs_u is not None and reference_unlabeled is not None:
        unlabeled = changes_without_labels(probs_u.argmax(1), reference_unlabeled.argmax(1), labels,
                                           ev.unlabeled.paths)
    return Scored(versus(ev.y, probs.argmax(1), reference.argmax(1), labels, ev.paths, unlabeled),
                  float(np.abs(probs - reference).max()), desc)


def _measured(x: _Export, path: Path, fmt: str, precision: str, t0: float, extra: dict | None = None) -> ExportRecord:
    """The artifact's record (size, hash, provenance, accuracy vs float), replacing one of the same name."""
    s = evaluate_artifact(path, x.eval, x.reference, x.contract.labels, reference_unlabeled=x.reference_unlabeled)
    rec = ExportRecord(artifact=path.name, format=fmt, precision=precision,
                       size_mb=round(path.stat().st_size / 1e6, 4), sha256=sha256_file(path),
                       provenance=x.contract.provenance.to_dict(), export_s=round(time.perf_counter() - t0, 2),
                       n=s.comparison.n, accuracy=s.comparison.accuracy, max_abs_score_diff=s.max_abs_score_diff,
                       runtime=s.runtime, **s.comparison.versus(), **(extra or {}))
    x.records[:] = [r for r in x.records if r.artifact != path.name]
    x.records.append(rec)
    x.log(f"wrote {path.name}: {rec.size_mb:.2f} MB, accuracy {rec.accuracy:.2%} "
          f"(drop {rec.accuracy_drop_pp:+.2f} pp, agreement {rec.top1_agreement:.2%})")
    return rec


def write_tflite(x: _Export, data: bytes, name: str, precision: str, t0: float,
                 extra: dict | None = None) -> ExportRecord:
    """The flatbuffer stamped with the contract of its real I/O types (read back first), then measured."""
    path = x.out_dir / name
    probe = x.out_dir / f".probe-{name}"
    atomic_write_bytes(probe, data)
    try:
        with runner_for(probe) as r:
            contract = x.contract.with_quantization(r.input.dtype, r.input.quantization, r.output.quantization)
    finally:
        probe.unlink(missing_ok=True)
    card = model_card(contract, precision, x.opts.author, x.opts.license)
    atomic_write_bytes(path, tflite_with_contract(data, contract, card))
    return _measured(x, path, "tflite", precision, t0, extra)


def _tflite(x: _Export, precision: str) -> None:
    from . import tflite as TFL
    t0 = time.perf_counter()
    data = TFL.convert(x.model, precision, x.calib if precision == "int8" else None, input_type=x.opts.int8_input)
    extra = None
    if precision == "int8":
        route = int8_route(data, lambda: _corrected_tflite(x, data), litert_scores, x.held_out, x.opts.int8_route,
                           x.log)
        data, extra = route.model, {"route": route.facts(), "graph": integer_only(route.model)}
    write_tflite(x, data, f"model_{precision}.tflite", precision, t0, extra)


def _corrected_tflite(x: _Export, ptq: bytes) -> tuple[bytes, dict]:
    from . import tflite as TFL
    from .bias import correct_biases
    fixed = correct_biases(ptq, TFL.convert(x.model, "fp32"), x.calib, log=x.log)
    return fixed.model, fixed.facts()


def _qdq_route(x: _Export, qdq, reference) -> tuple[object, dict]:
    """The Q/DQ ONNX's INT8 route, chosen like the TFLite's (ONNX Runtime's scores on the held-out images)."""
    import onnx

    from .onnx_bias import correct_qdq_biases

    def correct():
        copy = onnx.ModelProto()
        copy.CopyFrom(qdq)
        return correct_qdq_biases(copy, reference, x.calib)
    route = int8_route(qdq, correct, ort_scores, x.held_out, x.opts.int8_route, x.log, "INT8 Q/DQ ONNX")
    return route.model, route.facts()


def _onnx(x: _Export, float_record: bool, qdq: bool) -> None:
    from . import onnx as ONNX
    fp32 = x.out_dir / "model_fp32.onnx"
    t0 = time.perf_counter()
    ONNX.export_float(x.model, x.contract, fp32, model_card(x.contract, "fp32", x.opts.author, x.opts.license))
    if float_record:
        _measured(x, fp32, "onnx", "fp32", t0)
    if qdq:
        t0 = time.perf_counter()
        dest = x.out_dir / "model_int8_qdq.onnx"
        facts = ONNX.export_qdq(fp32, x.contract, x.calib, dest,
                                model_card(x.contract, "int8-qdq", x.opts.author, x.opts.license),
                                route=lambda qdq, reference: _qdq_route(x, qdq, reference))
        _measured(x, dest, "onnx", "int8-qdq", t0, {"qdq": {k: v for k, v in facts.items() if k != "route"},
                                                     "route": facts["route"]})
        x.log(f"  {facts['quantize_nodes']} Q/DQ pairs, zero points all 0")


def _int8_budget(x: _Export) -> ExportBudget | None:
    """The INT8 TFLite's accuracy budget, judged on the interval of its paired drop. Only a drop that is
    beyond the budget with confidence (FAIL) starts the float fallback: an INCONCLUSIVE one is reported
    with the images that would decide it, not chased by keeping layers in float."""
    int8 = next((r for r in x.records if r.artifact == "model_int8.tflite"), None)
    if int8 is None:
        return None
    max_drop = x.run.recipe.budgets.max_int8_drop_pp if x.opts.max_drop is None else x.opts.max_drop
    judged = V.drop_budget(int8.paired, max_drop, x.opts.point_estimate)
    budget = ExportBudget(
        max_drop_pp=max_drop, source="command line" if x.opts.max_drop is not None else
        f"recipe {x.run.recipe.name} of the run", int8_drop_pp=int8.accuracy_drop_pp, interval_pp=judged.interval,
        judged_on=judged.judged_on, verdict=judged.verdict, images_to_decide=judged.images_to_decide,
        unlabeled_to_decide=judged.unlabeled_to_decide, fallback=None,
        decision=decision(judged, max_drop, len(x.eval.y), int8.paired.unlabeled))
    if judged.verdict == V.FAIL:
        x.log(f"INT8 drop {int8.accuracy_drop_pp:.2f} pp (95% {judged.interval[0]:+.2f} to "
              f"{judged.interval[1]:+.2f}) is beyond the budget of {max_drop} pp: measuring per-layer "
              f"quantisation sensitivity")
        budget.fallback = fb = _fallback(x, max_drop)
        budget.verdict = fb.verdict
        budget.decision += f"; fallback: {fb.decision}"
        if fb.artifact:
            fb.cost = c = _fallback_cost(x.out_dir / "model_int8.tflite", x.out_dir / fb.artifact)
            x.log(f"fallback cost: {c.size_mb['mixed']:.2f} MB vs {c.size_mb['int8']:.2f} MB, "
                  f"p50 {c.latency_p50_ms['mixed']:.2f} ms vs {c.latency_p50_ms['int8']:.2f} ms")
    budget.passed = budget.verdict == V.PASS
    return budget


def _tensorrt(x: _Export) -> dict:
    from ..core.protocol import EngineBuildRequest
    from ..agent.runtimes.base import RuntimeMissing
    from ..agent.tensorrt_build import build_engine
    req = EngineBuildRequest(onnx=str(x.out_dir / "model_int8_qdq.onnx"), engine=str(x.out_dir / "model_int8.engine"),
                             timing_cache=str(x.out_dir / "tensorrt.timing.cache"))
    try:
        built = build_engine(req, log=x.log)
    except RuntimeMissing as e:
        x.log(f"tensorrt: skipped: {e}")
        return {"built": False, "reason": str(e)}
    return {"built": True, "reused": built.reused, **built.stamp}


def _report(x: _Export, budget: ExportBudget | None, trt: dict | None, seconds: float) -> ExportReport:
    u = x.eval.unlabeled
    c = x.calib_info
    return ExportReport(
        run=str(x.run.dir), recipe=x.run.recipe.name, provenance=x.contract.provenance.to_dict(),
        eval_data=x.eval.source, eval_images=len(x.eval.y),
        unlabeled=None if u is None else UnlabeledSet(source=u.source, images=len(u.paths), skipped=u.skipped),
        skipped=x.eval.skipped,
        calibration=CalibrationUsed(source=c.get("source"), list=c.get("list"), images=c.get("images", 0)),
        reference=KerasReference(artifact="model.keras", format="keras",
                                 accuracy=accuracy(x.eval.y, x.reference.argmax(1)),
                                 sha256=x.contract.provenance.model_sha256),
        artifacts=x.records, budget=budget, tensorrt=trt, export_s=round(seconds, 2))


def _fallback_cost(int8: Path, mixed: Path, runs: int = 100) -> FallbackCost:
    """Size and p50 latency of the mixed model vs full INT8, measured side by side by the agent in
    fresh processes (never with TensorFlow imported), best of two interleaved rounds."""
    from ..core.protocol import AgentRequest
    from ..devices import get_device

    p50 = {"int8": [], "mixed": []}
    with get_device("host") as host:
        for _ in range(2):
            for key, path in (("int8", int8), ("mixed", mixed)):
                req = AgentRequest(model=str(path), runs=runs, warmup=10, min_seconds=0.0, threads=2)
                p50[key].append(host.run(req).latency_ms.p50)
    lat = {k: min(v) for k, v in p50.items()}
    size = {"int8": round(int8.stat().st_size / 1e6, 4), "mixed": round(mixed.stat().st_size / 1e6, 4)}
    return FallbackCost(size_mb=size, latency_p50_ms=lat, latency_ratio=lat["mixed"] / lat["int8"],
                        note="host CPU, 2 threads, fresh processes without TensorFlow")


def _fallback(x: _Export, max_drop: float) -> Fallback:
    """Keep the most sensitive ops in float, 1, 2, 4, ... at a time, until the budget holds."""
    from . import tflite as TFL

    t0 = time.perf_counter()
    ranking = TFL.layer_sensitivity(x.model, x.calib)
    x.log(f"sensitivity: {len(ranking)} layers ranked in {time.perf_counter() - t0:.0f} s; most sensitive: "
        + ", ".join(f"{d['op']} {d['rmse_per_step']:.2f}" for d in ranking[:3]))

    def mixed_with(kept: list[dict]) -> ExportRecord:
        t = time.perf_counter()
        data = TFL.convert_int8_with_float_ops(x.model, x.calib, [d["tensor"] for d in kept],
                                               input_type=x.opts.int8_input)
        return write_tflite(x, data, "model_int8_mixed.tflite", "int8-mixed", t,
                            {"float_ops": [{"tensor": d["tensor"], "op": d["op"],
                                            "rmse_per_step": round(d["rmse_per_step"], 4)} for d in kept]})

    fb = search_fallback(ranking, fallback_steps(len(ranking), x.opts.fallback_steps), mixed_with,
                         lambda rec: V.drop_budget(rec.paired, max_drop, x.opts.point_estimate))
    if fb.passed:
        x.log(f"fallback: budget holds with {len(fb.float_ops)} op(s) in float")
    return fb
