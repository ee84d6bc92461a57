"""Device registry: each module here defining a Device subclass with a ``name`` is a device kind."""

from __future__ import annotations

import sys

from ..core.discovery import discover
from ..core.errors import InputError
from .base import Device, Transport

__all__ = ["Device", "Transport", "available_devices", "get_device"]


def available_devices() -> dict[str, type[Device]]:
    return discover(sys.modules[__name__], Device, "name")


def get_device(name: str, **options) -> Device:
    devices = available_devices()
    if name not in devices:
        raise InputError(f"unknown device {name!r}; available: {', '.join(sorted(devices))}")
    return devices[name](**options)
