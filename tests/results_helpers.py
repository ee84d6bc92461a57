"""Typed result documents built by hand for the rule tests (no agent runs): a record, a device's entry
and a bench document with plain defaults, every field overridable. The verdicts are derived as bench
derives them (a record's from its budgets, an entry's from its records, the document's the worst of
its entries'), unless a test sets one on purpose."""

from __future__ import annotations

from edgecnn import verdict as V
from edgecnn.core.protocol import Latency, Skipped
from edgecnn.results import BenchDocument, BenchRecord, DeviceEntry, Judged


def judged(verdict: str, value: float | None = 1.5, limit: float = 1.0, **kw) -> Judged:
    """A budget judged with this verdict (and, e.g., interval=, images_to_decide=)."""
    return Judged.of(limit, value, verdict, **kw)


def latency(p50: float = 2.0, p90: float = 3.0, p99: float = 4.0, **kw) -> Latency:
    return Latency(p50=p50, p90=p90, p99=p99, mean=kw.pop("mean", p50), **kw)


def record(name: str = "m.tflite", *, budgets: dict[str, Judged] | None = None, skipped=(), **kw) -> BenchRecord:
    """One artifact's record on the host: 2 MB INT8 TFLite, 90% on 10 images, 0.5 pp below float; its
    verdict from its budgets (default: the size budget, passed)."""
    budgets = {"size_mb": judged("PASS", 2.0, 20.0)} if budgets is None else budgets
    verdict = kw.pop("verdict", V.overall([b.verdict for b in budgets.values()]))
    fields = dict(artifact=name, sha256="0" * 64, provenance=None, format="tflite", precision="int8",
                  device="host", device_info={}, runtime="litert", runtime_version="test", threads=2, size_mb=2.0,
                  accuracy=0.9, images=10, skipped=[Skipped(path=f"/d/{p}", reason="bad") for p in skipped],
                  latency_ms=latency(), latency_estimated=False, estimate=None, latency_source=None,
                  throughput_ips=400.0, peak_rss_mb=80.0, tensorflow_imported=False, agreement_with_host=None,
                  device_detail=None, notes=[], accuracy_drop_pp=0.5)
    fields.update(kw)
    return BenchRecord(budgets=budgets, verdict=verdict, passed=verdict == V.PASS, **fields)


def entry(*records: BenchRecord, name: str = "host", verdict: str | None = None, **kw) -> DeviceEntry:
    """A device's entry: benched (its records; verdict from them), or, with error= and a verdict, not."""
    verdict = verdict or V.overall([r.verdict for r in records])
    status = kw.pop("status", {V.ERROR: "refused", V.UNREACHABLE: "unreachable"}.get(verdict, "ok"))
    return DeviceEntry(name=name, device=kw.pop("device", "host"), options=kw.pop("options", {}), status=status,
                       records=list(records), verdict=verdict, **kw)


def document(*entries: DeviceEntry, verdict: str | None = None, **kw) -> BenchDocument:
    """A bench document of these devices; its verdict the worst of theirs."""
    fields = dict(target="runs/x", run=None, reference=None, data=None, unlabeled=None, budgets_source="test",
                  notes=[], judged_on="95% intervals", parallel=4, wall_s=1.0)
    fields.update(kw)
    return BenchDocument(devices=list(entries), verdict=verdict or V.worst([e.verdict for e in entries]), **fields)


def one_device(*records: BenchRecord, **kw) -> BenchDocument:
    """A bench of these records on the host alone."""
    return document(entry(*records), **kw)
