"""Runner registry: every module in this package that defines a Runner subclass with ``formats``
is an engine. Adding an engine is one new file here."""

from __future__ import annotations

import sys
from pathlib import Path

from ...core.artifact import format_of
from ...core.discovery import discover
from ...core.errors import InputError
from .base import ModelLoadError, Runner, RuntimeMissing, TensorSpec

__all__ = ["Runner", "RuntimeMissing", "ModelLoadError", "TensorSpec", "runner_for", "available_runners"]


def available_runners() -> dict[str, type[Runner]]:
    """{runner name: class}, discovered from the modules of this package (no framework imported)."""
    return discover(sys.modules[__name__], Runner, "formats")


def runner_for(path: str | Path, engine: str | None = None, **kw) -> Runner:
    """A runner for the model file (by its format), or the named engine."""
    runners = available_runners()
    if engine:
        if engine not in runners:
            raise InputError(f"unknown engine {engine!r}; available: {', '.join(sorted(runners))}")
        cls = runners[engine]
        if format_of(path) not in cls.formats:
            raise InputError(f"engine {engine} cannot run {Path(path).name} (it runs {', '.join(cls.formats)})")
        return cls(path, **kw)
    fmt = format_of(path)
    for cls in runners.values():
        if fmt in cls.formats and getattr(cls, "default_for_format", True):
            return cls(path, **kw)
    raise InputError(f"no engine runs {fmt} models here")
