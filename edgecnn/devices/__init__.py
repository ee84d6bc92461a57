"""Device registry: each module here defining a Device subclass with a ``name`` is a device kind."""

from __future__ import annotations

import sys

from ..core.discovery import discover
from ..core.errors import InputError
from .base import Device, DeviceOptions, OptionSpec, Transport

__all__ = ["Device", "Transport", "available_devices", "device_class", "get_device"]


def available_devices() -> dict[str, type[Device]]:
    return discover(sys.modules[__name__], Device, "name")


def device_class(name: str) -> type[Device]:
    devices = available_devices()
    if name not in devices:
        raise InputError(f"unknown device {name!r}; available: {', '.join(sorted(devices))}")
    return devices[name]


def get_device(name: str, **options) -> Device:
    return device_class(name)(**options)


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
