"""Shared fixtures: small real subsets of ../shared/data, one tiny trained run reused by tests.

Markers (declared in pyproject.toml) are applied here from what a test uses, never from a kept list:
- ``slow``: the test trains, converts or runs end to end (a fixture of SLOW_FIXTURES, or marked in its
  file); ``pytest -m "not slow"`` is the fast set, which mutation testing runs per mutant;
- ``needs_shared_data``: the test reads ../shared/data (a fixture of SHARED_FIXTURES, or marked in its
  file); without the data it skips with the reason;
- ``needs_tools(*names)``: the test runs an optional tool; where one is missing from PATH the test skips,
  before any fixture is set up, naming what is missing and how to install it (TOOL_FIXTURES applies it by
  fixture). ``.ci/without-tools`` runs a command with those tools stripped from PATH.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from devices_helpers import TOOLS, missing_tools  # noqa: E402
from edgecnn.paths import shared_data  # noqa: E402

SHARED = shared_data()

# Fixtures whose setup trains or converts MobileNetV2, builds an emulated Arm root or compiles the app, or
# that start a real sshd for runs end to end over SSH.
SLOW_FIXTURES = {"trained_run", "exported_run", "other_run", "two_phase_task", "sysroot", "core_jar", "resources_apk",
                 "board", "sshd", "boards", "ssh_board"}
# Fixtures that read ../shared/data.
SHARED_FIXTURES = {"products_subset", "two_phase_task"}
# Fixtures that start an optional tool, and which (a key of devices_helpers.TOOLS).
TOOL_FIXTURES = {"sshd": "openssh", "boards": "openssh", "ssh_board": "openssh", "sysroot": "qemu",
                 "board": "qemu", "adb_server": "adb", "core_jar": "kotlin", "resources_apk": "android"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        used = set(item.fixturenames)
        if used & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if used & SHARED_FIXTURES:
            item.add_marker(pytest.mark.needs_shared_data)
        for fixture in sorted(used & TOOL_FIXTURES.keys()):
            item.add_marker(pytest.mark.needs_tools(TOOL_FIXTURES[fixture]))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Skip, before any fixture (a session fixture may train for minutes), what missing data or a missing
    tool rules out."""
    if item.get_closest_marker("needs_shared_data") and not (SHARED.is_dir() and any(SHARED.iterdir())):
        pytest.skip(f"shared dataset not found: {SHARED} (set EDGECNN_SHARED_DATA)")
    for mark in item.iter_markers("needs_tools"):
        for kind in mark.args:
            tools, hint = TOOLS[kind]
            missing = missing_tools(tools)
            if missing:
                pytest.skip(f"needs {', '.join(missing)} (not on PATH): {hint}")


def need_shared(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared dataset not found: {p} (set EDGECNN_SHARED_DATA)")
    return p


def make_subset(dest: Path, dataset: str, classes, n_train: int, n_test: int,
                splits=("train", "test")) -> Path:
    """An ImageFolder of symlinks to some classes (a count or indices) and images of a shared dataset."""
    src = need_shared(dataset)
    for split, n in zip(splits, (n_train, n_test)):
        dirs = sorted((src / split).iterdir())
        picked = dirs[:classes] if isinstance(classes, int) else [dirs[i] for i in classes]
        for cdir in picked:
            out = dest / split / cdir.name
            out.mkdir(parents=True, exist_ok=True)
            for f in sorted(cdir.iterdir())[:n]:
                (out / f.name).symlink_to(f)
    return dest


@pytest.fixture(scope="session")
def products_subset(tmp_path_factory) -> Path:
    return make_subset(tmp_path_factory.mktemp("products"), "products", (0, 4, 6), 24, 10)


def _train(data: Path, out: Path, weights=None, extra=()):
    from click.testing import CliRunner

    from edgecnn.cli import main
    args = ["train", "--recipe", "products", "--data", str(data), "--out", str(out), "--image-size", "96",
            "--epochs", "8", "--quiet", "--gradcam", "2", *extra]
    if weights:
        args += ["--weights", weights]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def trained_run(products_subset, tmp_path_factory) -> Path:
    """3 product classes, 96 px, ImageNet weights, a few epochs: the run most tests reuse."""
    return _train(products_subset, tmp_path_factory.mktemp("run") / "products")


@pytest.fixture(scope="session")
def exported_run(trained_run, tmp_path_factory) -> Path:
    """trained_run exported to float/INT8 TFLite and float/Q-DQ ONNX (a copy, so tests stay independent)."""
    from click.testing import CliRunner

    from edgecnn.cli import main
    run = tmp_path_factory.mktemp("exported") / "products"
    shutil.copytree(trained_run, run, symlinks=True)
    calib_dir = tmp_path_factory.mktemp("calib-lists")
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--float", "--onnx"],
                           env={"EDGECNN_CALIBRATION_DIR": str(calib_dir)})
    assert r.exit_code in (0, 3), r.output     # 3: 30 test images may not decide the INT8 budget
    return run
