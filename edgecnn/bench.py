"""`edgecnn bench`: latency, accuracy vs the float reference, size and budgets, per artifact x device.

Each artifact runs through the agent on the chosen device (on the host: a fresh Python process
that never imports TensorFlow). Accuracy is compared with the float reference (the run's float
TFLite, else its model.keras) on the same images. The exit status is 0 only when every budget
holds.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import recipe as R
from .artifact import FORMATS, read_contract
from .devices import get_device
from .errors import BudgetError, InputError
from .evaluate import compare
from .io import atomic_write_json, atomic_write_text
from .render import _fmt, table

SCHEMA = "edgecnn.bench/1"
BENCHABLE = (".tflite", ".onnx", ".engine", ".plan")


@dataclass
class BenchOptions:
    target: Path
    device: str = "host"
    device_options: dict = field(default_factory=dict)
    data: Path | None = None
    reference: Path | None = None
    engine: str | None = None
    threads: int | None = None
    cpus: str | None = None
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


NOISY_PCT = 5.0   # p50 spread across repeats above which the table warns of a busy machine


def combine_latency(runs: list[dict]) -> dict:
    """Latency of several agent processes: the median of each statistic, min/max of the extremes,
    the p50 of every repeat and their spread ((max - min) / median), so a busy machine shows."""
    if len(runs) == 1:
        return runs[0]
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    p50s = [r["p50"] for r in runs]
    out = {k: med(k) for k in ("p50", "p90", "p99", "mean", "std")}
    out.update(min=min(r["min"] for r in runs), max=max(r["max"] for r in runs), n=sum(r["n"] for r in runs),
               repeats=len(runs), p50_per_repeat=[round(v, 4) for v in p50s],
               p50_spread_pct=round(100 * (max(p50s) - min(p50s)) / out["p50"], 2))
    return out


def combine_runs(first: dict, runs: list[dict]) -> dict:
    """The first agent result (accuracy and all) with the latency of every run combined."""
    c = combine_latency([r["latency_ms"] for r in runs])
    out = {**first, "latency_ms": c, "throughput_ips": round(1000.0 / c["mean"], 2)}
    if first.get("vs_baseline"):
        out["baseline"] = {**first["baseline"], "latency_ms": combine_latency([r["baseline"]["latency_ms"] for r in runs])}
        out["vs_baseline"] = {**first["vs_baseline"],
                              **{k: statistics.median(r["vs_baseline"][k] for r in runs) for k in ("p50_ratio", "p90_ratio")},
                              "p50_ratio_per_repeat": [round(r["vs_baseline"]["p50_ratio"], 4) for r in runs]}
    return out


def collect(target: Path) -> tuple[list[Path], Path | None]:
    """(artifacts, run dir or None) for an artifact file or a run directory."""
    target = Path(target)
    if target.is_dir():
        export = target / "export"
        arts = sorted(p for p in export.glob("*") if p.suffix in BENCHABLE and not p.name.startswith(".")) \
            if export.is_dir() else []
        if not arts:
            raise InputError(f"{target} holds no exported models in export/ (run 'edgecnn export {target}')")
        return arts, target
    if not target.is_file():
        raise InputError(f"no such model or run directory: {target}")
    if target.suffix not in BENCHABLE:
        raise InputError(f"{target.name}: not a benchable model (expected {', '.join(BENCHABLE)})")
    run_dir = target.parent.parent if (target.parent.name == "export" and
                                       (target.parent.parent / "contract.json").is_file()) else None
    return [target], run_dir


def default_reference(run_dir: Path | None) -> Path | None:
    if run_dir is not None:
        for cand in (run_dir / "export" / "model_fp32.tflite", run_dir / "model.keras"):
            if cand.is_file():
                return cand
    return None


def precision_of(path: Path, agent: dict) -> str:
    name = path.name.lower()
    for p in ("int8_qdq", "int8_mixed", "int8", "fp16", "fp32"):
        if p in name:
            return p.replace("_", "-")
    dtype = (agent.get("input") or {}).get("dtype")
    return "int8" if dtype in ("int8", "uint8") else "fp32"


def _agent_args(o: BenchOptions, latency: bool = True) -> list[str]:
    a = ["--runs", str(o.runs), "--warmup", str(o.warmup), "--min-seconds", str(o.min_seconds)]
    if o.threads:
        a += ["--threads", str(o.threads)]
    if o.cpus:
        a += ["--cpus", o.cpus]
    if o.engine:
        a += ["--engine", o.engine]
    if o.max_images:
        a += ["--max-images", str(o.max_images)]
    if not latency:
        a.append("--no-latency")
    return a


def _budget(limit, value, ok) -> dict:
    return {"limit": limit, "value": value, "pass": bool(ok)}


def bench(o: BenchOptions, log: Callable[[str], None] = print) -> dict:
    t0 = time.perf_counter()
    artifacts, run_dir = collect(o.target)
    recipe = R.of_contract(read_contract(artifacts[0], required=False)) if run_dir is not None else None
    budget_mb = o.budget_mb if o.budget_mb is not None else (recipe.budgets.size_mb if recipe else 20.0)
    max_drop = o.max_drop if o.max_drop is not None else (recipe.budgets.max_int8_drop_pp if recipe else None)
    max_p90 = o.max_p90_ms if o.max_p90_ms is not None else (recipe.budgets.max_p90_ms if recipe else None)
    if o.data is not None and not Path(o.data).is_dir():
        raise InputError(f"--data {o.data}: no such folder")
    baseline = Path(o.baseline) if o.baseline is not None else None
    if baseline is not None:
        if not baseline.is_file():
            raise InputError(f"--baseline {baseline}: no such model file")
        if baseline.suffix not in BENCHABLE:
            raise InputError(f"--baseline {baseline.name}: not a benchable model (expected {', '.join(BENCHABLE)})")
    elif o.max_slowdown_pct is not None:
        raise InputError("--max-slowdown needs --baseline (the model to compare against)")

    reference = o.reference or (default_reference(run_dir) if o.data else None)
    if o.reference is not None and Path(o.reference).suffix not in tuple(FORMATS):
        raise InputError(f"--reference {o.reference}: unknown model format")
    ref_res = None
    if o.data is not None and reference is not None:
        log(f"reference: {reference.name} on the host ({'Keras' if reference.suffix == '.keras' else 'LiteRT'})")
        ref_res = get_device("host").run_agent(reference, _agent_args(o, latency=False), data=o.data)

    records = []
    with get_device(o.device, **o.device_options) as dev:
        if baseline is not None and not dev.supports_baseline:
            raise InputError(f"--baseline is timed in turns in one agent process: the {o.device} device cannot "
                             f"(host and jetson can)")
        versus = {"baseline": baseline} if baseline is not None else {}
        results = {}
        for art in artifacts:
            log(f"bench {art.name} on {o.device}" + (f" in turns with {baseline.name}" if versus else "") + "...")
            results[art] = dev.run_agent(art, _agent_args(o), data=o.data, **versus)
        # more latency-only rounds, each artifact in a fresh agent process, interleaved (the order
        # alternates) so that a slow spell of a busy machine does not land on one artifact only
        timed = [a for a in artifacts if results[a].get("latency_ms") and not results[a].get("latency_estimated")]
        runs = {a: [results[a]] for a in timed}
        for r in range(1, o.repeat if timed else 1):
            log(f"latency repeat {r + 1}/{o.repeat}...")
            for art in (timed[::-1] if r % 2 else timed):
                runs[art].append(dev.run_agent(art, _agent_args(o), **versus))
        for art in artifacts:
            res = results[art]
            if art in runs and len(runs[art]) > 1:
                res = combine_runs(res, runs[art])
            records.append(_record(art, res, dev, ref_res, budget_mb, max_drop, max_p90, o.max_slowdown_pct))
    doc = {"schema": SCHEMA, "target": str(o.target), "device": o.device, "reference": reference.name if reference else None,
           "data": str(o.data) if o.data else None, "records": records,
           "passed": all(r["passed"] for r in records), "wall_s": round(time.perf_counter() - t0, 2)}
    return doc


def _record(art: Path, res: dict, dev, ref_res: dict | None, budget_mb, max_drop, max_p90,
            max_slowdown: float | None = None) -> dict:
    lat = res.get("latency_ms") or {}
    rec = {"artifact": art.name, "format": res.get("format"), "precision": precision_of(art, res),
           "device": dev.name, "device_info": dev.describe(), "runtime": res.get("runtime"),
           "runtime_version": res.get("version"), "threads": res.get("threads"),
           "size_mb": res.get("size_mb"), "accuracy": res.get("accuracy"), "reference_accuracy": None,
           "accuracy_drop_pp": None, "per_class": None, "flips": None, "top1_agreement": None,
           "images": res.get("images"),
           "latency_ms": {k: lat[k] for k in ("p50", "p90", "p99", "mean", "std", "n", "repeats", "p50_per_repeat",
                                              "p50_spread_pct") if k in lat} if lat else None,
           "latency_estimated": bool(res.get("latency_estimated")), "estimate": res.get("estimate"),
           "throughput_ips": res.get("throughput_ips"), "peak_rss_mb": res.get("peak_rss_mb"),
           "tensorflow_imported": res.get("tensorflow_imported")}
    if res.get("vs_baseline"):
        b = res["baseline"]
        rec["baseline"] = {"artifact": b["artifact"], "format": b.get("format"), "size_mb": b.get("size_mb"),
                           "latency_ms": {k: b["latency_ms"][k] for k in ("p50", "p90", "p99", "mean", "n")}}
        rec["vs_baseline"] = res["vs_baseline"]
    for k in ("agreement_with_host", "emulation", "notes", "latency_source"):
        if k in res:
            rec[k] = res[k]
    if ref_res is not None and res.get("top1") is not None:
        if ref_res["paths"] != res["paths"]:
            raise InputError(f"{art.name}: the reference and the artifact saw different images")
        labels = res["contract"]["labels"]
        c = compare(res["y_true"], res["top1"], ref_res["top1"], labels, res["paths"])
        rec.update(reference_accuracy=c["reference_accuracy"], accuracy_drop_pp=c["accuracy_drop_pp"],
                   per_class=c["per_class"], flips=c["flips"], top1_agreement=c["top1_agreement"],
                   worst_class=c["worst_class"])
    budgets = {"size_mb": _budget(budget_mb, rec["size_mb"], rec["size_mb"] is not None and rec["size_mb"] <= budget_mb)}
    if max_drop is not None and rec["accuracy_drop_pp"] is not None:
        budgets["accuracy_drop_pp"] = _budget(max_drop, rec["accuracy_drop_pp"], rec["accuracy_drop_pp"] <= max_drop)
    if max_p90 is not None and lat:
        budgets["p90_ms"] = _budget(max_p90, lat["p90"], lat["p90"] <= max_p90)
    if max_slowdown is not None and rec.get("vs_baseline"):
        slower = 100.0 * (rec["vs_baseline"]["p50_ratio"] - 1.0)
        budgets["slowdown_pct"] = _budget(max_slowdown, round(slower, 2), slower <= max_slowdown)
    rec["budgets"] = budgets
    rec["passed"] = all(b["pass"] for b in budgets.values())
    return rec


def check(doc: dict) -> None:
    failed = [f"{r['artifact']}: {name} {b['value']:.2f} > {b['limit']}" for r in doc["records"]
              for name, b in r["budgets"].items() if not b["pass"]]
    if failed:
        raise BudgetError("budget failed: " + "; ".join(failed))


def render(doc: dict, markdown: bool = False) -> str:
    rows = []
    for r in doc["records"]:
        lat = r["latency_ms"] or {}
        est = "~" if r.get("latency_estimated") else ""
        rows.append([r["artifact"], r["format"] or "-", r["precision"], r["device"], _fmt(r["size_mb"], ".2f"),
                     _fmt(r["accuracy"], ".2%"), _fmt(r["accuracy_drop_pp"], "+.2f"),
                     est + _fmt(lat.get("p50"), ".2f"), est + _fmt(lat.get("p90"), ".2f"),
                     est + _fmt(lat.get("p99"), ".2f"), _fmt(r["throughput_ips"], ".0f"), _fmt(r["peak_rss_mb"], ".0f"),
                     " ".join(f"{k}:{'ok' if b['pass'] else 'FAIL'}" for k, b in r["budgets"].items())])
    out = table(["artifact", "format", "precision", "device", "MB", "accuracy", "drop pp", "p50 ms", "p90 ms",
                 "p99 ms", "img/s", "RSS MB", "budgets"], rows, markdown=markdown)
    notes = []
    if doc.get("reference"):
        notes.append(f"accuracy drop vs {doc['reference']} on {doc['data']}")
    for r in doc["records"]:
        if r.get("estimate"):
            notes.append(f"~ {r['artifact']}: latency estimated from profile {r['estimate'].get('profile')} "
                         f"({r['estimate'].get('anchor', '')})")
        notes += [f"{r['artifact']}: {n}" for n in r.get("notes") or []]
        if r.get("vs_baseline"):
            v, b = r["vs_baseline"], r["baseline"]
            notes.append(f"{r['artifact']} vs {b['artifact']}: p50 x{v['p50_ratio']:.3f}, p90 x{v['p90_ratio']:.3f} "
                         f"({(r['latency_ms'] or {}).get('p50', float('nan')):.2f} vs {b['latency_ms']['p50']:.2f} ms, "
                         f"timed in turns in one process)")
        lat = r["latency_ms"] or {}
        if lat.get("repeats"):
            spread = lat["p50_spread_pct"]
            busy = ": a busy machine; gate on a ratio instead (--baseline)" if spread > NOISY_PCT else ""
            notes.append(f"{r['artifact']}: p50 is the median of {lat['repeats']} agent runs, which spread "
                         f"{spread:.1f}%{busy}")
    notes.append(f"{'PASSED' if doc['passed'] else 'FAILED'} ({doc['wall_s']:.1f} s)")
    sep = "\n\n" if markdown else "\n"
    return out + sep + sep.join(notes) + "\n"


def write_outputs(doc: dict, json_path: Path | None, markdown_path: Path | None) -> None:
    if json_path:
        atomic_write_json(json_path, doc)
    if markdown_path:
        atomic_write_text(markdown_path, render(doc, markdown=True))
