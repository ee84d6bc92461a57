"""The Android app, checked without a phone.

1. The app's pure-Kotlin core (android_demo/app/src/main/java/dev/edgecnn/demo/core) is compiled
   with a real Kotlin 2.x compiler together with a small JVM program (android_demo/jvmcheck) and
   must turn decoded golden images into exactly the bytes edgecnn.core.contract.preprocess_array
   produces (float32 bit for bit, int8 and uint8 value for value), pick the same top-k as
   edgecnn.core.contract.topk, and accept and refuse the same contract.json files.
2. A resources-and-assets APK of the app is built with aapt2 against Debian's framework-res,
   zipaligned, signed with a throwaway key and verified (android_demo/tools/resources_apk.py).

Skips (with the reason) when kotlinc/java or the Android build tools or the shared datasets are
missing; .ci/android-deps.sh installs the tools.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import android_helpers as H  # noqa: E402

from edgecnn.core.contract import (Contract, Quantization, dequantize, load_image,  # noqa: E402
                                   preprocess_array, topk)
from edgecnn.paths import shared_data  # noqa: E402


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def core_jar(request, tmp_path_factory) -> Path:
    """The compiled core + check program; kept in pytest's cache between runs (keyed by the
    sources' hash), so only the first run after a change pays the ~30 s compile."""
    cache = getattr(request.config, "cache", None)
    where = Path(cache.mkdir("edgecnn-android")) if cache else tmp_path_factory.mktemp("kotlin")
    jar, why = H.core_check_jar(where)
    if jar is None:
        pytest.skip(why)
    return jar


def golden_images() -> list[Path]:
    """Real photos of several sizes: 224x224 and 256x256 JPEGs, 32x32 PNGs (upsampling), and the
    five reference BMPs (512 wide, 340-600 high)."""
    root = shared_data()
    picks: list[Path] = []
    for ds, n in (("products", 2), ("crop_disease", 2), ("traffic_signs", 2)):
        classes = sorted(p for p in (root / ds / "test").glob("*") if p.is_dir())
        for cls in classes[:n]:
            files = sorted(f for f in cls.iterdir() if f.is_file())
            if files:
                picks.append(files[0])
    picks += sorted((root / "weights" / "reference").glob("*.bmp"))
    return picks


# input sizes 224, 160, 96 and two non-square ones; all three dtypes; default and per-channel
# normalisation; int8 scales from a real export (2/255, zero point -1) and tie-heavy 1/128.
LABELS = ("a", "b", "c")
CONTRACTS = {
    "f32_224": Contract(input_size=(224, 224), labels=LABELS),
    "i8_160": Contract(input_size=(160, 160), labels=LABELS).with_quantization(
        "int8", Quantization(float(np.float32(2 / 255)), -1), Quantization(1 / 256, -128)),
    "u8_96": Contract(input_size=(96, 96), labels=LABELS).with_quantization(
        "uint8", Quantization(0.0078125, 128), Quantization(0.00390625, 0)),
    "f32_96x160_imagenet": Contract(input_size=(96, 160), labels=LABELS,
                                    mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    "i8_224x128": Contract(input_size=(224, 128), labels=LABELS).with_quantization(
        "int8", Quantization(0.0078125, 0), None),
    "u8_224": Contract(input_size=(224, 224), labels=LABELS).with_quantization(
        "uint8", Quantization(0.0078125, 128), None),
}


# ------------------------------------------------------------------------------------ preprocessing
def test_preprocessing_matches_python_exactly(core_jar, tmp_path):
    images = golden_images()
    if len(images) < 5:
        pytest.skip(f"shared datasets not found under {shared_data()} (set EDGECNN_SHARED_DATA)")
    jobs, cases = [], []
    for name, c in CONTRACTS.items():
        (tmp_path / f"{name}.json").write_text(c.to_json(), encoding="utf-8")
    for i, img_path in enumerate(images):
        rgb = load_image(img_path)
        raw = tmp_path / f"img{i}.raw"
        raw.write_bytes(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())
        h, w = rgb.shape[:2]
        for name, c in CONTRACTS.items():
            out = tmp_path / f"img{i}_{name}.bin"
            jobs.append(["preprocess", tmp_path / f"{name}.json", raw, w, h, out])
            cases.append((img_path, rgb, name, c, out))
    H.run_jobs(core_jar, jobs, tmp_path)

    sizes = {rgb.shape[:2] for _, rgb, *_ in cases}
    assert len(sizes) >= 5, sizes           # genuinely different source sizes
    mismatched = []
    for img_path, rgb, name, c, out in cases:
        expected = preprocess_array(rgb, c)
        assert expected.dtype == np.dtype(c.input_dtype)
        got = np.frombuffer(out.read_bytes(), dtype=np.dtype(c.input_dtype).newbyteorder("<"))
        assert got.size == expected.size, (img_path.name, name)
        got = got.reshape(expected.shape)
        if c.input_dtype == "float32":
            same = np.array_equal(got.view(np.uint32), expected.astype("<f4").view(np.uint32))
        else:
            same = np.array_equal(got, expected)
        if not same:
            diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
            mismatched.append(f"{img_path.name}/{name}: {int((diff > 0).sum())} differ, max {diff.max()}")
    assert not mismatched, "Kotlin preprocessing differs from edgecnn.core.contract:\n" + "\n".join(mismatched)
    print(f"\nKotlin == Python preprocessing on {len(images)} images x {len(CONTRACTS)} contracts "
          f"= {len(cases)} cases, all bit-identical")


def test_quantization_rounds_half_to_even_and_clips(core_jar, tmp_path):
    """Synthetic pixels that land exactly on .5 quantization steps and past the int8 range."""
    # mean 0, std 1, scale 2, zero point 60: pixel v -> clip(rint(v / 2) + 60, -128, 127);
    # odd v are exact ties (v = 1 -> 0.5 -> 0, v = 3 -> 1.5 -> 2, v = 5 -> 2.5 -> 2)
    c = Contract(input_size=(16, 16), labels=LABELS, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
                 ).with_quantization("int8", Quantization(2.0, 60), None)
    rgb = np.arange(16 * 16 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    rgb = rgb.astype(np.uint8)
    (tmp_path / "c.json").write_text(c.to_json(), encoding="utf-8")
    (tmp_path / "img.raw").write_bytes(rgb.tobytes())
    H.run_jobs(core_jar, [["preprocess", tmp_path / "c.json", tmp_path / "img.raw", 16, 16,
                           tmp_path / "o.bin"]], tmp_path)
    got = np.frombuffer((tmp_path / "o.bin").read_bytes(), dtype=np.int8).reshape(16, 16, 3)
    expected = preprocess_array(rgb, c)                  # same size: the resize is the identity
    assert np.array_equal(got, expected)
    flat_v, flat_q = rgb.ravel().astype(int), got.ravel().astype(int)
    for v, q in ((1, 60), (3, 62), (5, 62), (7, 64), (134, 127), (255, 127)):
        assert set(flat_q[flat_v == v]) == {q}, (v, set(flat_q[flat_v == v]))


# ------------------------------------------------------------------------------------ top-k
def _topk_vectors():
    rng = np.random.default_rng(7)
    yield "float_random", "float32", rng.standard_normal(1001).astype(np.float32), None
    yield "float_ties", "float32", np.array([0.1, 0.5, 0.5, -0.0, 0.0, 0.5, 0.2], np.float32), None
    yield "float_few", "float32", np.array([0.25, 0.75], np.float32), None   # k > classes
    q8 = Quantization(0.00390625, -128)
    yield "int8_ties", "int8", np.array([-128, 5, 120, 120, -3, 127, 127, 0], np.int8), q8
    yield "int8_random", "int8", rng.integers(-128, 128, 43).astype(np.int8), Quantization(0.0123, 7)
    yield "uint8", "uint8", np.array([0, 255, 17, 255, 200, 3], np.uint8), Quantization(0.00390625, 0)
    yield "uint8_noquant", "uint8", np.array([9, 250, 250, 1], np.uint8), None


@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_matches_python(core_jar, tmp_path, k):
    jobs, cases = [], []
    for name, dtype, v, q in _topk_vectors():
        labels = tuple(f"class_{i}" for i in range(v.size))
        c = dataclasses.replace(Contract(input_size=(8, 8), labels=labels), output_quantization=q)
        (tmp_path / f"{name}.json").write_text(c.to_json(), encoding="utf-8")
        (tmp_path / f"{name}.bin").write_bytes(v.astype(v.dtype.newbyteorder("<")).tobytes())
        out = tmp_path / f"{name}.txt"
        jobs.append(["topk", tmp_path / f"{name}.json", tmp_path / f"{name}.bin", dtype, k, out])
        cases.append((name, v, q, labels, out))
    H.run_jobs(core_jar, jobs, tmp_path)
    for name, v, q, labels, out in cases:
        expected = topk(dequantize(v, q), k)
        got = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
        assert [int(i) for i, _, _ in got] == [i for i, _ in expected], name
        exp_bits = [f"{np.float32(s).view(np.uint32):08x}" for _, s in expected]
        assert [b for _, b, _ in got] == exp_bits, name
        assert [lab for *_, lab in got] == [labels[i] for i, _ in expected], name
    # the tie rule is really exercised: equal scores come out lowest index first
    assert topk(np.array([0.1, 0.5, 0.5, -0.0, 0.0, 0.5, 0.2], np.float32), 3)[0][0] == 1


# ------------------------------------------------------------------------------------ contract.json
def _contract_cases():
    base = Contract(input_size=(160, 120), labels=("leaf \"healthy\"", "café", "rost: blight", "日本"),
                    model={"arch": "mobilenet_v2", "alpha": 1.0, "recipe": "crop"},
                    mean=(127.5, 127.0, 1e-3), std=(127.5, 2.5e-3, 3.0))
    yield "full", base.to_dict(), None
    yield "int8", base.with_quantization("int8", Quantization(0.007843137718737125, -1),
                                         Quantization(0.00390625, -128)).to_dict(), None
    d = base.to_dict()
    for k in ("color_order", "layout", "resize", "mean", "std", "input_dtype", "input_quantization",
              "output_quantization", "model"):
        d.pop(k)
    yield "defaults", d, None
    yield "bad_schema", {**base.to_dict(), "schema": "edgecnn.core.contract/9"}, "schema"
    yield "unknown_field", {**base.to_dict(), "gamma": 2.2}, "unknown field(s) gamma"
    yield "int8_without_q", {**base.to_dict(), "input_dtype": "int8"}, "needs input_quantization"
    yield "bgr", {**base.to_dict(), "color_order": "BGR"}, "color_order must be RGB"
    yield "nchw", {**base.to_dict(), "layout": "NCHW"}, "layout must be NHWC"
    yield "nearest", {**base.to_dict(), "resize": "nearest"}, "resize must be one of"
    yield "float16", {**base.to_dict(), "input_dtype": "float16"}, "input_dtype must be one of"
    yield "tiny", {**base.to_dict(), "input_size": [4, 4]}, "of 8 to 4096 px"
    yield "one_label", {**base.to_dict(), "labels": ["x"]}, "needs 2 to 10000 labels"
    yield "dup_labels", {**base.to_dict(), "labels": ["x", "x"]}, "not unique"
    yield "zero_std", {**base.to_dict(), "std": [1.0, 0.0, 1.0]}, "std must be finite numbers from 0.001"
    yield "huge_mean", {**base.to_dict(), "mean": [1e30, 0.0, 0.0]}, "mean must be finite numbers within"
    yield "huge", {**base.to_dict(), "input_size": [100000, 8]}, "of 8 to 4096 px"
    yield "label_path", {**base.to_dict(), "labels": ["../../x", "b"]}, "contains a path separator"
    yield "label_backslash", {**base.to_dict(), "labels": ["a\\b", "b"]}, "contains a path separator"
    yield "label_ctrl", {**base.to_dict(), "labels": ["a\nb", "b"]}, "contains a control character"
    yield "label_space", {**base.to_dict(), "labels": [" a", "b"]}, "leading/trailing spaces"
    yield "recipe_int", {**base.to_dict(), "model": {"recipe": 5}}, "model.recipe must be a string"
    yield "neg_scale", {**base.to_dict(), "input_dtype": "uint8",
                        "input_quantization": {"scale": -1.0, "zero_point": 0}}, "scale must be a positive"


def test_contract_json_parsed_like_python(core_jar, tmp_path):
    jobs, cases = [], []
    for name, d, err in _contract_cases():
        src = tmp_path / f"{name}.json"
        src.write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
        out = tmp_path / f"{name}.out.json"
        jobs.append(["contract", src, out])
        cases.append((name, src, err, out))
    (tmp_path / "broken.json").write_text('{"schema": "edgecnn.core.contract/1", "labels": [', encoding="utf-8")
    jobs.append(["contract", tmp_path / "broken.json", tmp_path / "broken.out.json"])
    H.run_jobs(core_jar, jobs, tmp_path)

    for name, src, err, out in cases:
        got = json.loads(out.read_text(encoding="utf-8"))
        if err is not None:
            with pytest.raises(Exception, match=None) as py_err:
                Contract.from_json(src.read_text(encoding="utf-8"), source=src.name)
            assert "error" in got, f"{name}: Kotlin accepted a contract Python refuses ({py_err.value})"
            assert err in got["error"] and err in str(py_err.value), (name, got["error"], str(py_err.value))
            assert "\n" not in got["error"]
            continue
        c = Contract.from_json(src.read_text(encoding="utf-8"))
        assert "error" not in got, (name, got)
        assert got["input_size"] == list(c.input_size)
        assert got["labels"] == list(c.labels)
        assert (got["color_order"], got["layout"], got["resize"]) == (c.color_order, c.layout, c.resize)
        assert got["mean"] == list(c.mean) and got["std"] == list(c.std)
        f32 = lambda xs: [f"{np.float32(x).view(np.uint32):08x}" for x in xs]  # noqa: E731
        assert got["mean_f32"] == f32(c.mean) and got["std_f32"] == f32(c.std)
        assert got["input_dtype"] == c.input_dtype
        for key, q in (("input_quantization", c.input_quantization), ("output_quantization", c.output_quantization)):
            if q is None:
                assert got[key] is None
            else:
                assert (got[key]["scale"], got[key]["zero_point"]) == (q.scale, q.zero_point)
                assert got[key]["scale_f32"] == f32([q.scale])[0]
        assert got["model_keys"] == list(c.model)
    broken = json.loads((tmp_path / "broken.out.json").read_text(encoding="utf-8"))
    assert broken["error"].startswith("broken.json: not valid JSON")


def test_the_app_reads_the_contract_the_model_carries_like_python(core_jar, tmp_path):
    """The app takes its contract and labels from the model's standard associated files
    (core/ModelFiles.kt): the same contract as Python's read_contract; a bare flatbuffer and labels
    that disagree with the contract are refused with one line."""
    ok, why = H.tensorflow_available()
    if not ok:
        pytest.skip(why)
    from edgecnn.core.artifact import read_contract
    from edgecnn.core.metadata import strip_archive
    good, bare, mismatched = tmp_path / "good.tflite", tmp_path / "bare.tflite", tmp_path / "mismatched.tflite"
    good.write_bytes(H.tiny_int8_tflite())
    bare.write_bytes(H.tiny_int8_tflite(False))
    with zipfile.ZipFile(good) as z:
        contract_json = z.read("contract.json")
    buf = io.BytesIO(strip_archive(good.read_bytes()))
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr("contract.json", contract_json)
        z.writestr("labels.txt", "healthy\nrust\n")
    mismatched.write_bytes(buf.getvalue())
    jobs = [["embedded", m, tmp_path / f"{m.stem}.out.json"] for m in (good, bare, mismatched)]
    jobs.append(["contract", tmp_path / "c.json", tmp_path / "c.out.json"])
    (tmp_path / "c.json").write_bytes(contract_json)
    H.run_jobs(core_jar, jobs, tmp_path)

    got = json.loads((tmp_path / "good.out.json").read_text(encoding="utf-8"))
    assert got == json.loads((tmp_path / "c.out.json").read_text(encoding="utf-8"))
    c = read_contract(good)
    assert got["labels"] == list(c.labels) and got["input_dtype"] == c.input_dtype == "int8"
    assert (got["input_quantization"]["scale"], got["input_quantization"]["zero_point"]) == \
        (c.input_quantization.scale, c.input_quantization.zero_point)
    assert json.loads((tmp_path / "bare.out.json").read_text())["error"] == \
        "bare.tflite carries no contract.json: export it with 'edgecnn export'"
    assert json.loads((tmp_path / "mismatched.out.json").read_text())["error"] == \
        "mismatched.tflite: labels.txt (2 labels) does not match contract.json (3 labels)"


# ------------------------------------------------------------------------------------ camera frames
def test_frame_conversion_and_rotation(core_jar, tmp_path):
    """RGBA camera planes with row padding become the RGB image; rotation turns it clockwise."""
    rng = np.random.default_rng(3)
    h, w, row_stride = 5, 7, 7 * 4 + 12
    rgba = rng.integers(0, 256, (h, row_stride), dtype=np.uint8)
    (tmp_path / "rgba.raw").write_bytes(rgba.tobytes()[: row_stride * (h - 1) + w * 4])  # short last row
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    (tmp_path / "rgb.raw").write_bytes(rgb.tobytes())
    jobs = [["rgba", tmp_path / "rgba.raw", w, h, row_stride, 4, tmp_path / "rgba_out.raw"]]
    jobs += [["rotate", tmp_path / "rgb.raw", w, h, d, tmp_path / f"rot{d}.raw"] for d in (0, 90, 180, 270)]
    H.run_jobs(core_jar, jobs, tmp_path)

    expected = H.frame_rgb((tmp_path / "rgba.raw").read_bytes(), w, h, row_stride, 4)
    got = np.frombuffer((tmp_path / "rgba_out.raw").read_bytes(), np.uint8).reshape(h, w, 3)
    assert np.array_equal(got, expected)
    for d in (0, 90, 180, 270):
        exp = H.rotated_clockwise(rgb, d)
        got = np.frombuffer((tmp_path / f"rot{d}.raw").read_bytes(), np.uint8).reshape(exp.shape)
        assert np.array_equal(got, exp), d


# ------------------------------------------------------------------------------------ a real model
def test_kotlin_matches_python_on_a_real_int8_model(core_jar, tmp_path):
    """A real INT8 model and the contract it carries: Kotlin feeds the same int8 tensor as Python,
    the model's raw int8 outputs (through the agent's LiteRT runner) get the same top-3 in Kotlin
    as in Python (edgecnn.core.contract.topk over the runner's dequantized probabilities)."""
    ok, why = H.tensorflow_available()
    if not ok:
        pytest.skip(why)
    images = golden_images()
    if not images:
        pytest.skip(f"shared datasets not found under {shared_data()} (set EDGECNN_SHARED_DATA)")
    from edgecnn.core.artifact import read_contract
    from edgecnn.agent.runtimes.base import reconcile
    from edgecnn.agent.runtimes.litert import LiteRTRunner

    model = tmp_path / "model_int8.tflite"
    model.write_bytes(H.tiny_int8_tflite())
    jobs, outs = [], []
    with LiteRTRunner(model) as r:
        c = reconcile(r, read_contract(model), model.name)       # what the agent applies
        (tmp_path / "c.json").write_text(c.to_json(), encoding="utf-8")
        for n, p in enumerate(images):
            rgb = load_image(p)
            (tmp_path / f"{n}.raw").write_bytes(rgb.tobytes())
            jobs.append(["preprocess", tmp_path / "c.json", tmp_path / f"{n}.raw", rgb.shape[1],
                         rgb.shape[0], tmp_path / f"{n}.in"])
            x = preprocess_array(rgb, c)
            raw = r.infer(x[None])[0]
            assert raw.dtype == np.int8
            probs = r.probabilities(x[None])[0]
            (tmp_path / f"{n}.scores").write_bytes(raw.tobytes())
            jobs.append(["topk", tmp_path / "c.json", tmp_path / f"{n}.scores", "int8", 3, tmp_path / f"{n}.top"])
            outs.append((n, x, probs))
    H.run_jobs(core_jar, jobs, tmp_path)
    for n, x, probs in outs:
        kin = np.frombuffer((tmp_path / f"{n}.in").read_bytes(), np.int8).reshape(x.shape)
        assert np.array_equal(kin, x)
        got = [line.split("\t") for line in (tmp_path / f"{n}.top").read_text().splitlines()]
        expected = topk(probs, 3)
        assert [int(i) for i, *_ in got] == [i for i, _ in expected]
        assert [b for _, b, _ in got] == [f"{np.float32(s).view(np.uint32):08x}" for _, s in expected]


# ------------------------------------------------------------------------------------ the APK
@pytest.fixture(scope="module")
def resources_apk(tmp_path_factory):
    """The app (a copy, with the tiny INT8 model bundled by edgecnn.bundle) as a signed APK."""
    tools, why = H.android_build_tools()
    if tools is None:
        pytest.skip(why)
    ok, why = H.tensorflow_available()
    if not ok:
        pytest.skip(why)
    import shutil

    from edgecnn.bundle import bundle
    root = tmp_path_factory.mktemp("apk")
    app = root / "android_demo"
    shutil.copytree(H.ANDROID / "app", app / "app",
                    ignore=shutil.ignore_patterns("build", "assets"))
    model = root / "export" / "model_int8.tflite"
    model.parent.mkdir()
    model.write_bytes(H.tiny_int8_tflite())
    info = bundle(model, app, log=None)
    sys.path.insert(0, str(H.ANDROID / "tools"))
    import resources_apk as R
    built = R.build(app, root / "out")
    return {"built": built, "app": app, "assets": Path(info["assets_dir"]), "R": R}


def test_apk_is_signed_verified_and_aligned(resources_apk):
    b = resources_apk["built"]
    assert b["apk"].is_file()
    assert "Verifies" in b["verify"]
    assert "Verified using v2 scheme (APK Signature Scheme v2): true" in b["verify"]
    assert "CN=edgecnn throwaway test key" in b["verify"]
    r = subprocess.run(["zipalign", "-c", "4", str(b["apk"])], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_apk_carries_the_bundled_assets_uncompressed(resources_apk):
    apk, assets = resources_apk["built"]["apk"], resources_apk["assets"]
    with zipfile.ZipFile(apk) as z:
        names = set(z.namelist())
        assert not {"assets/labels.txt", "assets/contract.json"} & names     # the model carries both
        for name in ("model.tflite",):
            assert z.read(f"assets/{name}") == (assets / name).read_bytes(), name
        info = z.getinfo("assets/model.tflite")
        assert info.compress_type == zipfile.ZIP_STORED            # memory-mappable
        with open(apk, "rb") as f:                                  # data offset 4-byte aligned
            f.seek(info.header_offset + 26)
            n, m = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        assert (info.header_offset + 30 + n + m) % 4 == 0
        assert {"AndroidManifest.xml", "resources.arsc", "res/layout/activity_main.xml"} <= names
    # the contract the bundled model carries inside the APK is parseable by Python
    with zipfile.ZipFile(apk) as z:
        with zipfile.ZipFile(io.BytesIO(z.read("assets/model.tflite"))) as model:
            c = Contract.from_json(model.read("contract.json"))
    assert c.input_dtype == "int8" and c.input_size == (32, 32)


def test_apk_manifest_is_offline_camera_only_and_launchable(resources_apk):
    b = resources_apk["built"]
    badging, cfg = b["badging"], b["config"]
    assert f"package: name='{cfg['namespace']}' versionCode='{cfg['version_code']}'" in badging
    assert f"sdkVersion:'{cfg['min_sdk']}'" in badging and f"targetSdkVersion:'{cfg['target_sdk']}'" in badging
    assert "launchable-activity: name='dev.edgecnn.demo.MainActivity'" in badging
    assert "application-label:'edgecnn demo'" in badging
    assert "uses-feature: name='android.hardware.camera.any'" in badging
    perms = [l for l in badging.splitlines() if l.startswith("uses-permission:")]
    assert perms == ["uses-permission: name='android.permission.CAMERA'"], perms
    # the source manifest forbids network access; the merged one has no trace of tools: markup
    src = (H.ANDROID / "app" / "src" / "main" / "AndroidManifest.xml").read_text(encoding="utf-8")
    assert 'android:name="android.permission.INTERNET"\n        tools:node="remove"' in src
    assert "INTERNET" not in b["manifest_xmltree"] and "schemas.android.com/tools" not in b["manifest_xmltree"]


def test_kotlin_uses_only_resources_that_exist(resources_apk):
    """Every R.<type>.<name> the Android layer uses is in the R.java aapt2 generated."""
    r_java = resources_apk["built"]["r_java"].read_text(encoding="utf-8")
    defined = set()
    for block in re.finditer(r"public static final class (\w+) \{([^{}]*)\}", r_java):
        defined |= {f"{block.group(1)}.{n}" for n in re.findall(r"public static final int (\w+)=", block.group(2))}
    used = set()
    for kt in (H.ANDROID / "app" / "src" / "main" / "java").rglob("*.kt"):
        used |= set(re.findall(r"\bR\.(\w+\.\w+)", kt.read_text(encoding="utf-8")))
    assert used, "no R references found"
    assert used <= defined, f"missing resources: {sorted(used - defined)}"


def test_broken_resource_xml_is_rejected(resources_apk, tmp_path):
    """The check is real: aapt2 refuses a layout that is not well-formed, and a bad attribute."""
    import shutil
    R = resources_apk["R"]
    for name, text, needle in (
        ("not_xml", "<LinearLayout><TextView></LinearLayout>", "activity_main"),
        ("bad_attr", '<TextView xmlns:android="http://schemas.android.com/apk/res/android" '
                     'android:layout_width="match_parent" android:layout_height="wrap_content" '
                     'android:textSize="@dimen/does_not_exist"/>', "does_not_exist"),
    ):
        app = tmp_path / name / "android_demo"
        shutil.copytree(resources_apk["app"] / "app", app / "app")
        (app / "app" / "src" / "main" / "res" / "layout" / "activity_main.xml").write_text(text, encoding="utf-8")
        with pytest.raises(R.BuildError, match=needle):
            R.build(app, tmp_path / name / "out")
