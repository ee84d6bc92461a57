"""`edgecnn bench`: latency, accuracy vs the float reference, size and budgets, per artifact x device.

A bench always runs on a fleet (one device is a fleet of one; fleet.py): the plan and the float
reference are prepared once, on the host, then each device runs the artifacts, at most fleet.parallel
at once (threads only wait: a device's work happens in its own processes: agents, ssh, adb, QEMU).
Each artifact runs through the agent on the device as a typed request (on the host: a fresh, isolated
Python process that never imports TensorFlow). Accuracy is compared with the float reference (the
run's float TFLite, else its model.keras) on the same images, and only when both were made from the
same model (provenance). Budgets come from the run's own recipe, overridden by the command line.
Images that could not be read are listed in the verdict.

One document, one table, one verdict: the worst of the devices', in the order PASS < INCONCLUSIVE <
ERROR (the device refused the request, e.g. a format it does not run) < UNREACHABLE < FAIL, and so is
the exit status (0, 3, 2, 2, 1). A device that cannot be reached is reported with its one-line reason
and the others' results stand. Latencies measured at the same time on the same host (the host
device, emulated phones' host-side timing) share its cores: compare such rows with care.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from .core.artifact import FORMATS, FROM_STANDARD_METADATA, format_of, read_contract, weights_precision
from . import verdict as V
from .core.errors import BudgetError, DeviceError, EdgecnnError, InconclusiveError, InputError
from .core.io import atomic_write_text, sha256_file
from .core.protocol import AgentRequest, AgentResult, BoardEmulation, Latency, VsBaseline
from . import fleet as F
from .devices import check_request, get_device, open_device
from .devices.base import DEFAULT_TIMEOUT_S
from .fleet import Fleet, FleetDevice
from .evaluate import changes_without_labels, refuse_seen_photos, seen_by_the_model, versus
from .render import fmt, table
from .results import (BaselineRecord, BenchDocument, BenchRecord, Comparison, DeviceEntry, Judged,
                      ReferenceRecord, UnlabeledChanges)
from . import results
from .rundir import Budgets, Run, check_comparable, check_same_model, load_run, run_of_artifact

BENCHABLE = (".tflite", ".onnx", ".engine", ".plan")
RUNTIME_NAMES = {"keras": "Keras", "tflite": "LiteRT", "onnx": "ONNX Runtime", "tensorrt": "TensorRT"}
NOISY_PCT = 5.0   # p50 spread across repeats above which the table warns of a busy machine


@dataclass
class BenchOptions:
    target: Path
    data: Path | None = None
    unlabeled: Path | None = None          # photos without labels: changed predictions bound the drop
    reference: Path | None = None
    engine: str | None = None
    threads: int | None = None
    cpus: tuple[int, ...] | None = None
    runs: int = 200
    warmup: int = 20
    min_seconds: float = 2.0
    max_images: int | None = None
    budget_mb: float | None = None
    max_drop: float | None = None
    max_p90_ms: float | None = None
    repeat: int = 1
    baseline: Path | None = None          # timed in turns with each artifact, in the same agent process
    max_slowdown_pct: float | None = None  # budget on the p50 ratio against the baseline
    min_agreement_pct: float | None = None  # budget on top-1 agreement with the reference
    point_estimate: bool = False           # judge accuracy budgets on point estimates (no intervals)
    timeout: float = DEFAULT_TIMEOUT_S     # a device's deadline unless its own options set one


@dataclass
class Plan:
    """What a bench will judge: the artifacts, their run, the reference and the budgets."""

    artifacts: list[Path]
    run: Run | None
    budgets: Budgets
    reference: Path | None
    notes: list[str]
    max_slowdown_pct: float | None = None
    point_estimate: bool = False


def combine_latency(runs: list[Latency]) -> Latency:
    """Latency of several agent processes: the median of each statistic, min/max of the extremes,
    the p50 of every repeat and their spread ((max - min) / median), so a busy machine shows."""
    if len(runs) == 1:
        return runs[0]
    med = Latency.median(runs)
    p50s = [r.p50 for r in runs]
    return dataclasses.replace(med, repeats=len(runs), p50_per_repeat=tuple(round(v, 4) for v in p50s),
                               p50_spread_pct=round(100 * (max(p50s) - min(p50s)) / med.p50, 2))


def combine_runs(first: AgentResult, runs: list[AgentResult]) -> AgentResult:
    """The first agent result (accuracy and all) with the latency of every run combined."""
    out = dataclasses.replace(first, latency_ms=combine_latency([r.latency_ms for r in runs]))
    if first.vs_baseline is not None:
        ratios = [r.vs_baseline.p50_ratio for r in runs]
        out = dataclasses.replace(
            out, baseline=dataclasses.replace(first.baseline, latency_ms=combine_latency(
                [r.baseline.latency_ms for r in runs])),
            vs_baseline=VsBaseline(p50_ratio=statistics.median(ratios),
                                   p90_ratio=statistics.median(r.vs_baseline.p90_ratio for r in runs),
                                   method=first.vs_baseline.method,
                                   p50_ratio_per_repeat=tuple(round(v, 4) for v in ratios)))
    return out


def collect(target: Path) -> tuple[list[Path], Run | None]:
    """(artifacts, their run or None) for an artifact file or a run directory."""
    target = Path(target)
    if target.is_dir():
        run = load_run(target)
        arts = sorted(p for p in run.export_dir.glob("*") if p.suffix in BENCHABLE and not p.name.startswith(".")) \
            if run.export_dir.is_dir() else []
        if not arts:
            raise InputError(f"{target} holds no exported models in export/ (run 'edgecnn export {target}')")
        return arts, run
    if not target.is_file():
        raise InputError(f"no such model or run directory: {target}")
    if target.suffix not in BENCHABLE:
        raise InputError(f"{target.name}: not a benchable model (expected {', '.join(BENCHABLE)})")
    return [target], run_of_artifact(target)


def default_reference(run: Run | None) -> Path | None:
    """The run's float TFLite (same provenance, checked with the other artifacts), else its model.keras."""
    if run is None:
        return None
    fp32 = run.export_dir / "model_fp32.tflite"
    return fp32 if fp32.is_file() else run.model_path


def precision_of(path: Path, res: AgentResult) -> str:
    """What the model's tensors show; the file name only refines it (int8-mixed, int8-qdq), never overrides."""
    name = path.name.lower()
    named = next((p.replace("_", "-") for p in ("int8_qdq", "int8_mixed", "int8", "fp16", "fp32") if p in name), None)
    found = weights_precision(path)
    if found is not None:
        return named if named is not None and named.split("-")[0] == found else found
    if named is not None:
        return named
    return "int8" if res.integer_input else "fp32"


def plan(o: BenchOptions) -> Plan:
    """Check the options and the provenance of everything compared before anything runs."""
    artifacts, run = collect(o.target)
    if o.data is not None and not Path(o.data).is_dir():
        raise InputError(f"--data {o.data}: no such folder")
    _check_unlabeled(o, run)
    _check_baseline(o)
    contracts = {a: read_contract(a, required=False) for a in artifacts}
    if run is not None:
        for a in artifacts:
            check_same_model(a, contracts[a], run)
    notes = [standard_metadata_note(a.name, c) for a, c in contracts.items()
             if c is not None and c.model.get("source") == FROM_STANDARD_METADATA]
    if o.reference is not None and Path(o.reference).suffix not in tuple(FORMATS):
        raise InputError(f"--reference {o.reference}: unknown model format")
    evidence = o.data is not None or o.unlabeled is not None
    reference = Path(o.reference) if o.reference else (default_reference(run) if evidence else None)
    if reference is not None and evidence:
        ref_contract = read_contract(reference, required=False)
        for a in artifacts:
            note = check_comparable(a.name, contracts[a], reference.name, ref_contract, o.reference is not None)
            notes += [note] if note else []
    budgets = Budgets.resolve(run, size_mb=o.budget_mb, max_drop_pp=o.max_drop, max_p90_ms=o.max_p90_ms,
                              min_agreement_pct=o.min_agreement_pct)
    notes += accuracy_budgets_judgeable(o, budgets, reference if evidence else None)
    return Plan(artifacts, run, budgets, reference if evidence else None, notes, o.max_slowdown_pct,
                o.point_estimate)


def accuracy_budgets_judgeable(o: BenchOptions, budgets: Budgets, reference: Path | None) -> list[str]:
    """An accuracy budget asked for on the command line is judged or refused, never skipped: it needs a
    float reference and images (labelled --data, or --unlabeled photos for the changes). A recipe's own
    budget that these options cannot judge is named in a note."""
    asked = [name for name, v in (("--max-drop", o.max_drop), ("--min-agreement", o.min_agreement_pct))
             if v is not None]
    missing = ("no float reference to compare with (an artifact outside its run: pass --reference MODEL)"
               if reference is None and (o.data is not None or o.unlabeled is not None) else
               "no images to judge it on (pass --data DIR of class folders, or --unlabeled DIR of photos)"
               if reference is None else None)
    if asked and missing:
        raise InputError(f"{' and '.join(asked)} cannot be judged: {missing}")
    if o.point_estimate and o.data is None and o.unlabeled is not None and budgets.max_drop_pp is not None:
        raise InputError("--point-estimate judges the drop on labelled images: pass --data (unlabeled photos bound "
                         "the drop only through its interval)")
    unjudged = [name for name, v in (("max drop", budgets.max_drop_pp), ("min agreement", budgets.min_agreement_pct))
                if v is not None]
    return [f"the recipe's accuracy budgets ({', '.join(unjudged)}) are not judged: {missing}"] if missing and unjudged else []


def _check_unlabeled(o: BenchOptions, run: Run | None) -> None:
    """--unlabeled: a folder of photos the model has not seen (never its calibration or training images)."""
    if o.unlabeled is None:
        return
    from .core.images import unlabeled_paths
    paths = unlabeled_paths(o.unlabeled)
    if run is not None:
        refuse_seen_photos(paths, seen_by_the_model(run))


def standard_metadata_note(name: str, c) -> str:
    """How a model without an edgecnn contract is fed: what its standard TFLite metadata said."""
    h, w = c.input_size
    renamed = c.model.get("labels_renamed") or 0
    return (f"{name}: no edgecnn contract; preprocessing from its standard TFLite metadata "
            f"({h}x{w} RGB, {c.model.get('normalization')}, {c.num_classes} labels"
            + (f", {renamed} renamed to be unique folder names" if renamed else "") + "; bilinear resize assumed)")


def _check_baseline(o: BenchOptions) -> None:
    if o.baseline is None:
        if o.max_slowdown_pct is not None:
            raise InputError("--max-slowdown needs --baseline (the model to compare against)")
        return
    baseline = Path(o.baseline)
    if not baseline.is_file():
        raise InputError(f"--baseline {baseline}: no such model file")
    if baseline.suffix not in BENCHABLE:
        raise InputError(f"--baseline {baseline.name}: not a benchable model (expected {', '.join(BENCHABLE)})")


def request_for(o: BenchOptions, model: Path, *, latency: bool = True, data: bool = True,
                baseline: bool = True) -> AgentRequest:
    """The typed request a device runs for one model."""
    return AgentRequest(model=str(model), data=str(o.data) if data and o.data is not None else None,
                        unlabeled=str(o.unlabeled) if data and o.unlabeled is not None else None,
                        engine=o.engine, threads=o.threads, cpus=tuple(o.cpus) if o.cpus else None,
                        warmup=o.warmup, runs=o.runs, min_seconds=o.min_seconds, latency=latency,
                        max_images=o.max_images,
                        baseline=str(o.baseline) if baseline and o.baseline is not None else None)


def bench(o: BenchOptions, fleet: Fleet | None = None, log: Callable[[str], None] = print) -> BenchDocument:
    """The plan's artifacts on every device of the fleet (default: the host alone), at most fleet.parallel
    at once; the plan and the float reference are prepared once, on the host. One document."""
    t0 = time.perf_counter()
    fleet = fleet or Fleet((F.device("host", {}),))
    p, ref = prepare(o, log)
    lock = threading.Lock()

    def one(d: FleetDevice) -> DeviceEntry:
        def said(msg: str) -> None:
            with lock:
                log(f"[{d.name}] {msg}" if len(fleet.devices) > 1 else msg)
        return _bench_device(o, p, ref, d, said)

    entries = _each(one, fleet.devices, fleet.parallel)
    return BenchDocument(
        target=str(o.target), run=str(p.run.dir) if p.run else None, reference=_reference_doc(p.reference, ref),
        data=str(o.data) if o.data else None, unlabeled=str(o.unlabeled) if o.unlabeled else None,
        budgets_source=p.budgets.source, notes=p.notes,
        judged_on="point estimates" if p.point_estimate else f"{int(V.CONFIDENCE * 100)}% intervals",
        parallel=fleet.parallel, devices=entries, verdict=V.worst([e.verdict for e in entries]),
        wall_s=round(time.perf_counter() - t0, 2))


def _each(fn, items, parallel: int) -> list:
    """fn over items, at most `parallel` at once (threads: a device's work runs in its own processes)."""
    if len(items) == 1 or parallel == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="bench") as pool:
        return list(pool.map(fn, items))


def prepare(o: BenchOptions, log: Callable[[str], None] = print) -> tuple[Plan, AgentResult | None]:
    """What every device's bench shares: the plan and the float reference's results (on the host)."""
    p = plan(o)
    return p, _reference(o, p, log)


def _bench_device(o: BenchOptions, p: Plan, ref: AgentResult | None, d: FleetDevice, log) -> DeviceEntry:
    """One device's entry of the document: its records and notes, or why it could not be benched (a device
    that cannot be reached, or refuses the request, is reported as such; the others' results stand)."""
    t = time.perf_counter()
    entry = DeviceEntry(name=d.name, device=d.kind, options=d.options.given(), verdict=V.INCONCLUSIVE)  # judged next
    try:
        entry.records, entry.notes = bench_on(o, p, ref, d, log)
        entry.verdict = V.overall([r.verdict for r in entry.records])
    except EdgecnnError as e:
        reached = not isinstance(e, DeviceError)
        entry.status, entry.error = ("refused" if reached else "unreachable"), str(e)
        entry.verdict = V.ERROR if reached else V.UNREACHABLE
        log(f"{entry.status}: {e}")
    entry.wall_s = round(time.perf_counter() - t, 2)
    return entry


def bench_on(o: BenchOptions, p: Plan, ref: AgentResult | None, d: FleetDevice,
             log: Callable[[str], None] = print) -> tuple[list[BenchRecord], list[str]]:
    """The plan's artifacts on one device, judged against the reference: (records, notes)."""
    notes: list[str] = []
    with open_device(d.kind, d.device_options(o.timeout), log) as dev:
        for art in p.artifacts:
            check_request(dev, request_for(o, art), format_of(art))
        if o.data is not None and not dev.capabilities.accuracy:
            if o.max_drop is not None or o.min_agreement_pct is not None:
                raise InputError(f"--max-drop/--min-agreement cannot be judged on the {dev.name} device: it does not "
                                 f"measure accuracy (judge them with --device host or phone-emulated)")
            notes.append(f"the {dev.name} device does not measure accuracy: --data was not sent to it "
                         f"(correctness on an Arm CPU: --device phone-emulated)")
        measured = _run_all(o, p, dev, log)
        records = [_record(art, measured[art], dev, ref, p) for art in p.artifacts]
    return records, notes + emulation_notes(records)


def _reference(o: BenchOptions, p: Plan, log) -> AgentResult | None:
    if p.reference is None:
        return None
    log(f"reference: {p.reference.name} on the host ({RUNTIME_NAMES[format_of(p.reference)]})")
    with get_device("host") as host:
        return host.run(dataclasses.replace(request_for(o, p.reference, latency=False, baseline=False), engine=None))


def _reference_doc(path: Path | None, ref: AgentResult | None) -> ReferenceRecord | None:
    """The reference's record: its file and provenance (prepare ran it exactly when the plan names one)."""
    if path is None or ref is None:
        return None
    c = ref.contract
    return ReferenceRecord(artifact=path.name, sha256=sha256_file(path),
                           provenance=c.provenance.to_dict() if c is not None and c.provenance else None)


def _run_all(o: BenchOptions, p: Plan, dev, log) -> dict[Path, AgentResult]:
    """Each artifact once (accuracy and latency), then latency-only repeats in fresh agent processes,
    interleaved (the order alternates) so a slow spell of a busy machine does not land on one only."""
    results = {}
    for art in p.artifacts:
        log(f"bench {art.name} on {dev.name}" + (f" in turns with {o.baseline.name}" if o.baseline else "") + "...")
        results[art] = dev.run(request_for(o, art, data=dev.capabilities.accuracy))
    timed = [a for a in p.artifacts if results[a].latency_ms is not None and not results[a].latency_estimated]
    runs = {a: [results[a]] for a in timed}
    for r in range(1, o.repeat if timed else 1):
        log(f"latency repeat {r + 1}/{o.repeat}...")
        for art in (timed[::-1] if r % 2 else timed):
            runs[art].append(dev.run(request_for(o, art, data=False)))
    return {a: combine_runs(results[a], runs[a]) if len(runs.get(a, [])) > 1 else results[a] for a in p.artifacts}


def _budget(limit, value, ok) -> Judged:
    return Judged.of(limit, value, V.PASS if ok else V.FAIL)


def versus_reference(art: Path, res: AgentResult, ref: AgentResult | None) -> Comparison | None:
    """The artifact's predictions against the float reference's on the same images (evaluate.versus): the
    labelled images', and the changes on unlabeled photos. None without a reference or images."""
    if ref is None or (res.evaluation is None and res.unlabeled is None):
        return None
    unlabeled = _unlabeled_changes(art, res, ref)
    if res.evaluation is None or ref.evaluation is None:
        return versus([], [], [], res.contract.labels, [], unlabeled) if unlabeled else None
    if ref.evaluation.paths != res.evaluation.paths:
        raise InputError(f"{art.name}: the reference and the artifact saw different images "
                         f"({ref.evaluation.images} vs {res.evaluation.images})")
    e = res.evaluation
    return versus(e.y_true, e.top1, ref.evaluation.top1, res.contract.labels, e.paths, unlabeled)


def _unlabeled_changes(art: Path, res: AgentResult, ref: AgentResult) -> UnlabeledChanges | None:
    """The unlabeled photos whose top-1 differs between artifact and reference."""
    if res.unlabeled is None or ref.unlabeled is None:
        return None
    if res.unlabeled.paths != ref.unlabeled.paths:
        raise InputError(f"{art.name}: the reference and the artifact saw different unlabeled photos "
                         f"({len(ref.unlabeled.paths)} vs {len(res.unlabeled.paths)})")
    return changes_without_labels(res.unlabeled.top1, ref.unlabeled.top1, res.contract.labels, res.unlabeled.paths)


def _record(art: Path, res: AgentResult, dev, ref: AgentResult | None, p: Plan) -> BenchRecord:
    c = versus_reference(art, res, ref)
    rec = BenchRecord(
        artifact=art.name, sha256=sha256_file(art),
        provenance=res.contract.provenance.to_dict() if res.contract and res.contract.provenance else None,
        format=res.format, precision=precision_of(art, res), device=dev.name, device_info=dev.describe(),
        runtime=res.runtime, runtime_version=res.runtime_version, threads=res.threads, size_mb=res.size_mb,
        accuracy=res.evaluation.accuracy if res.evaluation else None,
        images=res.evaluation.images if res.evaluation else None, skipped=list(res.skipped),
        latency_ms=res.latency_ms, latency_estimated=res.latency_estimated, estimate=res.estimate,
        latency_source=res.latency_source, throughput_ips=res.throughput_ips, peak_rss_mb=res.peak_rss_mb,
        tensorflow_imported=res.tensorflow_imported, agreement_with_host=res.agreement_with_host,
        device_detail=res.device_detail, notes=list(res.notes),
        baseline=None if res.vs_baseline is None else BaselineRecord(
            artifact=res.baseline.artifact, format=res.baseline.format, size_mb=res.baseline.size_mb,
            latency_ms=res.baseline.latency_ms),
        vs_baseline=res.vs_baseline, budgets={}, verdict=V.INCONCLUSIVE, passed=False,  # judged next
        **(c.versus() if c else {}))
    rec.budgets = judge_budgets(rec, p)
    rec.verdict = V.overall([b.verdict for b in rec.budgets.values()])
    rec.passed = rec.verdict == V.PASS
    return rec


def judge_budgets(rec: BenchRecord, p: Plan) -> dict[str, Judged]:
    """Every budget the plan sets that applies to this record, each with its value and verdict."""
    b, max_slowdown = p.budgets, p.max_slowdown_pct
    out = {"size_mb": _budget(b.size_mb, rec.size_mb, rec.size_mb <= b.size_mb)}
    if b.max_drop_pp is not None and rec.paired:
        out["accuracy_drop_pp"] = V.drop_budget(rec.paired, b.max_drop_pp, p.point_estimate)
    if b.min_agreement_pct is not None and rec.paired:
        out["agreement_pct"] = V.agreement_budget(rec.paired, b.min_agreement_pct, p.point_estimate)
    if b.max_p90_ms is not None and rec.latency_ms:
        p90 = rec.latency_ms.p90
        out["p90_ms"] = _budget(b.max_p90_ms, p90, p90 <= b.max_p90_ms)
    if max_slowdown is not None and rec.vs_baseline:
        slower = 100.0 * (rec.vs_baseline.p50_ratio - 1.0)
        out["slowdown_pct"] = _budget(max_slowdown, round(slower, 2), slower <= max_slowdown)
    return out


class DeviceUnreachable(DeviceError):
    """A device could not be reached or refused the request (the others' results stand): exit 2."""


def check(doc: BenchDocument) -> None:
    """Exit with the worst device's status: FAIL 1, UNREACHABLE or ERROR 2, INCONCLUSIVE 3, PASS returns."""
    v, entries = doc.verdict, doc.devices
    who = (lambda e: f"{e.name}: ") if len(entries) > 1 else (lambda e: "")
    if v == V.FAIL:
        raise BudgetError("budget failed: " + "; ".join(
            f"{who(e)}{r.artifact}: {name} {_value(b)} {'<' if name == 'agreement_pct' else '>'} {b.limit}"
            for e in entries for r in e.records for name, b in r.budgets.items() if b.verdict == V.FAIL))
    if v in (V.UNREACHABLE, V.ERROR):
        down = [e for e in entries if e.verdict in (V.UNREACHABLE, V.ERROR)]
        raise DeviceUnreachable("; ".join(f"{e.name} could not be benched: {e.error}" for e in down)
                                + (" (the others' results are above)" if len(down) < len(entries) else ""))
    if v == V.INCONCLUSIVE:
        open_ = [f"{who(e)}{r.artifact}: {name} {_value(b)} vs {b.limit}" + _needed(b)
                 for e in entries for r in e.records for name, b in r.budgets.items()
                 if b.verdict == V.INCONCLUSIVE]
        raise InconclusiveError("the images cannot decide " + "; ".join(open_)
                                + " (add images, or judge point estimates with --point-estimate)")


def _value(b: Judged) -> str:
    s = "-" if b.value is None else f"{b.value:.2f}"
    return s + (f" [95% {b.interval[0]:+.2f}, {b.interval[1]:+.2f}]" if b.interval else "")


def _needed(b: Judged) -> str:
    n, u = b.images_to_decide, b.unlabeled_to_decide
    said = [f"about {n} labelled images" if n else "", f"{u} unlabeled photos" if u else ""]
    said = [x for x in said if x]
    return f", {' or '.join(said)} would decide it at the observed rates" if said else ""


COLUMNS = ["device", "artifact", "format", "precision", "MB", "images", "accuracy", "drop pp [95%]", "agree",
           "p50 ms", "p90 ms", "p99 ms", "img/s", "RSS MB", "budgets", "verdict"]
WORDS = {V.PASS: "PASSED", V.FAIL: "FAILED", V.INCONCLUSIVE: "INCONCLUSIVE", V.ERROR: "ERROR",
         V.UNREACHABLE: "UNREACHABLE"}


def render(doc: BenchDocument, markdown: bool = False) -> str:
    """The document as one table (a row per artifact and device; a device not benched: one row of dashes)
    and its notes, as console text or Markdown."""
    rows = []
    for e in doc.devices:
        if not e.records:
            rows.append([e.name, *["-"] * (len(COLUMNS) - 2), e.verdict])
        rows += [_row(e, r) for r in e.records]
    out = table(COLUMNS, rows, markdown=markdown)
    sep = "\n\n" if markdown else "\n"
    return out + sep + sep.join(_notes(doc)) + "\n"


def _row(e: DeviceEntry, r: BenchRecord) -> list[str]:
    lat = r.latency_ms
    est = "~" if r.latency_estimated else ""
    images = "-" if r.images is None else f"{r.images}" + (f" (+{len(r.skipped)} unread)" if r.skipped else "")
    ci = r.paired.drop_ci_pp if r.paired else None
    drop = fmt(r.accuracy_drop_pp, "+.2f") + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
    p50, p90, p99 = (lat.p50, lat.p90, lat.p99) if lat else (None, None, None)
    return [device_label(e.name, r), r.artifact, r.format or "-", r.precision, fmt(r.size_mb, ".2f"), images,
            fmt(r.accuracy, ".2%"), drop, fmt(r.top1_agreement, ".1%"), est + fmt(p50, ".2f"),
            est + fmt(p90, ".2f"), est + fmt(p99, ".2f"), fmt(r.throughput_ips, ".0f"), fmt(r.peak_rss_mb, ".0f"),
            " ".join(f"{k}:{'ok' if b.passed else b.verdict}" for k, b in r.budgets.items()), r.verdict]


def _notes(doc: BenchDocument) -> list[str]:
    notes = []
    if doc.reference:
        notes.append(f"accuracy drop vs {doc.reference.artifact} on {doc.data}")
    notes.append(f"budgets: {doc.budgets_source}")
    notes += doc.notes
    entries = doc.devices
    skipped = {s.path: s.reason for e in entries for r in e.records for s in r.skipped}
    if skipped:
        shown = "; ".join(f"{Path(p).name} ({why})" for p, why in list(skipped.items())[:5])
        notes.append(f"{len(skipped)} image(s) of --data could not be read and are not counted: {shown}"
                     + (" ..." if len(skipped) > 5 else "") + " (all listed in the JSON)")
    who = (lambda e: f"{e.name}: ") if len(entries) > 1 else (lambda e: "")
    for e in entries:
        own = [f"{e.status}: {e.error}"] if e.error else []
        own += e.notes + [n for r in e.records for n in _record_notes(r)]
        notes += [who(e) + n for n in own]
    counts = ", ".join(f"{sum(e.verdict == v for e in entries)} {v}" for v in V.SEVERITY
                       if any(e.verdict == v for e in entries))
    n = len(entries)
    at_once = f", at most {doc.parallel} at once" if n > 1 else ""
    notes.append(f"{WORDS[doc.verdict]} ({counts}; {n} device{'s' if n > 1 else ''}{at_once}, {doc.wall_s:.1f} s; "
                 f"accuracy budgets judged on {doc.judged_on}; ~ = estimated latency)")
    return notes


def device_label(name: str, rec: BenchRecord) -> str:
    """A device's name in the table, marked on each row whose board declared itself emulated."""
    return name + (" (emulated)" if rec.device_info.get("emulated") else "")


def emulation_notes(records: list[BenchRecord]) -> list[str]:
    """One line per emulated board among the records: whose latencies these are (not a Jetson's)."""
    seen: dict[str, str] = {}
    for r in records:
        info = r.device_info
        if info.get("emulated"):
            seen.setdefault(info.get("host", r.device),
                            BoardEmulation.from_dict(info["emulated"], "device_info.emulated").describe())
    return [f"{host} is {text}" for host, text in seen.items()]


def _record_notes(r: BenchRecord) -> list[str]:
    notes = [unlabeled_note(r)] if r.paired and r.paired.unlabeled else []
    for name, b in r.budgets.items():
        if b.verdict == V.INCONCLUSIVE:
            notes.append(f"{r.artifact}: {name} {_value(b)} vs budget {b.limit}: INCONCLUSIVE on "
                         f"{r.images} images{_needed(b)}")
    if r.estimate:
        notes.append(f"~ {r.artifact}: latency estimated from profile {r.estimate.get('profile')} "
                     f"({r.estimate.get('anchor', '')})")
    notes += [f"{r.artifact}: {n}" for n in r.notes]
    if r.vs_baseline:
        v, b = r.vs_baseline, r.baseline
        p50 = r.latency_ms.p50 if r.latency_ms else float("nan")
        notes.append(f"{r.artifact} vs {b.artifact}: p50 x{v.p50_ratio:.3f}, p90 x{v.p90_ratio:.3f} "
                     f"({p50:.2f} vs {b.latency_ms.p50:.2f} ms, timed in turns in one process)")
    lat = r.latency_ms
    if lat and lat.repeats:
        spread = lat.p50_spread_pct
        busy = ": a busy machine; gate on a ratio instead (--baseline)" if spread > NOISY_PCT else ""
        notes.append(f"{r.artifact}: p50 is the median of {lat.repeats} agent runs, which spread "
                     f"{spread:.1f}%{busy}")
    return notes


def unlabeled_note(r: BenchRecord) -> str:
    """What the unlabeled photos added: their changes, and the drop bound all changes give."""
    u = r.paired.unlabeled
    return (f"{r.artifact}: {u.changed} of {u.n} unlabeled photos changed prediction; with the labelled "
            f"images' changes, {u.pooled_changed} of {u.pooled_images}: the drop is at most "
            f"{u.changed_bound_pp:.2f} pp (one-sided {100 * (1 - V.ALPHA / 4):.2f}%; labelled interval alone at "
            f"{100 * (1 - V.ALPHA / 2):.1f}%: {u.labelled_ci_pp[0]:+.2f} to {u.labelled_ci_pp[1]:+.2f} pp)")


def write_outputs(doc: BenchDocument, json_path: Path | None, markdown_path: Path | None) -> None:
    """The document as JSON and its table as Markdown."""
    if json_path:
        results.write(json_path, doc)
    if markdown_path:
        atomic_write_text(markdown_path, render(doc, markdown=True))
