"""A device = a transport (push files, run a command, pull files) + how to run the agent there.

Every device takes the same typed request (:class:`AgentRequest`, paths on this machine) and returns
the same typed result (:class:`AgentResult`); how it gets there (the agent over SSH, under QEMU, or
LiteRT's benchmark tool on a phone) is its own business. What it can do is data it declares
(:class:`Capabilities`), read by bench and the CLI instead of device names.

Devices are discovered from the modules of this package (any Device subclass with a ``name``),
so adding a device kind is one new file.
"""

from __future__ import annotations

import io
import subprocess
import types
import typing
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from ..core.errors import DeviceError, InputError
from ..limits import TIMEOUT_RANGE_S
from ..core.protocol import AgentRequest, AgentResult, read_reply

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SHIPPED = ("core", "agent")     # the subpackages the agent zip carries (agent imports only core)
DEFAULT_TIMEOUT_S = 1800.0
def option(default=None, help: str = "", *, path: bool = False, range: tuple | None = None, unit: str | None = None,
           metavar: str | None = None, repeat: bool = False, identifies: bool = False):
    """A device option's field: its default and help, and what the CLI and a fleet file need to know
    (a path, read relative to the fleet file; a range; a unit; repeatable on the command line, one device
    per value; part of the device's default name in a fleet)."""
    lo, hi = range or (None, None)
    return Field(default, ge=lo, le=hi, description=help,
                 json_schema_extra={"path": path, "unit": unit, "metavar": metavar, "repeat": repeat,
                                    "identifies": identifies})


@dataclass(frozen=True)
class OptionSpec:
    """One device option as the CLI and the fleet file see it (read off the typed options class)."""

    name: str
    type: type
    default: object
    help: str
    path: bool = False
    range: tuple | None = None
    unit: str | None = None
    metavar: str | None = None
    repeat: bool = False
    identifies: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def expects(self) -> str:
        lo, hi = self.range or (None, None)
        if self.type is bool:
            return "true or false"
        if self.type is int:
            return f"a whole number from {lo} to {hi}" if self.range else "a whole number"
        if self.type is float:
            what = f"a number of {self.unit}" if self.unit else "a number"
            return f"{what} from {lo:g} to {hi:g}" if self.range else what
        return "a text value"

    def problem(self, value) -> str:
        return f"must be {self.expects()}, got {value!r}"


Text = Annotated[str, StringConstraints(pattern=r"\S")]      # a text value that is not blank


class DeviceOptions(BaseModel):
    """The options every device kind takes; a kind's own class (``Device.Options``) adds its fields.
    The single source of the bench flags, ``--device KIND:key=value,...`` and the fleet file's entries."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    timeout: float = option(DEFAULT_TIMEOUT_S, "Deadline of one agent run on the device (and of each transfer "
                            "to it).", range=TIMEOUT_RANGE_S, unit="seconds", metavar="SECONDS")

    @classmethod
    def specs(cls) -> list[OptionSpec]:
        return [_spec(name, f) for name, f in cls.model_fields.items()]

    @classmethod
    def parse(cls, values: dict, kind: str, where: str) -> "DeviceOptions":
        """The options of a `kind` device from plain values (a fleet entry, the command line), or one
        InputError line naming the field and what it must be."""
        stray = sorted(k for k in values if k not in cls.model_fields)
        if stray:
            raise InputError(f"{where}: {stray[0]!r} does not apply to device {kind} "
                             f"(it takes: {', '.join(sorted(cls.model_fields))})")
        try:
            return cls(**values)
        except ValidationError as e:
            name = str(e.errors()[0]["loc"][0])
            spec = next(s for s in cls.specs() if s.name == name)
            raise InputError(f"{where}: {name} {spec.problem(values[name])}") from None

    def given(self) -> dict:
        """The options set explicitly (the others keep their defaults)."""
        return self.model_dump(exclude_unset=True)


def _spec(name: str, f) -> OptionSpec:
    tp = f.annotation
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(t for t in typing.get_args(tp) if t is not type(None))
    if typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    lo = next((m.ge for m in f.metadata if hasattr(m, "ge")), None)
    hi = next((m.le for m in f.metadata if hasattr(m, "le")), None)
    extra = f.json_schema_extra or {}
    return OptionSpec(name, tp, f.default, f.description or "", extra.get("path", False),
                      (lo, hi) if lo is not None and hi is not None else None, extra.get("unit"),
                      extra.get("metavar"), extra.get("repeat", False), extra.get("identifies", False))


@dataclass(frozen=True)
class Capabilities:
    """What a device can do with a request."""

    formats: tuple[str, ...] = ("tflite", "onnx", "tensorrt")   # model formats it runs
    accuracy: bool = True            # evaluates --data on the device
    unlabeled: bool = False          # predicts --unlabeled photos on the device (changes need no labels)
    baseline: bool = False           # times a second model in turns with the first, in one process
    cpu_pinning: bool = False        # honours request.cpus
    latency_estimated: bool = False  # its latency is an estimate, not a measurement


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


class Transport:
    """Move files to and from a device and run commands on it."""

    def push(self, local: Path, remote: str) -> None:
        raise NotImplementedError

    def pull(self, remote: str, local: Path) -> None:
        raise NotImplementedError

    def run(self, argv: list[str], timeout: float | None = None) -> Completed:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalTransport(Transport):
    def push(self, local: Path, remote: str) -> None:
        import shutil
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, remote)

    def pull(self, remote: str, local: Path) -> None:
        import shutil
        shutil.copyfile(remote, local)

    def run(self, argv: list[str], timeout: float | None = None, env: dict | None = None,
            cwd: str | Path | None = None) -> Completed:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"command timed out after {timeout:.0f} s: {Path(argv[0]).name}") from None
        except FileNotFoundError:
            raise DeviceError(f"command not found: {argv[0]}") from None
        return Completed(p.returncode, p.stdout, p.stderr)


def agent_zip() -> bytes:
    """The agent and the core it imports, whole, as a runnable zip (python3 agent.pyz --request FILE)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(PACKAGE_DIR / "__init__.py", "edgecnn/__init__.py")
        for sub in SHIPPED:
            for f in sorted((PACKAGE_DIR / sub).rglob("*.py")):
                z.write(f, f"edgecnn/{f.relative_to(PACKAGE_DIR).as_posix()}")
        z.writestr("__main__.py", "import sys\nfrom edgecnn.agent.run import main\nsys.exit(main())\n")
    return buf.getvalue()


def read_agent_result(c: Completed, result_text: str | None, where: str) -> AgentResult:
    """The agent's typed result (or its failure raised), else a DeviceError with its last stderr line."""
    if result_text:
        return read_reply(result_text, AgentResult, where)
    err = (c.stderr.strip().splitlines() or c.stdout.strip().splitlines() or ["no output"])[-1]
    raise DeviceError(f"the agent failed on {where} (exit {c.returncode}): {err[:300]}")


def run_agent_locally(transport: LocalTransport, command: list[str], request: AgentRequest, *, parent: Path,
                      env: dict, timeout: float, where: str) -> AgentResult:
    """The agent on this machine (natively or under an emulator): `command` + --request/--result, run in
    a fresh work folder under `parent`, the request's paths made absolute, the class scores loaded back."""
    import dataclasses
    import tempfile
    with tempfile.TemporaryDirectory(prefix="run-", dir=parent) as work:
        work = Path(work)
        absolute = {k: str(Path(v).absolute()) for k in ("model", "data", "unlabeled", "baseline")
                    if (v := getattr(request, k)) is not None}
        outputs = work / "outputs.npy" if request.outputs else None
        req = dataclasses.replace(request, **absolute, outputs=str(outputs) if outputs else None)
        (work / "request.json").write_text(req.to_json())
        c = transport.run([*command, "--request", "request.json", "--result", "result.json"], timeout=timeout,
                          env={**env, "HOME": env.get("HOME", str(work)), "TMPDIR": str(work)}, cwd=work)
        result = work / "result.json"
        res = read_agent_result(c, result.read_text() if result.is_file() else None, where)
        if outputs is not None and outputs.is_file():
            import numpy as np
            res = dataclasses.replace(res, outputs=np.load(outputs))
        return res


class Device:
    """Base class: subclasses set ``name``, ``capabilities`` and ``Options`` (the typed options the kind
    takes) and implement run (and describe)."""

    name = ""
    capabilities = Capabilities()
    Options: ClassVar[type[DeviceOptions]] = DeviceOptions

    def __init__(self, log=None, **options):
        self.options = options
        self.log = log or (lambda msg: None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"device": self.name}

    def run(self, request: AgentRequest) -> AgentResult:
        """Run the request (its paths are on this machine) and return the device's typed result."""
        raise NotImplementedError
