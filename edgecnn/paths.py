"""Where the project finds things: the data folders the package carries, the shared datasets and
weights folder it does not ship, and the user's cache."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent
DEMO_DATA = PACKAGE / "demo_data" / "crop_disease_mini"


def builtin(folder: str) -> Path:
    """`recipes` (the built-in recipes) or `calibration` (the lists recorded for them): top-level folders
    of the repository that the wheel installs inside the package as edgecnn.recipes and
    edgecnn.calibration (pyproject.toml's package-dir), read through importlib.resources. A source
    checkout that is not installed has no such subpackage: its folder at the top is the same files."""
    try:
        found = resources.files(f"edgecnn.{folder}")
    except ModuleNotFoundError:
        return REPO_ROOT / folder
    if not isinstance(found, Path):   # a wheel is installed unpacked; a zipped import has no folders to list
        raise RuntimeError(f"edgecnn.{folder} is not a folder on disk: {found}")
    return found


def shared_data() -> Path:
    """Datasets and weights kept beside the repository (../shared/data), or $EDGECNN_SHARED_DATA."""
    env = os.environ.get("EDGECNN_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgecnn"
