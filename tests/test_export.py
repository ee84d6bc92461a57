"""`edgecnn export`: artifacts load and run, contracts travel, Q/DQ is symmetric, accuracy is real."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgecnn.core import contract as C
from edgecnn.core.artifact import read_contract
from edgecnn.cli import main
from edgecnn.agent.runtimes import runner_for


def _report(run):
    return json.loads((run / "export" / "export_report.json").read_text())


def test_every_artifact_loads_runs_and_matches_float(exported_run):
    rep = _report(exported_run)
    names = {a["artifact"] for a in rep["artifacts"]}
    assert names == {"model_fp32.tflite", "model_int8.tflite", "model_fp32.onnx", "model_int8_qdq.onnx"}
    for a in rep["artifacts"]:
        path = exported_run / "export" / a["artifact"]
        assert path.stat().st_size / 1e6 == pytest.approx(a["size_mb"], abs=1e-3)
        c = read_contract(path)
        with runner_for(path) as r:
            img = np.zeros((1, 96, 96, 3), np.float32) if c.input_dtype == "float32" else \
                np.zeros((1, 96, 96, 3), c.input_dtype)
            out = r.probabilities(img)
            assert out.shape == (1, 3) and np.isfinite(out).all()
        assert a["top1_agreement"] >= 0.9 and abs(a["accuracy_drop_pp"]) <= 10
        assert len(a["flips"]) == round((1 - a["top1_agreement"]) * a["n"])
    assert rep["budget"]["max_drop_pp"] == 1.0  # from the products recipe


def test_int8_tflite_is_integer_with_recorded_quantization(exported_run):
    path = exported_run / "export" / "model_int8.tflite"
    c = read_contract(path)
    with runner_for(path) as r:
        assert r.input.dtype == "uint8" and r.output.dtype == "uint8"      # the default I/O type
        assert c.input_dtype == "uint8" and c.input_quantization == r.input.quantization
        assert c.output_quantization == r.output.quantization
    assert c.labels == tuple((exported_run / "labels.txt").read_text().split())


def test_contract_roundtrips_from_tflite_and_onnx(exported_run):
    base = C.load(exported_run / "contract.json")
    for name in ("model_fp32.tflite", "model_fp32.onnx", "model_int8_qdq.onnx"):
        c = read_contract(exported_run / "export" / name)
        assert (c.input_size, c.labels, c.mean, c.std, c.input_dtype) == \
            (base.input_size, base.labels, base.mean, base.std, "float32"), name


def test_qdq_onnx_is_symmetric(exported_run):
    import onnx

    from edgecnn.export.onnx import zero_points
    proto = onnx.load(str(exported_run / "export" / "model_int8_qdq.onnx"))
    zps = zero_points(proto)
    assert len(zps) > 50 and not any(zps.values())
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert proto.opset_import[0].version >= 17


def test_fp32_tflite_equals_keras_within_float_noise(exported_run):
    """Float TFLite computes what Keras computes: the same top-1 on every image, scores within 1e-4
    (float32 summation order differs between the two kernels; MobileNetV2 scores are softmax outputs)."""
    rep = _report(exported_run)
    for name in ("model_fp32.tflite", "model_fp32.onnx"):
        a = next(x for x in rep["artifacts"] if x["artifact"] == name)
        assert a["top1_agreement"] == 1.0 and a["accuracy_drop_pp"] == 0 and a["flips"] == [], name
        assert a["max_abs_score_diff"] < 1e-4, (name, a["max_abs_score_diff"])


def test_fp16_and_uint8_io_exports(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, symlinks=True)
    r = CliRunner().invoke(main, ["export", str(run), "--fp16", "--int8", "--int8-input", "uint8"],
                           env={"EDGECNN_CALIBRATION_DIR": str(tmp_path / "lists")})
    assert r.exit_code in (0, 1, 3), r.output
    rep = _report(run)
    fp16 = next(a for a in rep["artifacts"] if a["artifact"] == "model_fp16.tflite")
    assert fp16["top1_agreement"] >= 0.95 and fp16["max_abs_score_diff"] < 0.05
    with runner_for(run / "export" / "model_fp16.tflite") as r16:
        assert r16.input.dtype == "float32"
    c = read_contract(run / "export" / "model_int8.tflite")
    with runner_for(run / "export" / "model_int8.tflite") as r8:
        assert r8.input.dtype == "uint8" and r8.output.dtype == "uint8"
        assert c.input_dtype == "uint8" and c.input_quantization == r8.input.quantization
    int8 = next(a for a in rep["artifacts"] if a["artifact"] == "model_int8.tflite")
    assert int8["top1_agreement"] >= 0.9


def test_a_recorded_calibration_list_is_reused_and_checked(trained_run, tmp_path):
    """The recorded list decides the calibration set: reused as it is; a changed image is refused;
    a list recorded for another dataset is never overwritten; a new list goes to the run, not the package."""
    from edgecnn.export.calibration import read_list
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, symlinks=True)
    lists = tmp_path / "lists"
    env = {"EDGECNN_CALIBRATION_DIR": str(lists)}
    assert CliRunner().invoke(main, ["export", str(run), "--int8"], env=env).exit_code in (0, 1, 3)
    assert not lists.exists()                      # the recorded lists are read, never written
    recorded = run / "export" / "calibration.txt"
    first = recorded.read_text()
    root = Path(json.loads((run / "metrics.json").read_text())["data"]["root"])
    # keep only a few lines, enough for a small --calibration-size: the next export must use exactly those
    header = [ln for ln in first.splitlines() if ln.startswith("#")]
    body = [ln for ln in first.splitlines() if not ln.startswith("#")][-5:]
    recorded.write_text("\n".join(header + body) + "\n")
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--calibration-size", "5"], env=env)
    assert r.exit_code in (0, 1, 3), r.output
    cal = _report(run)["calibration"]
    assert cal["source"].startswith("recorded list") and "reused" in cal["source"] and cal["images"] == 5
    assert [str(p) for p in read_list(recorded, root)] == [str(root / ln.split("\t")[0]) for ln in body]
    # a checksum that no longer matches its image
    path, _sha = body[0].split("\t")
    recorded.write_text("\n".join(header + [f"{path}\t{'0' * 64}"] + body[1:]) + "\n")
    with pytest.raises(Exception, match="checksum|sha256|changed"):
        read_list(recorded, root)
    # the recipe's recorded list of another dataset (its paths are not under this run's data root) is
    # kept as it was; the run records its own
    other = "\n".join(header + ["train/zz_other/x.png\t" + "1" * 64]) + "\n"
    lists.mkdir()
    (lists / "products.txt").write_text(other)
    recorded.unlink()
    r = CliRunner().invoke(main, ["export", str(run), "--int8"], env=env)
    assert r.exit_code in (0, 1, 3), r.output
    assert (lists / "products.txt").read_text() == other
    assert read_list(recorded, root) and "products.txt is for other data; sampling anew" in r.output


def test_calibration_list_is_recorded_with_checksums(exported_run, tmp_path):
    from edgecnn.export.calibration import read_list
    rep = _report(exported_run)
    metrics = json.loads((exported_run / "metrics.json").read_text())
    # fewer than 200 training images: all of the train split (validation hold-out excluded)
    assert rep["calibration"]["images"] == metrics["data"]["train"]["total"]
    paths = read_list(Path(rep["calibration"]["list"]), Path(metrics["data"]["root"]))
    assert len(paths) == rep["calibration"]["images"] and all(p.parts[-3] == "train" for p in paths)


def test_broken_model_shows_a_large_drop(exported_run):
    """Accuracy comes from real inference: a model with a scrambled head is caught."""
    import keras

    from edgecnn.export import EvalSet, evaluate_artifact
    from edgecnn.export.tflite import convert
    from edgecnn.core.artifact import tflite_with_contract
    from edgecnn.core.images import scan_eval_folder
    m = keras.saving.load_model(str(exported_run / "model.keras"))
    c = C.load(exported_run / "contract.json")
    samples, _ = scan_eval_folder(json.loads((exported_run / "metrics.json").read_text())["data"]["root"] + "/test",
                                  c.labels)
    x = C.preprocess_batch([s.path for s in samples], c)
    y = np.array([s.label for s in samples])
    ref = np.asarray(m.predict_on_batch(x))
    head = m.get_layer("predictions")
    w, b = head.get_weights()
    head.set_weights([w[:, ::-1].copy(), b[::-1].copy()])  # classes permuted: still a valid model
    broken = exported_run / "export" / "broken.tflite"
    broken.write_bytes(tflite_with_contract(convert(m, "fp32"), c))
    res = evaluate_artifact(broken, EvalSet(x, y, [str(s.path) for s in samples], "test", []), ref, c.labels)
    assert res.comparison.accuracy_drop_pp >= 40 and res.comparison.top1_agreement <= 0.6
    broken.unlink()


def test_bad_calibration_drives_fallback_and_keeps_artifacts(trained_run, tmp_path):
    """Black calibration images wreck INT8; --max-drop 0 then ranks layers, keeps the most sensitive
    in float step by step, reports them, and exits 1 if the budget still fails, keeping every file."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, symlinks=True)
    calib = tmp_path / "black"
    calib.mkdir()
    for i in range(8):
        Image.new("RGB", (96, 96), (0, 0, 0)).save(calib / f"{i}.png")
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--calibration", str(calib), "--max-drop", "0",
                                  "--fallback-steps", "2"])
    rep = _report(run)
    b = rep["budget"]
    assert b["int8_drop_pp"] > 0
    fb = b["fallback"]
    assert fb and len(fb["ranking"]) > 10 and fb["steps"][0]["float_ops"] == 1
    assert fb["float_ops"] and all("tensor" in op and "op" in op for op in fb["float_ops"])
    # the most sensitive ops are the ones kept in float, in order (a reversed ranking would keep the least)
    scores = [d["rmse_per_step"] for d in fb["ranking"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    assert [op["tensor"] for op in fb["float_ops"]] == [d["tensor"] for d in fb["ranking"][:len(fb["float_ops"])]]
    assert (run / "export" / "model_int8.tflite").is_file()
    assert (run / "export" / "model_int8_mixed.tflite").is_file()
    cost = fb["cost"]
    assert cost["size_mb"]["mixed"] > cost["size_mb"]["int8"] > 0  # float ops carry float weights
    assert cost["latency_p50_ms"]["mixed"] > 0 and cost["latency_p50_ms"]["int8"] > 0
    assert r.exit_code == {"PASS": 0, "FAIL": 1, "INCONCLUSIVE": 3}[b["verdict"]], r.output
    assert "INT8 budget" in r.output and "Traceback" not in r.output
    assert not list((run / "export").glob(".tmp-*"))  # no half-written files left behind


def test_run_without_contract_or_with_truncated_model(trained_run, exported_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, symlinks=True)
    (run / "contract.json").unlink()
    r = CliRunner().invoke(main, ["export", str(run)])
    assert r.exit_code == 2 and "contract" in r.output and "Traceback" not in r.output
    tfl = tmp_path / "cut.tflite"
    data = (exported_run / "export" / "model_int8.tflite").read_bytes()
    tfl.write_bytes(data[: len(data) // 3])
    (tmp_path / "cut.tflite.contract.json").write_text((trained_run / "contract.json").read_text())
    with pytest.raises(Exception, match="not a loadable TFLite model"):
        with runner_for(tfl):
            pass
