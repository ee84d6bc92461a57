"""What crosses the process or machine boundary between `bench` and the agent: typed, versioned
messages, serialised as JSON and validated on both sides (like the preprocessing contract).

- :class:`AgentRequest`  what to run: the model, images, engine, threads, CPU pinning, timing, baseline.
- :class:`AgentResult`   what came back: latency, evaluation, skipped images, memory, runtime, platform,
  and what a device adds (an estimate, notes, the board or emulation it ran on).
- :class:`EngineBuildRequest` / :class:`EngineBuildResult`  a TensorRT engine built on the target.
- :class:`AgentFailure`  the one-line error the agent reports instead of a result.
- :class:`BoardEmulation` what an emulated board declares about itself (read by the SSH device's probe).

A message carries its schema name and version; a reader refuses another version with a message that
says which side is older, and refuses unknown fields, wrong types and non-finite numbers, naming the
field. The (de)serialiser is written here on purpose: the agent runs on bare boards that have numpy
and one runtime but no validation library (pydantic's compiled core is not there).
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .contract import Contract, Quantization
from .errors import EdgecnnError, InputError

FAILURE_SCHEMA = "edgecnn.agent.failure/1"


class ProtocolError(InputError):
    """A message that does not follow its schema (another version, a wrong field): exit 2."""


# ------------------------------------------------------------------------------ (de)serialising
def _wire_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.metadata.get("wire", True)]


def to_wire(value: Any) -> Any:
    """A message (or part of one) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, (Contract, Quantization)):
            return value.to_dict()
        out = {"schema": value.SCHEMA} if getattr(value, "SCHEMA", None) else {}
        out.update({f.name: to_wire(getattr(value, f.name)) for f in _wire_fields(type(value))})
        return out
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_wire(v) for k, v in value.items()}
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):   # numpy scalars
        return value.item()
    return value


def _union_args(tp) -> tuple | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return None


def from_wire(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against the type ``tp`` (and converted to it), or a ProtocolError naming where."""
    def bad(expected: str):
        raise ProtocolError(f"{where}: expected {expected}, got {type(value).__name__} {str(value)[:40]!r}")

    if tp is Any:
        return value
    union = _union_args(tp)
    if union is not None:
        if value is None and type(None) in union:
            return None
        inner = [t for t in union if t is not type(None)]
        if len(inner) == 1:
            return from_wire(inner[0], value, where)
        for t in inner:
            try:
                return from_wire(t, value, where)
            except ProtocolError:
                continue
        bad(" or ".join(getattr(t, "__name__", str(t)) for t in inner))
    if tp is type(None):
        return None if value is None else bad("null")
    if tp is bool:
        return value if isinstance(value, bool) else bad("true or false")
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else bad("an integer")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            bad("a number")
        if not math.isfinite(value):
            bad("a finite number")
        return float(value)
    if tp is str:
        return value if isinstance(value, str) else bad("a string")
    if tp in (Contract, Quantization):
        if not isinstance(value, dict):
            bad("an object")
        if tp is Contract:
            return Contract.from_dict(value, source=where)
        return Quantization(from_wire(float, value.get("scale"), f"{where}.scale"),
                            from_wire(int, value.get("zero_point"), f"{where}.zero_point"))
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        if not isinstance(value, list):
            bad("a list")
        item = args[0] if args else Any
        items = [from_wire(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            bad("an object")
        _check_finite(value, where)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    raise ProtocolError(f"{where}: unsupported field type {tp!r}")  # a programming error, said plainly


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"{where}: expected a finite number, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def _from_dict(cls, d: Any, where: str):
    if not isinstance(d, dict):
        raise ProtocolError(f"{where}: expected an object, got {type(d).__name__}")
    d = dict(d)
    schema = getattr(cls, "SCHEMA", None)
    if schema:
        got = d.pop("schema", None)
        if got != schema:
            raise ProtocolError(schema_mismatch(where, got, schema))
    hints = typing.get_type_hints(cls)
    wire = {f.name: f for f in _wire_fields(cls)}
    unknown = sorted(set(d) - set(wire))
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kw = {}
    for name, f in wire.items():
        if name in d:
            kw[name] = from_wire(hints[name], d[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{where}: missing field {name!r}")
    obj = cls(**kw)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj


def schema_mismatch(where: str, got: Any, expected: str) -> str:
    if got is None:
        return f"{where}: no schema field (expected {expected})"
    return (f"{where}: schema {got!r}, expected {expected!r}: the two sides come from different edgecnn "
            f"versions (the agent is shipped with each run, so one side is a stale copy: reinstall edgecnn)")


class Message:
    """Base of the top-level messages: SCHEMA, to/from JSON with validation."""

    SCHEMA: ClassVar[str] = ""

    def to_dict(self) -> dict:
        return to_wire(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, d: Any, source: str | None = None):
        return _from_dict(cls, d, source or cls.__name__)

    @classmethod
    def from_json(cls, text: str | bytes, source: str | None = None):
        return cls.from_dict(_loads(text, source or cls.__name__), source)


def _loads(text: str | bytes, where: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ProtocolError(f"{where}: not valid JSON ({e})") from None


def _positive(where: str, name: str, value, minimum=1) -> None:
    if value is not None and value < minimum:
        raise ProtocolError(f"{where}.{name}: must be at least {minimum}, got {value}")


# ------------------------------------------------------------------------------ the request
@dataclass(frozen=True)
class AgentRequest(Message):
    """What the agent runs. Paths are as the agent sees them; a device rewrites them for its side."""

    SCHEMA: ClassVar[str] = "edgecnn.agent.request/3"
    model: str
    data: str | None = None                 # class folders for accuracy
    unlabeled: str | None = None            # photos without labels: top-1 of each, to count changes
    engine: str | None = None               # runner name; default by the model's format
    threads: int | None = None              # default: all cores up to 4
    cpus: tuple[int, ...] | None = None     # pin the agent to these CPU ids
    warmup: int = 20
    runs: int = 200
    min_seconds: float = 2.0
    latency: bool = True                    # False: evaluation only
    max_images: int | None = None
    baseline: str | None = None             # a second model timed in turns with `model`
    outputs: str | None = None              # save the class scores (N, classes) here as .npy

    def check(self, where: str = "request") -> None:
        _positive(where, "runs", self.runs)
        _positive(where, "warmup", self.warmup, 0)
        _positive(where, "threads", self.threads)
        _positive(where, "max_images", self.max_images)
        if not (math.isfinite(self.min_seconds) and self.min_seconds >= 0):
            raise ProtocolError(f"{where}.min_seconds: must be a finite number >= 0, got {self.min_seconds}")
        if self.cpus is not None and (not self.cpus or min(self.cpus) < 0):
            raise ProtocolError(f"{where}.cpus: expected CPU ids >= 0, got {list(self.cpus)}")

    def __post_init__(self):
        self.check()


# ------------------------------------------------------------------------------ the result
@dataclass(frozen=True)
class Latency:
    """Single-image latency in milliseconds; with repeats, the median of each statistic."""

    p50: float
    p90: float
    p99: float
    mean: float
    std: float = 0.0
    min: float | None = None
    max: float | None = None
    n: int | None = None
    repeats: int | None = None
    p50_per_repeat: tuple[float, ...] | None = None
    p50_spread_pct: float | None = None

    def check(self, where: str) -> None:
        if not (0 <= self.p50 <= self.p90 <= self.p99) or self.mean < 0:
            raise ProtocolError(f"{where}: latency statistics out of order or negative "
                                f"(p50 {self.p50}, p90 {self.p90}, p99 {self.p99}, mean {self.mean})")

    @classmethod
    def median(cls, runs: list["Latency"]) -> "Latency":
        """Several runs as one: the median of each statistic, the extremes' min and max, all samples."""
        import statistics
        med = {k: statistics.median(getattr(r, k) for r in runs) for k in ("p50", "p90", "p99", "mean", "std")}
        return cls(**med, min=min(r.min for r in runs), max=max(r.max for r in runs), n=sum(r.n or 0 for r in runs))

    def scaled(self, factor: float) -> "Latency":
        return dataclasses.replace(self, **{k: getattr(self, k) * factor for k in
                                            ("p50", "p90", "p99", "mean", "std", "min", "max")
                                            if getattr(self, k) is not None}, p50_per_repeat=None)


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int | None, ...]
    dtype: str
    quantization: Quantization | None = None


@dataclass(frozen=True)
class Skipped:
    """An image the agent could not read, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Evaluation:
    """Top-1 predictions on labelled images, in the order of ``paths``."""

    paths: tuple[str, ...]
    y_true: tuple[int, ...]
    top1: tuple[int, ...]

    def check(self, where: str) -> None:
        if not (len(self.paths) == len(self.y_true) == len(self.top1)) or not self.paths:
            raise ProtocolError(f"{where}: paths, y_true and top1 must be non-empty and of equal length")

    @property
    def images(self) -> int:
        return len(self.paths)

    @property
    def accuracy(self) -> float:
        return sum(1 for a, b in zip(self.y_true, self.top1) if a == b) / len(self.y_true)


@dataclass(frozen=True)
class Predictions:
    """Top-1 predictions on photos without labels, in the order of ``paths``."""

    paths: tuple[str, ...]
    top1: tuple[int, ...]

    def check(self, where: str) -> None:
        if len(self.paths) != len(self.top1) or not self.paths:
            raise ProtocolError(f"{where}: paths and top1 must be non-empty and of equal length")


@dataclass(frozen=True)
class BaselineTiming:
    artifact: str
    format: str
    size_mb: float
    runtime: str
    latency_ms: Latency


@dataclass(frozen=True)
class VsBaseline:
    p50_ratio: float
    p90_ratio: float
    method: str
    p50_ratio_per_repeat: tuple[float, ...] | None = None


@dataclass(frozen=True)
class AgentResult(Message):
    """What one run of the agent (or a device's equivalent) measured."""

    SCHEMA: ClassVar[str] = "edgecnn.agent.result/3"
    artifact: str
    format: str
    size_mb: float
    runtime: str
    runtime_version: str
    platform: dict[str, Any]
    tensorflow_imported: bool
    threads: int | None = None
    input: Tensor | None = None
    output: Tensor | None = None
    contract: Contract | None = None         # as reconciled with the loaded model
    load_ms: float | None = None
    warmup: int | None = None
    latency_ms: Latency | None = None
    evaluation: Evaluation | None = None
    unlabeled: Predictions | None = None
    skipped: tuple[Skipped, ...] = ()
    baseline: BaselineTiming | None = None
    vs_baseline: VsBaseline | None = None
    peak_rss_mb: float | None = None
    # added by a device
    latency_estimated: bool = False
    estimate: dict[str, Any] | None = None    # how an estimated latency was derived (profile, anchors)
    latency_source: str | None = None         # when the latency is not the agent's own timing
    agreement_with_host: dict[str, Any] | None = None
    device_detail: dict[str, Any] | None = None   # the board, the emulation, the phone's memory report
    notes: tuple[str, ...] = ()
    # not on the wire: the class scores a device pulled back (numpy array), when asked for
    outputs: Any = field(default=None, compare=False, metadata={"wire": False})

    @property
    def integer_input(self) -> bool:
        """Whether the model takes integer input (int8 or uint8): a full-integer model, whose outputs are
        expected bit-exact across machines with the same kernels."""
        return self.input is not None and self.input.dtype in ("int8", "uint8")

    @property
    def throughput_ips(self) -> float | None:
        return round(1000.0 / self.latency_ms.mean, 2) if self.latency_ms and self.latency_ms.mean else None

    def check(self, where: str = "result") -> None:
        if self.evaluation is not None and self.contract is None:
            raise ProtocolError(f"{where}: an evaluation needs the contract that labels it")
        if (self.baseline is None) != (self.vs_baseline is None):
            raise ProtocolError(f"{where}: baseline and vs_baseline come together")

    def with_notes(self, *notes: str) -> "AgentResult":
        return dataclasses.replace(self, notes=(*self.notes, *notes))


# ------------------------------------------------------------------------------ TensorRT on the target
@dataclass(frozen=True)
class EngineBuildRequest(Message):
    """Build (or reuse, when its stamp matches) a TensorRT engine from a Q/DQ ONNX, on the target."""

    SCHEMA: ClassVar[str] = "edgecnn.agent.engine-request/1"
    onnx: str
    engine: str
    timing_cache: str
    fp16: bool = True
    workspace_mb: int = 1024
    max_batch: int = 8

    def check(self, where: str = "engine request") -> None:
        _positive(where, "workspace_mb", self.workspace_mb)
        _positive(where, "max_batch", self.max_batch)


@dataclass(frozen=True)
class EngineBuildResult(Message):
    SCHEMA: ClassVar[str] = "edgecnn.agent.engine-result/1"
    engine: str
    reused: bool
    stamp: dict[str, Any]      # TensorRT, CUDA, GPU, L4T/JetPack versions the engine is tied to


# ------------------------------------------------------------------------------ emulated boards
BOARD_EMULATION_FILE = "/etc/edgecnn/emulated.json"


@dataclass(frozen=True)
class BoardEmulation(Message):
    """Written on a board whose CPU is emulated (edgecnn.emulation.standin); its results are marked with it."""

    SCHEMA: ClassVar[str] = "edgecnn.board-emulation/1"
    emulator: str          # e.g. "qemu-aarch64 version 7.2.22 (user mode)"
    cpu: str               # the emulated core, e.g. "cortex-a76"
    host_machine: str      # the machine doing the emulating, e.g. "x86_64"

    def describe(self) -> str:
        return (f"an emulated Arm64 board ({self.cpu} under {self.emulator} on {self.host_machine}): its latency "
                f"is this emulation's, not a Jetson's or any real board's")


# ------------------------------------------------------------------------------ failures
@dataclass(frozen=True)
class AgentFailure(Message):
    SCHEMA: ClassVar[str] = FAILURE_SCHEMA
    error: str
    exit_code: int = 1

    def raise_it(self, where: str) -> typing.NoReturn:
        cls = InputError if self.exit_code == 2 else EdgecnnError
        raise cls(self.error if where in self.error else f"{self.error} (on {where})")


def read_reply(text: str | bytes, expected: type[Message], where: str):
    """The agent's reply as `expected`, or its failure raised as one clear error."""
    d = _loads(text, f"the agent's reply from {where}")
    if isinstance(d, dict) and d.get("schema") == FAILURE_SCHEMA:
        AgentFailure.from_dict(d, f"the agent's failure from {where}").raise_it(where)
    return expected.from_dict(d, f"the agent's reply from {where}")
