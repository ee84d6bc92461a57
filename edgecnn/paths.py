"""Where the project finds things it does not ship: the shared datasets and weights folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).resolve().parent
DEMO_DATA = PACKAGE / "demo_data" / "crop_disease_mini"
RECIPES = PACKAGE / "recipes"                 # the built-in recipes
CALIBRATION_LISTS = PACKAGE / "calibration"   # the calibration lists recorded for the built-in recipes


def shared_data() -> Path:
    """Datasets and weights kept beside the repository (../shared/data), or $EDGECNN_SHARED_DATA."""
    env = os.environ.get("EDGECNN_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgecnn"
