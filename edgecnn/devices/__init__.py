"""Device registry: each module here defining a Device subclass with a ``name`` is a device kind."""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import InputError
from .base import Device, DeviceError, Transport

__all__ = ["Device", "DeviceError", "Transport", "available_devices", "get_device"]


def available_devices() -> dict[str, type[Device]]:
    found: dict[str, type[Device]] = {}
    for mod in pkgutil.iter_modules(__path__):
        if mod.name == "base":
            continue
        m = importlib.import_module(f"{__name__}.{mod.name}")
        for obj in vars(m).values():
            if isinstance(obj, type) and issubclass(obj, Device) and obj is not Device and obj.name:
                found[obj.name] = obj
    return found


def get_device(name: str, **options) -> Device:
    devices = available_devices()
    if name not in devices:
        raise InputError(f"unknown device {name!r}; available: {', '.join(sorted(devices))}")
    return devices[name](**options)
