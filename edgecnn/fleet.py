"""`edgecnn bench --fleet fleet.yaml`: one model (or run) on many devices at once; one table, one verdict.

    # fleet.yaml
    parallel: 4                  # devices benched at once (default 4)
    devices:
      - name: lab-nano-1         # optional; default: the kind (and host/serial/profile)
        device: jetson           # any device kind; its options as on the command line
        host: ubuntu@10.0.0.21
        port: 22
        identity: ~/.ssh/lab     # relative paths are relative to this file
      - device: phone
        serial: R58M123ABC
      - device: phone-emulated
        profile: lowcost-a53
      - device: host

Each device runs the same bench as ``--device`` alone (the plan and the float reference are prepared
once, on the host), in a thread of a bounded pool: the devices' work happens in their own processes
(agents, ssh, adb, QEMU), so threads only wait. A device that cannot be reached (or refuses the
request) is reported as such, with its one-line reason, and the others' results stand. The fleet's
verdict is the worst of its devices', in the order PASS < INCONCLUSIVE < ERROR (the device refused the
request, e.g. a format it does not run) < UNREACHABLE < FAIL, and so is the exit status (0, 3, 2, 2, 1). Latencies measured at the same time on the same host (the host device,
emulated phones' host-side timing) share its cores: compare such rows with care.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import bench as B
from . import verdict as V
from .agent.errors import BudgetError, EdgecnnError, InconclusiveError, InputError
from .devices import DeviceError, available_devices
from .devices.base import DeviceOptions
from .render import fmt, table
from .report import record_bench

SCHEMA = "edgecnn.fleet/1"
DEFAULT_PARALLEL = 4
UNREACHABLE, ERROR = "UNREACHABLE", "ERROR"      # could not be reached; refused the request
SEVERITY = (V.PASS, V.INCONCLUSIVE, ERROR, UNREACHABLE, V.FAIL)


class FleetUnreachable(DeviceError):
    """A device of the fleet could not be reached or used (the others' results stand): exit 2."""


@dataclass(frozen=True)
class FleetDevice:
    name: str
    kind: str
    options: DeviceOptions          # the kind's typed options; given() is what the entry set

    def device_options(self, timeout: float) -> DeviceOptions:
        """The entry's options, its timeout the command's unless the entry sets its own."""
        if "timeout" in self.options.model_fields_set:
            return self.options
        return self.options.model_copy(update={"timeout": float(timeout)})


@dataclass(frozen=True)
class Fleet:
    devices: tuple[FleetDevice, ...]
    parallel: int = DEFAULT_PARALLEL

    def __post_init__(self):
        if not self.devices:
            raise InputError("the fleet lists no devices")
        names = [d.name for d in self.devices]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise InputError(f"the fleet names {dup!r} twice: give each device its own name")
        if not 1 <= self.parallel <= 64:
            raise InputError(f"fleet parallel {self.parallel} is not in 1..64")


def device(kind: str, options: dict, name: str | None = None, where: str = "the fleet") -> FleetDevice:
    """One typed fleet entry: a known kind, and only the options that kind declares."""
    kinds = available_devices()
    if kind not in kinds:
        raise InputError(f"{where}: unknown device {kind!r}; available: {', '.join(sorted(kinds))}")
    typed = kinds[kind].Options.parse(options, kind, where)
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise InputError(f"{where}: name must be a text value, got {name!r}")
    given = typed.given()
    label = name or kind + "".join(f" {given[s.name]}" for s in typed.specs() if s.identifies and given.get(s.name))
    return FleetDevice(str(label), kind, typed)


def from_command_line(specs: tuple[str, ...], flags: dict) -> tuple[FleetDevice, ...]:
    """The devices of repeated ``--device KIND[:key=value,...]`` and the device flags: a flag fills what a
    device's own spec leaves unset, on every kind that takes it (a repeated flag: one device per value)."""
    parsed = [_parse_spec(s) for s in specs]
    kinds = [kind for kind, _ in parsed]
    for k in flags:
        if not any(k in available_devices()[kind].Options.model_fields for kind in kinds):
            flag = "--" + k.replace("_", "-")
            raise InputError(f"{flag} does not apply to --device {kinds[0]}" if len(set(kinds)) == 1 else
                             f"{flag} applies to none of --device {', '.join(kinds)}")
    entries = []
    for (kind, own), spec in zip(parsed, specs):
        fields = available_devices()[kind].Options.model_fields
        base = {k: v for k, v in flags.items() if k in fields and k not in own}
        each = next((k for k, v in base.items() if isinstance(v, tuple)), None)
        for value in base[each] if each else (None,):
            options = {**base, **({each: value} if each else {}), **own}
            entries.append(device(kind, options, where=f"--device {spec}"))
    return tuple(entries)


def _parse_spec(text: str) -> tuple[str, dict]:
    """``KIND[:key=value,...]``: the kind and its options, each value read as its field's type (text stays
    text; a number, true/false as in a fleet file)."""
    import yaml

    from .devices import device_class
    kind, colon, rest = text.partition(":")
    specs = {s.name: s for s in device_class(kind.strip()).Options.specs()}
    options = {}
    for pair in filter(None, rest.split(",")) if colon else ():
        key, eq, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise InputError(f"--device {text}: expected KIND:key=value,... (got {pair!r})")
        if key not in specs or specs[key].type is str:
            options[key] = value
            continue
        try:
            options[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            options[key] = value
    return kind.strip(), options


def load(path: Path) -> Fleet:
    """A fleet file (YAML), validated: one InputError line for anything wrong in it."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise InputError(f"fleet file {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise InputError(f"fleet file {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("devices"), list):
        raise InputError(f"fleet file {path}: expected a mapping with a 'devices' list")
    stray = sorted(set(doc) - {"devices", "parallel"})
    if stray:
        raise InputError(f"fleet file {path}: unknown key {stray[0]!r} (expected devices, parallel)")
    entries = []
    for i, e in enumerate(doc["devices"]):
        where = f"fleet file {path.name}, device {i + 1}"
        if not isinstance(e, dict) or not isinstance(e.get("device"), str):
            raise InputError(f"{where}: expected a mapping with 'device: KIND'")
        options = {k: v for k, v in e.items() if k not in ("device", "name")}
        kind = available_devices().get(e["device"])
        for spec in kind.Options.specs() if kind else ():
            if spec.path and isinstance(options.get(spec.name), str):
                options[spec.name] = str((path.parent / Path(options[spec.name]).expanduser()).resolve())
        entries.append(device(e["device"], options, e.get("name"), where))
    parallel = doc.get("parallel", DEFAULT_PARALLEL)
    if not isinstance(parallel, int) or isinstance(parallel, bool):
        raise InputError(f"fleet file {path}: parallel must be a whole number")
    return Fleet(tuple(entries), parallel)


# ------------------------------------------------------------------------------------ run
def bench_fleet(o: B.BenchOptions, fleet: Fleet, log: Callable[[str], None] = print) -> dict:
    """Every device of the fleet benched at once (at most fleet.parallel at a time); one document."""
    t0 = time.perf_counter()
    p, ref = B.prepare(o, log)
    lock = threading.Lock()

    def one(d: FleetDevice) -> dict:
        def said(msg: str) -> None:
            with lock:
                log(f"[{d.name}] {msg}")
        return _bench_device(o, p, ref, d, said)

    with ThreadPoolExecutor(max_workers=fleet.parallel, thread_name_prefix="fleet") as pool:
        entries = list(pool.map(one, fleet.devices))
    if p.run is not None:
        for e in entries:
            if e["bench"] is not None:
                record_bench(e["bench"], p.run.dir, log)
    return {"schema": SCHEMA, "target": str(o.target), "run": str(p.run.dir) if p.run else None,
            "data": str(o.data) if o.data else None, "parallel": fleet.parallel, "devices": entries,
            "verdict": worst([e["verdict"] for e in entries]), "wall_s": round(time.perf_counter() - t0, 2)}


def _bench_device(o: B.BenchOptions, p: B.Plan, ref, d: FleetDevice, log) -> dict:
    entry = {"name": d.name, "device": d.kind, "options": d.options.given(), "status": "ok", "error": None,
             "bench": None}
    t = time.perf_counter()
    try:
        doc = B.bench_on(dataclasses.replace(o, device=d.kind, device_options=d.device_options(o.timeout)),
                         p, ref, log)
        entry.update(bench=doc, verdict=doc["verdict"])
    except EdgecnnError as e:
        reached = not isinstance(e, DeviceError)
        entry.update(status="refused" if reached else "unreachable", error=str(e),
                     verdict=ERROR if reached else UNREACHABLE)
        log(f"{entry['status']}: {e}")
    entry["wall_s"] = round(time.perf_counter() - t, 2)
    return entry


def worst(verdicts: list[str]) -> str:
    return max(verdicts, key=SEVERITY.index) if verdicts else V.PASS


def check(doc: dict) -> None:
    """Exit with the worst device's status: FAIL 1, UNREACHABLE or ERROR 2, INCONCLUSIVE 3, PASS returns."""
    v = doc["verdict"]
    bad = [e["name"] for e in doc["devices"] if e["verdict"] == v]
    if v == V.FAIL:
        raise BudgetError(f"fleet: a budget failed on {', '.join(bad)}")
    if v in (UNREACHABLE, ERROR):
        raise FleetUnreachable(f"fleet: {', '.join(bad)} could not be benched (the others' results are above)")
    if v == V.INCONCLUSIVE:
        raise InconclusiveError(f"fleet: the test images cannot decide a budget on {', '.join(bad)}")


def render(doc: dict, markdown: bool = False) -> str:
    rows, notes = [], []
    for e in doc["devices"]:
        if e["bench"] is None:
            rows.append([e["name"], e["device"], "-", "-", "-", "-", "-", "-", "-", "-", "-", e["verdict"]])
            notes.append(f"{e['name']}: {e['status']}: {e['error']}")
            continue
        for r in e["bench"]["records"]:
            lat = r["latency_ms"] or {}
            est = "~" if r.get("latency_estimated") else ""
            ci = (r.get("paired") or {}).get("drop_ci_pp")
            drop = fmt(r["accuracy_drop_pp"], "+.2f") + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")
            rows.append([e["name"], B.device_label(r), r["artifact"], r["precision"], fmt(r["images"], "d"),
                         fmt(r["accuracy"], ".2%"), drop, fmt(r.get("top1_agreement"), ".1%"),
                         est + fmt(lat.get("p50"), ".2f"), est + fmt(lat.get("p90"), ".2f"),
                         " ".join(f"{k}:{'ok' if b['pass'] else b['verdict']}" for k, b in r["budgets"].items()),
                         r["verdict"]])
        notes += [f"{e['name']}: {n}" for n in e["bench"]["notes"]]
    out = table(["device", "kind", "artifact", "precision", "images", "accuracy", "drop pp [95%]", "agree",
                 "p50 ms", "p90 ms", "budgets", "verdict"], rows, markdown=markdown)
    counts = ", ".join(f"{sum(e['verdict'] == v for e in doc['devices'])} {v}" for v in SEVERITY
                       if any(e["verdict"] == v for e in doc["devices"]))
    notes.append(f"fleet verdict: {doc['verdict']} ({counts}; {len(doc['devices'])} devices, at most "
                 f"{doc['parallel']} at once, {doc['wall_s']:.1f} s; ~ = estimated latency)")
    sep = "\n\n" if markdown else "\n"
    return out + sep + sep.join(notes) + "\n"
