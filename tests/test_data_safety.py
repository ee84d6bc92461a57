"""The user's photos are never lost: a run folder (--out) lies apart from every input, --overwrite and
demo replace only a folder that is an edgecnn run, and bundle replaces only what it wrote itself.

Every refusal here happens before anything trains (a few seconds, no model built), and leaves the
user's files byte for byte as they were.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from devices_helpers import image_folder
from edgecnn.rundir import MARKER_FILE, MARKER_SCHEMA, RunMarker, check_out_dir, refuse_existing, write_marker
from edgecnn.core.errors import InputError
from test_bad_inputs import refused

TRAIN = ["train", "--recipe", "products", "--image-size", "96", "--epochs", "1", "--quiet"]
DEMO = ["demo", "--recipe", "products", "--epochs", "1"]


def _photos(root: Path) -> Path:
    """A user's folder: class folders of photos and a note beside them."""
    image_folder(root / "photos", per_class=2)
    (root / "notes.txt").write_text("field notes\n")
    return root / "photos"


def _out_for(root: Path, photos: Path, relation: str) -> Path:
    return {"equal": photos, "inside": photos / "run", "containing": root}[relation]


def _refused_before_training(args, keep, says):
    t0 = time.perf_counter()
    line = refused(args, says=says, keep=keep)
    assert time.perf_counter() - t0 < 30, "refused only after work began"
    return line


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
@pytest.mark.parametrize("relation,says", [("equal", "is the --data folder"),
                                           ("inside", "lies inside the --data folder"),
                                           ("containing", "contains the --data folder")])
def test_train_out_and_data_overlap(tmp_path, relation, says, overwrite):
    """Before: `train --data photos --out photos --overwrite` exited 0 with every photo gone."""
    photos = _photos(tmp_path)
    out = _out_for(tmp_path, photos, relation)
    args = [*TRAIN, "--data", photos, "--out", out] + (["--overwrite"] if overwrite else [])
    _refused_before_training(args, keep=[tmp_path], says=says)
    assert not (photos / "run").exists()


@pytest.mark.parametrize("relation,says", [("equal", "is the --data folder"),
                                           ("inside", "lies inside the --data folder"),
                                           ("containing", "contains the --data folder")])
def test_demo_out_and_data_overlap(tmp_path, relation, says):
    """Before: `demo --data v3/photos --out v3` deleted the photos and notes.txt, no flag needed."""
    photos = _photos(tmp_path)
    _refused_before_training([*DEMO, "--data", photos, "--out", _out_for(tmp_path, photos, relation)],
                             keep=[tmp_path], says=says)


@pytest.mark.parametrize("command", ["train", "demo"])
def test_out_that_is_a_symlink_to_the_data(tmp_path, command):
    photos = _photos(tmp_path)
    (tmp_path / "link").symlink_to(photos, target_is_directory=True)
    args = [*(TRAIN if command == "train" else DEMO), "--data", photos, "--out", tmp_path / "link"]
    _refused_before_training(args + (["--overwrite"] if command == "train" else []), keep=[tmp_path],
                             says="is the --data folder")
    assert (tmp_path / "link").is_symlink()


@pytest.mark.parametrize("overwrite", [False, True], ids=["plain", "overwrite"])
def test_train_never_replaces_a_folder_that_is_not_a_run(tmp_path, overwrite):
    """Before: --overwrite replaced any folder whole (the user's thesis, their other photos)."""
    photos = _photos(tmp_path / "a")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("chapter 1\n")
    (mine / "model.keras").write_bytes(b"my own model, not a run")   # one run file alone is not a run
    args = [*TRAIN, "--data", photos, "--out", mine] + (["--overwrite"] if overwrite else [])
    _refused_before_training(args, keep=[tmp_path], says="holds files that are not an edgecnn run")


@pytest.mark.parametrize("kind,says", [
    ("files", "holds files that are not an edgecnn run"),
    ("train-run", "holds a run written by 'edgecnn train'"),
    ("legacy-run", "holds a run no demo wrote"),
])
def test_demo_replaces_only_its_own_previous_run(tmp_path, kind, says):
    """Before: demo passed --overwrite itself and replaced whatever --out held."""
    photos = _photos(tmp_path / "a")
    out = tmp_path / "out"
    out.mkdir()
    if kind == "files":
        (out / "notes.txt").write_text("mine\n")
    else:
        for name in ("contract.json", "recipe.json", "model.keras"):
            (out / name).write_text("{}")
        if kind == "train-run":
            write_marker(out, "train")
    _refused_before_training([*DEMO, "--data", photos, "--out", out], keep=[tmp_path], says=says)


# ------------------------------------------------------------------ the helper, for every input option
@pytest.mark.parametrize("option", ["--data", "--calibration", "--unlabeled"])
@pytest.mark.parametrize("relation,says", [("equal", "is the"), ("inside", "lies inside the"),
                                           ("containing", "contains the")])
def test_check_out_dir_for_every_input(tmp_path, option, relation, says):
    photos = _photos(tmp_path)
    out = _out_for(tmp_path, photos, relation)
    with pytest.raises(InputError, match=f"--out {out} {says} {option} folder {photos}"):
        check_out_dir(out, {option: photos, "--other": None})


def test_check_out_dir_follows_symlinks_and_takes_a_list_files_folder(tmp_path):
    photos = _photos(tmp_path)
    (tmp_path / "alias").symlink_to(photos, target_is_directory=True)
    with pytest.raises(InputError, match="lies inside the --data folder"):
        check_out_dir(tmp_path / "alias" / "run", {"--data": photos})
    listed = photos / "calibration.txt"
    listed.write_text("# edgecnn calibration set\n")
    with pytest.raises(InputError, match="is the --calibration folder"):
        check_out_dir(photos, {"--calibration": listed})
    check_out_dir(tmp_path / "runs" / "x", {"--data": photos, "--calibration": listed, "--unlabeled": None})
    check_out_dir(tmp_path / "photos2", {"--data": photos})      # a sibling with a common prefix is apart


def test_what_overwrite_and_demo_may_replace(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "x").write_text("x")
    with pytest.raises(InputError, match="not an edgecnn run"):
        refuse_existing(run, True)
    for name in ("contract.json", "recipe.json", "model.keras"):   # an older edgecnn's run: a run
        (run / name).write_text("{}")
    refuse_existing(run, True)
    with pytest.raises(InputError, match="pass --overwrite"):
        refuse_existing(run, False)
    with pytest.raises(InputError, match="a run no demo wrote"):
        refuse_existing(run, False, "demo")
    write_marker(run, "demo")
    assert json.loads((run / MARKER_FILE).read_text()) == {"schema": MARKER_SCHEMA, "command": "demo"}
    assert RunMarker.read(run) == RunMarker("demo")
    refuse_existing(run, False, "demo")
    refuse_existing(run, True, "train")
    (run / MARKER_FILE).write_text('{"schema": "edgecnn.run/9", "command": "demo"}')
    assert RunMarker.read(run) is None
    refuse_existing(tmp_path / "new", False, "demo")
    (tmp_path / "empty").mkdir()
    refuse_existing(tmp_path / "empty", False, "demo")


# ------------------------------------------------------------------ bundle
@pytest.fixture(scope="module")
def int8_model() -> bytes:
    from tiny_model import tiny_int8_tflite
    return tiny_int8_tflite(True)


@pytest.fixture
def app(tmp_path) -> Path:
    """A scratch Android project with the real app's manifest."""
    from android_helpers import ANDROID
    d = tmp_path / "android_demo"
    (d / "app" / "src" / "main").mkdir(parents=True)
    shutil.copy(ANDROID / "app" / "src" / "main" / "AndroidManifest.xml", d / "app" / "src" / "main")
    return d


def _assets(app: Path) -> Path:
    return app / "app" / "src" / "main" / "assets"


def test_bundle_never_deletes_an_assets_file(int8_model, app, tmp_path):
    """Before: an app whose app/src/main/assets was a regular file lost that file, and bundle exited 0."""
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model)
    _assets(app).write_text("the developer's file\n")
    refused(["bundle", model, "--android", app], says="is a file, not the app's assets folder",
            keep=[app, model])


def test_bundle_never_writes_over_a_model_it_did_not_write(int8_model, app, tmp_path):
    """Before: a developer's own assets/model.tflite (no bundle manifest) was silently replaced."""
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model)
    _assets(app).mkdir()
    (_assets(app) / "model.tflite").write_bytes(b"the developer's own model")
    refused(["bundle", model, "--android", app], says="was not written by edgecnn bundle", keep=[app, model])
    (_assets(app) / "edgecnn-bundle.json").write_text("{not json")
    refused(["bundle", model, "--android", app], says="is not a manifest edgecnn bundle can read",
            keep=[app, model])
