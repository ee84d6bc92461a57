"""The devices `edgecnn bench` runs on: a fleet file (``--fleet fleet.yaml``) or ``--device`` (repeated).

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

The devices a bench runs on: a fleet file, or the command line's ``--device KIND[:key=value,...]``
(repeated) with the device flags; one device is a fleet of one. Each entry is a kind and its typed
options (``Device.Options``), validated here with one line naming the field. How a fleet is benched,
its one document, table and verdict (the worst of its devices'): bench.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .core.errors import InputError
from .devices import available_devices
from .devices.base import DeviceOptions

DEFAULT_PARALLEL = 4


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
