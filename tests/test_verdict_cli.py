"""The verdict through the command line on a real run: budgets asked for are judged or refused, never
skipped; INCONCLUSIVE is a finding (its own line, exit 3), never an `Error:`; unlabeled photos of the
domain decide what the labelled test split alone cannot; photos the model was fitted to are refused.

Uses the session's exported run (3 product classes, 96 px, 30 test images)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import need_shared
from edgecnn import verdict as V
from edgecnn.cli import main

BUDGET = 8.0
QUICK = ["--runs", "3", "--warmup", "0", "--min-seconds", "0", "--threads", "1"]


def _cli(*args, env=None):
    r = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


def _test_dir(run: Path) -> Path:
    return Path(json.loads((run / "metrics.json").read_text())["data"]["root"]) / "test"


def _refused(r, says: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    assert r.exit_code == 2 and len(errors) == 1 and lines[-1] == errors[0], r.output
    assert says in errors[0], errors[0]
    assert "PASSED" not in r.output


def test_budgets_asked_for_without_a_reference_or_images_are_refused(exported_run, tmp_path):
    """Observed on main: both printed PASSED and exited 0, the drop column '-'."""
    alone = tmp_path / "alone.tflite"
    shutil.copy(exported_run / "export" / "model_int8.tflite", alone)
    r = _cli("bench", alone, "--data", _test_dir(exported_run), "--max-drop", "0", "--min-agreement", "100", *QUICK)
    _refused(r, "--max-drop and --min-agreement cannot be judged: no float reference")
    r = _cli("bench", exported_run, "--max-drop", "0", "--min-agreement", "100", *QUICK)
    _refused(r, "cannot be judged: no images to judge it on")


def test_the_recipes_own_budget_unjudged_is_said(exported_run):
    r = _cli("bench", exported_run / "export" / "model_int8.tflite", *QUICK)
    assert r.exit_code == 0, r.output
    assert "the recipe's accuracy budgets (max drop) are not judged: no images to judge it on" in r.output


def test_one_photo_never_passes_an_int8_budget(exported_run, tmp_path):
    """Observed on main: '95% interval +0.00 to +0.00 pp on 1 images ... PASS', exit 0."""
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    cls = sorted(_test_dir(run).iterdir())[0]
    one = tmp_path / "one" / cls.name
    one.mkdir(parents=True)
    shutil.copy(sorted(cls.iterdir())[0], one / "photo.jpg")
    r = _cli("export", run, "--int8", "--eval-data", one.parent, "--max-drop", "0",
             env={"EDGECNN_CALIBRATION_DIR": str(tmp_path / "lists")})
    assert r.exit_code == 3, r.output
    rep = json.loads((run / "export" / "export_report.json").read_text())
    assert rep["budget"]["verdict"] == "INCONCLUSIVE" and rep["budget"]["interval_pp"][1] > 50


def test_inconclusive_is_a_finding_not_an_error(exported_run, tmp_path):
    """Observed on main: `export` printed 'Error: INT8 accuracy budget: ... INCONCLUSIVE' though every file
    was written. 30 test images cannot confirm a 0.5 pp budget whatever INT8 did."""
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    r = _cli("export", run, "--int8", "--max-drop", "0.5", env={"EDGECNN_CALIBRATION_DIR": str(tmp_path / "lists")})
    assert r.exit_code == 3, r.output
    assert "Error:" not in r.output
    last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("INCONCLUSIVE: INT8 accuracy budget: drop ") and "kept in" in last, last
    assert (run / "export" / "model_int8.tflite").is_file()


def _unseen_photos(run: Path, dest: Path) -> Path:
    """Photos of the run's three classes that it neither trained, calibrated nor tested on."""
    src = need_shared("products")
    used = {p.resolve() for p in Path(json.loads((run / "metrics.json").read_text())["data"]["root"]).rglob("*")
            if p.is_file()}
    dest.mkdir()
    for cls in sorted((_test_dir(run)).iterdir()):
        for split in ("train", "test"):
            for f in sorted((src / split / cls.name).iterdir()):
                if f.resolve() not in used:
                    (dest / f"{split}_{f.name}").symlink_to(f)
    return dest


def test_unlabeled_photos_decide_what_labelled_ones_cannot(exported_run, tmp_path):
    """30 labelled images can never bound a drop below 11.3 pp (z^2 / (30 + z^2)); the small 96 px model's
    INT8 changes about 2% of predictions (6 of 273 here), which 243 more photos bound below 8 pp."""
    unseen = _unseen_photos(exported_run, tmp_path / "field")
    int8 = exported_run / "export" / "model_int8.tflite"
    data = ["--data", _test_dir(exported_run)]
    out = tmp_path / "b.json"
    r = _cli("bench", int8, *data, "--max-drop", BUDGET, "--json", out, *QUICK)
    labelled = json.loads(out.read_text())["devices"][0]["records"][0]
    assert r.exit_code == 3 and labelled["budgets"]["accuracy_drop_pp"]["verdict"] == "INCONCLUSIVE", r.output
    r = _cli("bench", int8, *data, "--unlabeled", unseen, "--max-drop", BUDGET, "--json", out, *QUICK)
    rec = json.loads(out.read_text())["devices"][0]["records"][0]
    u = rec["paired"]["unlabeled"]
    assert u["n"] == len(list(unseen.iterdir())) == 243
    bound = V.changed_upper(u["pooled_changed"], u["pooled_images"], 1 - V.ALPHA / 4)   # recomputed from the counts
    assert u["changed_bound_pp"] == pytest.approx(bound, abs=1e-4)
    assert u["pooled_images"] == 273 and u["pooled_changed"] == rec["paired"]["changed"] + u["changed"]
    assert len(rec["unlabeled"]["flips"]) == u["changed"]
    judged = rec["budgets"]["accuracy_drop_pp"]
    assert judged["judged_on"] == "95% interval (labelled + unlabeled)"
    assert judged["verdict"] == ("PASS" if bound <= BUDGET else "INCONCLUSIVE")
    assert bound <= BUDGET, f"{u['pooled_changed']} of 273 changed: this real set no longer shows the point"
    assert r.exit_code == 0 and "unlabeled photos changed prediction" in r.output, r.output


def test_photos_the_model_has_seen_are_refused_as_unlabeled(exported_run, tmp_path):
    root = Path(json.loads((exported_run / "metrics.json").read_text())["data"]["root"])
    field = tmp_path / "field"
    field.mkdir()
    for f in sorted((root / "train").rglob("*.jpg"))[:3]:
        shutil.copy(f, field / f"copy_{f.name}")        # same content under another name
    r = _cli("bench", exported_run, "--data", _test_dir(exported_run), "--unlabeled", field, *QUICK)
    _refused(r, "--unlabeled: 3 photo(s) are images the model was fitted to or calibrated on")
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    r = _cli("export", run, "--int8", "--unlabeled", field, env={"EDGECNN_CALIBRATION_DIR": str(tmp_path / "lists")})
    _refused(r, "are images the model was fitted to or calibrated on")


def test_unlabeled_is_refused_where_the_device_cannot_count_changes(exported_run, tmp_path):
    field = _unseen_photos(exported_run, tmp_path / "field")
    r = _cli("bench", exported_run / "export" / "model_int8.tflite", "--device", "phone-emulated",
             "--unlabeled", field, *QUICK[:6])
    _refused(r, "--unlabeled: the phone-emulated device does not predict unlabeled photos")


def test_point_estimates_need_labelled_images(exported_run, tmp_path):
    """Unlabeled photos bound the drop only through the interval: asking for point estimates without
    --data is refused with one line (it was a traceback)."""
    field = _unseen_photos(exported_run, tmp_path / "field")
    r = _cli("bench", exported_run / "export" / "model_int8.tflite", "--unlabeled", field, "--point-estimate",
             *QUICK)
    _refused(r, "--point-estimate judges the drop on labelled images: pass --data")
