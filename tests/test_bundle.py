"""edgecnn.bundle: the Android app's assets, from a real (tiny) INT8 TFLite model.

The model is a few conv layers, 32x32 int8 in, 3 classes int8 out, converted with TensorFlow's
full-integer INT8 converter, with its contract embedded the way 'edgecnn export' does it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import android_helpers as H  # noqa: E402

from edgecnn.core import metadata as MD  # noqa: E402
from edgecnn.core.artifact import embedded_contract, read_contract, tflite_with_contract  # noqa: E402
from edgecnn.core.metadata import strip_archive  # noqa: E402
from tiny_model import tiny_int8_tflite  # noqa: E402
from edgecnn.bundle import MANIFEST_NAME, bundle  # noqa: E402
from edgecnn.core.contract import Contract  # noqa: E402
from edgecnn.core.errors import BudgetError, InputError  # noqa: E402


@pytest.fixture(scope="module")
def int8_model() -> bytes:
    ok, why = H.tensorflow_available()
    if not ok:
        pytest.skip(why)
    return H.tiny_int8_tflite()


@pytest.fixture
def app(tmp_path) -> Path:
    """A scratch Android project with the real app's manifest (bundle writes into its assets)."""
    d = tmp_path / "android_demo"
    (d / "app" / "src" / "main").mkdir(parents=True)
    shutil.copy(H.ANDROID / "app" / "src" / "main" / "AndroidManifest.xml", d / "app" / "src" / "main")
    return d


def make_run(root: Path, model_bytes: bytes, name: str = "leaves", precision: str = "int8") -> Path:
    """A run folder as train + export leave it: model.keras (a stand-in: bundle reads only its hash),
    recipe.json, a float contract.json with their provenance, and export/model_*.tflite whose
    embedded contract (when it has one) carries the same provenance."""
    import io
    import zipfile

    from edgecnn import recipe as R
    from edgecnn.core.contract import Provenance
    from edgecnn.core.io import sha256_file
    from edgecnn.rundir import recipe_json

    run = root / "runs" / name
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"stand-in for " + name.encode())
    recipe = R.load("crop_disease")
    (run / "recipe.json").write_text(recipe_json(recipe))
    prov = Provenance(sha256_file(run / "model.keras"), sha256_file(run / "recipe.json"))
    float_contract = Contract(input_size=(32, 32), labels=("healthy", "rust", "blight"), provenance=prov)
    (run / "contract.json").write_text(float_contract.to_json(), encoding="utf-8")
    try:   # as JSON, unvalidated: some tests embed contracts that bundle must refuse
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as z:
            embedded = json.loads(z.read("contract.json"))
            others = {n: z.read(n) for n in z.namelist() if n != "contract.json"}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n, data in others.items():
                z.writestr(n, data)
            z.writestr("contract.json", json.dumps({**embedded, "provenance": prov.to_dict()}))
        model_bytes = strip_archive(model_bytes) + buf.getvalue()
    except (zipfile.BadZipFile, KeyError):
        pass
    (run / "export" / f"model_{precision}.tflite").write_bytes(model_bytes)
    return run


def assets_of(app: Path) -> Path:
    return app / "app" / "src" / "main" / "assets"


# ------------------------------------------------------------------------------------ happy path
def _labels_in(model: Path) -> list[str]:
    return MD.associated_file(model, MD.LABELS_FILE, MD.MAX_LABELS_BYTES).decode().splitlines()


def test_bundle_writes_the_model_carrying_labels_and_contract(int8_model, app, tmp_path):
    run = make_run(tmp_path, int8_model)
    lines: list[str] = []
    info = bundle(run, app, "int8", log=lines.append)

    a = assets_of(app)
    assert sorted(p.name for p in a.iterdir()) == sorted(["model.tflite", MANIFEST_NAME])
    assert (a / "model.tflite").read_bytes() == (run / "export" / "model_int8.tflite").read_bytes()  # byte for byte
    embedded = read_contract(run / "export" / "model_int8.tflite")
    bundled = embedded_contract(a / "model.tflite")
    assert bundled == embedded and bundled.input_dtype == "int8"
    assert bundled.input_quantization is not None and bundled.output_quantization is not None
    assert _labels_in(a / "model.tflite") == list(embedded.labels)

    manifest = json.loads((a / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert [f["name"] for f in manifest["files"]] == ["model.tflite"]
    assert manifest["precision"] == "int8" and manifest["model_source"] == "leaves/export/model_int8.tflite"
    assert {f["name"]: f["bytes"] for f in info["files"]} == {p.name: p.stat().st_size for p in a.iterdir()
                                                              if p.name != MANIFEST_NAME}
    assert info["within_budget"] and 0 < info["size_mb"] < 1
    # it says what it wrote, with sizes
    assert "model_int8.tflite" in lines[0] and "20 MB budget" in lines[0]
    for f in info["files"]:
        assert any(f["name"] in l and f"{f['bytes']:,d}" in l for l in lines[1:]), (f, lines)
    # nothing left behind beside the assets
    assert [p.name for p in a.parent.iterdir() if p.name.startswith(".assets")] == []


def test_bundle_accepts_a_model_file(int8_model, app, tmp_path):
    model = tmp_path / "m" / "classifier.tflite"
    model.parent.mkdir()
    model.write_bytes(int8_model)
    info = bundle(model, app, log=None)
    assert info["precision"] is None and info["input_dtype"] == "int8"
    assert (assets_of(app) / "model.tflite").read_bytes() == int8_model


def test_second_bundle_replaces_the_first(int8_model, app, tmp_path):
    run1 = make_run(tmp_path / "one", int8_model)
    bundle(run1, app, log=None)
    a = assets_of(app)
    # a developer's own asset survives; files the previous bundle listed (and wrote) are removed, such as
    # the loose contract.json and labels.txt of earlier versions
    (a / "notes.txt").write_text("mine\n", encoding="utf-8")
    for legacy in ("contract.json", "labels.txt"):
        (a / legacy).write_text("old\n", encoding="utf-8")
    (a / "stale_from_last_bundle.bin").write_bytes(b"x")
    m = json.loads((a / MANIFEST_NAME).read_text(encoding="utf-8"))
    m["files"] += [{"name": n, "bytes": 1, "sha256": ""} for n in ("stale_from_last_bundle.bin", "contract.json", "labels.txt")]
    (a / MANIFEST_NAME).write_text(json.dumps(m), encoding="utf-8")

    # the second model: same network, other labels
    c = read_contract(run1 / "export" / "model_int8.tflite")
    relabelled = Contract(**{**c.__dict__, "labels": ("apple", "pear", "plum")})
    second = tflite_with_contract(strip_archive(int8_model), relabelled)
    run2 = make_run(tmp_path / "two", second, name="fruit")
    bundle(run2, app, log=None)

    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(["model.tflite", MANIFEST_NAME, "notes.txt"])
    assert (a / "model.tflite").read_bytes() == (run2 / "export" / "model_int8.tflite").read_bytes()
    assert _labels_in(a / "model.tflite") == ["apple", "pear", "plum"]
    assert embedded_contract(a / "model.tflite").labels == ("apple", "pear", "plum")
    assert (a / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert json.loads((a / MANIFEST_NAME).read_text(encoding="utf-8"))["model_source"] == "fruit/export/model_int8.tflite"
    assert [p.name for p in a.parent.iterdir() if p.name.startswith(".assets")] == []


# ------------------------------------------------------------------------------------ refusals
def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg and "Traceback" not in msg
    return msg


def test_model_over_the_budget_is_refused(int8_model, app, tmp_path):
    run = make_run(tmp_path, int8_model)
    with pytest.raises(BudgetError) as e:
        bundle(run, app, budget_mb=0.001, log=None)
    msg = _one_line(e)
    assert "model_int8.tflite is 0.0" in msg and "over the 0.001 MB size budget" in msg
    assert e.value.exit_code == 1
    assert not assets_of(app).exists()                # nothing written


def test_model_over_the_default_20mb_budget_is_refused(int8_model, app, tmp_path):
    """A real model carrying a 21 MB associated file: over the default budget."""
    import io
    import zipfile
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("vocab.bin", np.random.default_rng(0).bytes(21_000_000))
    c = read_contract(make_run(tmp_path / "ref", int8_model) / "export" / "model_int8.tflite")
    big = tflite_with_contract(strip_archive(int8_model) + buf.getvalue(), c)
    run = make_run(tmp_path, big, name="big")
    with pytest.raises(BudgetError) as e:
        bundle(run, app, log=None)
    assert "is 21.0" in _one_line(e) and "over the 20 MB size budget" in str(e.value)
    assert not assets_of(app).exists()


def test_model_without_contract_is_refused_and_previous_bundle_kept(int8_model, app, tmp_path):
    bundle(make_run(tmp_path / "good", int8_model), app, log=None)
    before = {p.name: p.read_bytes() for p in assets_of(app).iterdir()}

    bare = tmp_path / "loose" / "models" / "bare.tflite"       # no sidecar, no contract.json near it
    bare.parent.mkdir(parents=True)
    bare.write_bytes(tiny_int8_tflite(False))                  # no metadata, no associated files
    with pytest.raises(InputError) as e:
        bundle(bare, app, log=None)
    assert "carries no preprocessing contract (nor standard TFLite metadata)" in _one_line(e)
    assert {p.name: p.read_bytes() for p in assets_of(app).iterdir()} == before
    cut = bare.with_name("cut.tflite")                         # metadata naming files no longer packed
    cut.write_bytes(strip_archive(int8_model))
    with pytest.raises(InputError) as e:
        bundle(cut, app, log=None)
    assert "names the labels file 'labels.txt', which is not packed in the model" in _one_line(e)
    assert {p.name: p.read_bytes() for p in assets_of(app).iterdir()} == before


def test_contract_is_reconciled_with_the_model_like_the_agent(int8_model, app, tmp_path):
    """An INT8 model exported without its contract, in a run whose contract.json is the float one:
    the model's own input type and quantization win (as edgecnn.agent.runtimes.base.reconcile decides
    for the agent), so the app is told int8, with the model's scale and zero point: the bundled model
    is re-stamped with that contract, and says so."""
    run = make_run(tmp_path, strip_archive(int8_model))
    lines: list[str] = []
    bundle(run, app, log=lines.append)
    bundled = embedded_contract(assets_of(app) / "model.tflite")
    embedded = read_contract(make_run(tmp_path / "ref", int8_model) / "export" / "model_int8.tflite")
    assert bundled.input_dtype == "int8"
    assert bundled.input_quantization == embedded.input_quantization
    assert bundled.output_quantization == embedded.output_quantization
    assert any(l.startswith("note: the contract's input type (float32) differs from the model's (int8)")
               for l in lines), lines
    assert any(l.startswith("note: model_int8.tflite is bundled re-stamped with the contract above") for l in lines)
    assert _labels_in(assets_of(app) / "model.tflite") == list(bundled.labels)


def test_contract_whose_size_or_classes_disagree_with_the_model_is_refused(int8_model, app, tmp_path):
    c = read_contract(make_run(tmp_path / "x", int8_model) / "export" / "model_int8.tflite")
    for name, wrong, needle in (
        ("size", Contract(**{**c.__dict__, "input_size": (64, 64)}),
         "model input is 32x32 but its contract says 64x64"),
        ("classes", Contract(**{**c.__dict__, "labels": ("a", "b", "c", "d")}),
         "model has 3 outputs but its contract lists 4 labels"),
    ):
        run = make_run(tmp_path / name, tflite_with_contract(int8_model, wrong))
        with pytest.raises(InputError) as e:
            bundle(run, app, log=None)
        assert needle in _one_line(e)
    assert not assets_of(app).exists()


def test_label_the_app_cannot_show_is_refused(int8_model, app, tmp_path):
    c = read_contract(make_run(tmp_path / "x", int8_model) / "export" / "model_int8.tflite")
    bad = Contract(**{**c.__dict__, "labels": ("ok", "two\nlines", "x")})
    run = make_run(tmp_path / "y", tflite_with_contract(int8_model, bad))
    with pytest.raises(InputError) as e:
        bundle(run, app, log=None)
    assert "label 'two\\nlines' contains a control character" in _one_line(e)


def test_bad_arguments_are_one_line_errors(int8_model, app, tmp_path):
    run = make_run(tmp_path, int8_model)
    with pytest.raises(InputError) as e:
        bundle(run, app, precision="int4", log=None)
    assert "precision must be one of int8, fp16, fp32" in _one_line(e)
    with pytest.raises(InputError) as e:
        bundle(run, app, precision="fp32", log=None)
    assert "no model_fp32.tflite" in _one_line(e) and "model_int8.tflite" in str(e.value)
    with pytest.raises(InputError) as e:
        bundle(tmp_path / "nope", app, log=None)
    assert "no such run folder or model" in _one_line(e)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(InputError) as e:
        bundle(onnx, app, log=None)
    assert "runs a .tflite model" in _one_line(e)
    with pytest.raises(InputError) as e:
        bundle(run, tmp_path, log=None)
    assert "is not the edgecnn Android app" in _one_line(e)
    with pytest.raises(InputError) as e:
        bundle(run, app, budget_mb=0, log=None)
    assert "size budget must be a positive number" in _one_line(e)
