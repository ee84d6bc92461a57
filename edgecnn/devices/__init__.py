"""Device registry: each module here defining a Device subclass with a ``name`` is a device kind."""

from __future__ import annotations

import sys

from ..core.discovery import discover
from ..core.errors import InputError
from ..core.protocol import AgentRequest
from .base import Device, DeviceOptions, OptionSpec, Transport

__all__ = ["Device", "Transport", "available_devices", "check_request", "device_class", "devices_with",
           "get_device", "open_device"]


def available_devices() -> dict[str, type[Device]]:
    return discover(sys.modules[__name__], Device, "name")


def device_class(name: str) -> type[Device]:
    devices = available_devices()
    if name not in devices:
        raise InputError(f"unknown device {name!r}; available: {', '.join(sorted(devices))}")
    return devices[name]


def get_device(name: str, **options) -> Device:
    return device_class(name)(**options)


def open_device(kind: str, options: DeviceOptions, log=None) -> Device:
    """A device of `kind` opened with its typed options."""
    return get_device(kind, log=log, **options.model_dump())


def devices_with(capability: str) -> list[str]:
    """The kinds that declare a capability, by name."""
    return sorted(n for n, cls in available_devices().items() if getattr(cls.capabilities, capability))


def check_request(device: Device, request: AgentRequest, model_format: str) -> None:
    """Refuse, with one line, what the device declared it cannot do, naming the kinds that can."""
    caps = device.capabilities
    if model_format not in caps.formats:
        raise InputError(f"the {device.name} device runs {', '.join(caps.formats)} models, not {model_format}")
    if request.baseline is not None and not caps.baseline:
        raise InputError(f"--baseline is timed in turns in one agent process: the {device.name} device cannot "
                         f"(devices that can: {', '.join(devices_with('baseline'))})")
    if request.unlabeled is not None and not caps.unlabeled:
        raise InputError(f"--unlabeled: the {device.name} device does not predict unlabeled photos; count the "
                         f"changes where it can (devices that can: {', '.join(devices_with('unlabeled'))})")
    if request.cpus and not caps.cpu_pinning:
        raise InputError(f"--cpus: the {device.name} device cannot pin CPUs "
                         f"(devices that can: {', '.join(devices_with('cpu_pinning'))})")


def option_table() -> list[tuple[OptionSpec, tuple[str, ...]]]:
    """Every device option once, with the kinds that take it: each kind's own (kinds in name order),
    then those every kind takes (with no kinds listed)."""
    kinds = available_devices()
    common = DeviceOptions.specs()
    seen: dict[str, tuple[OptionSpec, list[str]]] = {}
    for kind in sorted(kinds):
        for s in kinds[kind].Options.specs():
            if s.name not in DeviceOptions.model_fields:
                seen.setdefault(s.name, (s, []))[1].append(kind)
    return [(s, tuple(k)) for s, k in seen.values()] + [(s, ()) for s in common]
