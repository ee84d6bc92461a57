"""`edgecnn bench`: latency, accuracy vs the float reference, size and budgets, per artifact x device.

Each artifact runs through the agent on the chosen device (on the host: a fresh Python process
that never imports TensorFlow). Accuracy is compared with the float reference (the run's float
TFLite, else its model.keras) on the same images. The exit status is 0 only when every budget
holds.
"""

from __future__ import annotations

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

    reference = o.reference or (default_reference(run_dir) if o.data else None)
    if o.reference is not None and Path(o.reference).suffix not in tuple(FORMATS):
        raise InputError(f"--reference {o.reference}: unknown model format")
    ref_res = None
    if o.data is not None and reference is not None:
        log(f"reference: {reference.name} on the host ({'Keras' if reference.suffix == '.keras' else 'LiteRT'})")
        ref_res = get_device("host").run_agent(reference, _agent_args(o, latency=False), data=o.data)

    records = []
    with get_device(o.device, **o.device_options) as dev:
        for art in artifacts:
            log(f"bench {art.name} on {o.device}...")
            res = dev.run_agent(art, _agent_args(o), data=o.data)
            records.append(_record(art, res, dev, ref_res, budget_mb, max_drop, max_p90))
    doc = {"schema": SCHEMA, "target": str(o.target), "device": o.device, "reference": reference.name if reference else None,
           "data": str(o.data) if o.data else None, "records": records,
           "passed": all(r["passed"] for r in records), "wall_s": round(time.perf_counter() - t0, 2)}
    return doc


def _record(art: Path, res: dict, dev, ref_res: dict | None, budget_mb, max_drop, max_p90) -> dict:
    lat = res.get("latency_ms") or {}
    rec = {"artifact": art.name, "format": res.get("format"), "precision": precision_of(art, res),
           "device": dev.name, "device_info": dev.describe(), "runtime": res.get("runtime"),
           "runtime_version": res.get("version"), "threads": res.get("threads"),
           "size_mb": res.get("size_mb"), "accuracy": res.get("accuracy"), "reference_accuracy": None,
           "accuracy_drop_pp": None, "per_class": None, "flips": None, "top1_agreement": None,
           "images": res.get("images"),
           "latency_ms": {k: lat.get(k) for k in ("p50", "p90", "p99", "mean", "std", "n")} if lat else None,
           "latency_estimated": bool(res.get("latency_estimated")), "estimate": res.get("estimate"),
           "throughput_ips": res.get("throughput_ips"), "peak_rss_mb": res.get("peak_rss_mb"),
           "tensorflow_imported": res.get("tensorflow_imported")}
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
    notes.append(f"{'PASSED' if doc['passed'] else 'FAILED'} ({doc['wall_s']:.1f} s)")
    sep = "\n\n" if markdown else "\n"
    return out + sep + sep.join(notes) + "\n"


def write_outputs(doc: dict, json_path: Path | None, markdown_path: Path | None) -> None:
    if json_path:
        atomic_write_json(json_path, doc)
    if markdown_path:
        atomic_write_text(markdown_path, render(doc, markdown=True))
