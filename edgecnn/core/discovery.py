"""Plug-in discovery shared by the runtimes and devices packages: one new file adds one kind."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def discover(package: ModuleType, base: type, required_attr: str) -> dict[str, type]:
    """{cls.name: cls} for every subclass of base (with required_attr set) in package's modules."""
    found: dict[str, type] = {}
    for mod in pkgutil.iter_modules(package.__path__):
        if mod.name == "base":
            continue
        m = importlib.import_module(f"{package.__name__}.{mod.name}")
        for obj in vars(m).values():
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base and getattr(obj, required_attr):
                found[obj.name] = obj
    return found
