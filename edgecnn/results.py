"""What edgecnn writes and reads back about its models: typed, versioned documents.

`edgecnn export` writes an :class:`ExportReport` (export/export_report.json), `edgecnn bench` a
:class:`BenchDocument` (--json, and bench/<device>.json in the run); the report page, `check`, the
table renderers and the verdict rules read these objects, never loose keys. Both carry a ``schema``
name with a version: a file of another version is refused with one line (bench again, or export
again), never half read. Reading is strict (pydantic, unknown keys refused), so a hand-edited or
truncated file is one ``InputError`` naming the field.

The paired statistics (:class:`Paired`) and a judged budget (:class:`Judged`) are made by
verdict.py; the one comparison of a model's predictions with its float reference
(:class:`Comparison`) by evaluate.py. A few fields hold descriptions that only their producer
interprets and the page shows as they are (a runtime's description, a device's, the INT8 route's
facts, a TensorRT stamp): those stay JSON objects, named as such below.

Optional keys that were absent stay absent in the JSON (``exclude_if``), so a document reads the same
as before its fields were typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .core.errors import InputError
from .core.io import atomic_write_text, json_text, read_json
from .core.protocol import Latency, Skipped, VsBaseline

BENCH_SCHEMA = "edgecnn.bench/4"
EXPORT_SCHEMA = "edgecnn.export/2"
Verdict = Literal["PASS", "FAIL", "INCONCLUSIVE", "ERROR", "UNREACHABLE"]
Described = dict[str, Any]      # a description its producer owns (runtime, device, route facts, stamps)
Interval = tuple[float, float]


def _absent(v) -> bool:
    return v is None


def optional(default=None):
    """An optional key: written only when it has a value."""
    return Field(default, exclude_if=_absent)


class Result(BaseModel):
    """A part of a result document: strict on reading (unknown keys refused), JSON on writing."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    def to_json(self) -> str:
        """Indented JSON (the descriptions a producer owns may hold numpy scalars: written as numbers)."""
        return json_text(self.model_dump())


# ------------------------------------------------------------------------------ the paired statistics
class PooledChanges(Result):
    """Unlabeled photos' changes pooled with the labelled images': the bound on the drop they give."""

    n: int
    changed: int
    changed_bound_pp: float
    labelled_ci_pp: Interval
    pooled_changed: int
    pooled_images: int


class Paired(Result):
    """A model against its reference on the same images: paired counts, drop and agreement with their
    intervals (verdict.paired)."""

    n: int
    ref_only_right: int
    artifact_only_right: int
    changed: int
    drop_pp: float | None
    drop_ci_pp: Interval
    agreement: float
    agreement_ci: Interval
    confidence: float
    unlabeled: PooledChanges | None = optional()


class Judged(Result):
    """One budget judged: its limit, the measured value (and interval), the verdict; when undecided, how
    many images would decide it at the observed rates."""

    limit: float
    value: float | None
    verdict: Verdict
    passed: bool = Field(alias="pass")
    interval: Interval | None = optional()
    judged_on: str | None = optional()
    images_to_decide: int | None = optional()
    unlabeled_to_decide: int | None = optional()

    @classmethod
    def of(cls, limit: float, value: float | None, verdict: str, **kw) -> "Judged":
        return cls(limit=limit, value=value, verdict=verdict, passed=verdict == "PASS", **kw)


# ------------------------------------------------------------------------------ a comparison
class Flip(Result):
    """A labelled image whose top-1 differs between the model and its reference."""

    path: str
    label: str
    reference: str
    prediction: str


class Change(Result):
    """An unlabeled photo whose top-1 differs (no label says which side is right)."""

    path: str
    reference: str
    prediction: str


class UnlabeledChanges(Result):
    n: int
    changed: int
    flips: list[Change]


class ClassResult(Result):
    """One class's images: the model's accuracy, and against the reference its drop with the paired
    interval and agreement."""

    n: int
    accuracy: float
    reference_accuracy: float | None = optional()
    drop_pp: float | None = optional()
    drop_ci_pp: Interval | None = optional()
    agreement: float | None = optional()
    agreement_ci: Interval | None = optional()


class WorstClass(Result):
    label: str | None
    drop_pp: float


class Versus(Result):
    """The fields of a comparison with the float reference that a record carries (None: not compared,
    e.g. no labelled images)."""

    reference_accuracy: float | None = None
    accuracy_drop_pp: float | None = None
    per_class: dict[str, ClassResult] | None = None
    flips: list[Flip] | None = None
    top1_agreement: float | None = None
    worst_class: WorstClass | None = None
    paired: Paired | None = optional()
    unlabeled: UnlabeledChanges | None = None


class Comparison(Versus):
    """A model's predictions against the labels and its float reference's (evaluate.versus)."""

    n: int
    accuracy: float | None

    def versus(self) -> dict:
        """The comparison's fields as a record takes them."""
        return {k: getattr(self, k) for k in Versus.model_fields}


# ------------------------------------------------------------------------------ bench
class BaselineRecord(Result):
    artifact: str
    format: str
    size_mb: float
    latency_ms: Latency


class BenchRecord(Versus):
    """One artifact on one device: what the agent measured, the comparison with the reference, and every
    budget judged."""

    artifact: str
    sha256: str
    provenance: Described | None
    format: str | None
    precision: str
    device: str
    device_info: Described
    runtime: str
    runtime_version: str
    threads: int | None
    size_mb: float
    accuracy: float | None
    images: int | None
    skipped: list[Skipped]
    latency_ms: Latency | None
    latency_estimated: bool
    estimate: Described | None
    latency_source: str | None
    throughput_ips: float | None
    peak_rss_mb: float | None
    tensorflow_imported: bool
    agreement_with_host: Described | None
    device_detail: Described | None
    notes: list[str]
    baseline: BaselineRecord | None = optional()
    vs_baseline: VsBaseline | None = optional()
    budgets: dict[str, Judged]
    verdict: Verdict
    passed: bool


class DeviceEntry(Result):
    """One device of a bench: its records and notes, or why it could not be benched."""

    name: str
    device: str
    options: Described
    status: Literal["ok", "refused", "unreachable"] = "ok"
    error: str | None = None
    records: list[BenchRecord] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    verdict: Verdict
    wall_s: float = 0.0


class ReferenceRecord(Result):
    artifact: str
    sha256: str
    provenance: Described | None


class BenchDocument(Result):
    """One bench: the plan's artifacts on every device of the fleet, and the one verdict."""

    schema_: Literal["edgecnn.bench/4"] = Field(BENCH_SCHEMA, alias="schema")
    target: str
    run: str | None
    reference: ReferenceRecord | None
    data: str | None
    unlabeled: str | None
    budgets_source: str
    notes: list[str]
    judged_on: str
    parallel: int
    devices: list[DeviceEntry]
    verdict: Verdict
    wall_s: float

    def of_device(self, entry: DeviceEntry) -> "BenchDocument":
        """This document narrowed to one device (what a run keeps per device)."""
        return self.model_copy(update={"devices": [entry], "verdict": entry.verdict})


# ------------------------------------------------------------------------------ export
class FallbackStep(Result):
    float_ops: int
    accuracy_drop_pp: float | None
    interval_pp: Interval
    verdict: Verdict
    size_mb: float


class FallbackCost(Result):
    size_mb: dict[str, float]
    latency_p50_ms: dict[str, float]
    latency_ratio: float
    note: str


class Fallback(Result):
    """The search for the fewest ops to keep in float when INT8 fails its budget."""

    passed: bool = Field(alias="pass")
    verdict: Verdict
    artifact: str | None
    float_ops: list[Described]
    steps: list[FallbackStep]
    ranking: list[Described]          # per-layer sensitivity (export/tflite.layer_sensitivity)
    decision: str
    cost: FallbackCost | None = optional()


class ExportBudget(Result):
    """The INT8 TFLite's accuracy budget, judged on the interval of its paired drop."""

    max_drop_pp: float
    source: str
    int8_drop_pp: float | None
    interval_pp: Interval
    judged_on: str
    verdict: Verdict
    images_to_decide: int | None
    unlabeled_to_decide: int | None
    fallback: Fallback | None
    decision: str
    passed: bool = Field(False, alias="pass")


class ExportRecord(Versus):
    """One exported artifact, measured against the float model through its own runtime."""

    artifact: str
    format: str
    precision: str
    size_mb: float
    sha256: str
    provenance: Described
    export_s: float
    n: int
    accuracy: float | None
    max_abs_score_diff: float | None = optional()
    runtime: Described                       # the runner's description of itself
    route: Described | None = optional()     # the INT8 route's facts (export/route)
    graph: Described | None = optional()     # tensor types and op counts (export/graph)
    qdq: Described | None = optional()       # the Q/DQ ONNX's facts (export/onnx)
    float_ops: list[Described] | None = optional()   # ops a mixed model keeps in float


class UnlabeledSet(Result):
    source: str
    images: int
    skipped: list[Skipped]


class CalibrationUsed(Result):
    source: str | None
    list: str | None
    images: int


class KerasReference(Result):
    artifact: str
    format: str
    accuracy: float
    sha256: str


class ExportReport(Result):
    """One export: every artifact's record, the INT8 budget, the TensorRT build."""

    schema_: Literal["edgecnn.export/2"] = Field(EXPORT_SCHEMA, alias="schema")
    run: str
    recipe: str
    provenance: Described
    eval_data: str
    eval_images: int
    unlabeled: UnlabeledSet | None
    skipped: list[Skipped]
    calibration: CalibrationUsed
    reference: KerasReference
    artifacts: list[ExportRecord]
    budget: ExportBudget | None
    tensorrt: Described | None          # {built, reason} or the engine's stamp (agent/tensorrt_build)
    export_s: float

    def record(self, artifact: str) -> ExportRecord | None:
        return next((r for r in self.artifacts if r.artifact == artifact), None)


# ------------------------------------------------------------------------------ reading and writing
Doc = TypeVar("Doc", BenchDocument, ExportReport)   # the versioned documents: each has its schema_


def write(path: Path, doc: Result) -> None:
    """A document as JSON, written atomically."""
    atomic_write_text(Path(path), doc.to_json())


def read(path: Path, cls: type[Doc]) -> Doc:
    """A document of this version from a file: anything else (not JSON, another schema, a field missing
    or of the wrong type) is one InputError naming the file and, where it can, the field."""
    return parse(read_json(path), cls, str(path))


def parse(raw: Any, cls: type[Doc], where: str) -> Doc:
    want = cls.model_fields["schema_"].default
    if not isinstance(raw, dict) or raw.get("schema") != want:
        found = raw.get("schema") if isinstance(raw, dict) else None
        raise InputError(f"{where}: not a result of this version (schema {want}, found {found}); "
                         f"run the command again or delete it")
    try:
        return cls.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InputError(f"{where}: not as edgecnn writes it ({field}: {err['msg']})") from None
