"""`edgecnn bench` on the host: real runners, real timings, budgets and exit codes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn.core.protocol import AgentRequest
from edgecnn.agent.run import run as run_agent
from edgecnn.agent.timing import measure_alternating, measure_latency
from edgecnn.cli import main
from edgecnn.agent.runtimes import available_runners, runner_for
from tests.conftest import need_shared


def test_runners_are_discovered_and_run(exported_run):
    names = set(available_runners())
    assert {"litert", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt", "keras", "tensorrt"} <= names
    for f in ("model_fp32.tflite", "model_fp32.onnx", "model_int8_qdq.onnx"):
        with runner_for(exported_run / "export" / f, threads=1) as r:
            assert r.probabilities(np.zeros((2, 96, 96, 3), np.float32)).shape == (2, 3)


def test_gpu_execution_providers_absent_are_clear_errors(exported_run):
    import onnxruntime as ort

    from edgecnn.agent.runtimes.base import RuntimeMissing
    for engine, provider in (("onnxruntime-cuda", "CUDAExecutionProvider"),
                             ("onnxruntime-tensorrt", "TensorrtExecutionProvider")):
        if provider in ort.get_available_providers():
            continue
        with pytest.raises(RuntimeMissing, match=provider):
            with runner_for(exported_run / "export" / "model_fp32.onnx", engine=engine):
                pass


def test_tensorrt_absent_is_a_clear_error(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    p = tmp_path / "m.engine"
    p.write_bytes(b"x")
    with pytest.raises(Exception, match="TensorRT is not installed"):
        with runner_for(p):
            pass


def test_latency_stats_are_ordered_and_a_slowed_runner_is_slower(exported_run):
    path = exported_run / "export" / "model_int8.tflite"
    with runner_for(path, threads=1) as r:
        x = np.zeros((1, 96, 96, 3), r.input.dtype)
        fast = measure_latency(r, x, warmup=3, runs=30, min_seconds=0)
        orig = r.infer_one
        r.infer_one = lambda v: (time.sleep(0.010), orig(v))
        slow = measure_latency(r, x, warmup=1, runs=30, min_seconds=0)
    for s in (fast, slow):
        assert s.min <= s.p50 <= s.p90 <= s.p99 <= s.max and s.n == 30
    # the 10 ms sleep shows up in the timings; the margin allows a noisy fast measurement
    assert slow.p50 >= fast.p50 + 5.0 and slow.min >= 10.0


def test_models_timed_in_turns_keep_their_ratio(exported_run):
    """Two models timed in turns in one process: a 10 ms handicap on B shows in B's times only."""
    path = exported_run / "export" / "model_int8.tflite"
    with runner_for(path, threads=1) as a, runner_for(path, threads=1) as b:
        x = np.zeros((1, 96, 96, 3), a.input.dtype)
        orig = b.infer_one
        b.infer_one = lambda v: (time.sleep(0.010), orig(v))
        la, lb = measure_alternating(a, x, b, x, warmup=1, runs=40, min_seconds=0, block=10, settle=2)
    assert la.n == lb.n == 40
    assert lb.min >= 10.0 and la.p50 / lb.p50 < 0.5   # a ratio, not an absolute time


def test_baseline_ratio_and_slowdown_budget(exported_run, tmp_path):
    """fp32 against an INT8 baseline is slower (budget fails, exit 1); INT8 against fp32 passes."""
    exp = exported_run / "export"
    quick = ["--runs", "60", "--warmup", "5", "--min-seconds", "0.3", "--threads", "1"]
    out = tmp_path / "slow.json"
    r = CliRunner().invoke(main, ["bench", str(exp / "model_fp32.tflite"), "--baseline", str(exp / "model_int8.tflite"),
                                  "--max-slowdown", "10", "--json", str(out), *quick])
    assert r.exit_code == 1, r.output
    rec = json.loads(out.read_text())["devices"][0]["records"][0]
    assert rec["baseline"]["artifact"] == "model_int8.tflite" and rec["vs_baseline"]["p50_ratio"] > 1.15
    assert rec["vs_baseline"]["p50_ratio"] == pytest.approx(rec["latency_ms"]["p50"] / rec["baseline"]["latency_ms"]["p50"])
    assert rec["budgets"]["slowdown_pct"]["pass"] is False and "slowdown_pct" in r.output
    out = tmp_path / "fast.json"
    r = CliRunner().invoke(main, ["bench", str(exp / "model_int8.tflite"), "--baseline", str(exp / "model_fp32.tflite"),
                                  "--max-slowdown", "10", "--repeat", "2", "--json", str(out), *quick])
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())["devices"][0]["records"][0]
    assert rec["vs_baseline"]["p50_ratio"] < 0.8 and len(rec["vs_baseline"]["p50_ratio_per_repeat"]) == 2
    assert rec["latency_ms"]["repeats"] == 2 and rec["budgets"]["slowdown_pct"]["pass"] is True
    assert "timed in turns" in r.output and "median of 2 agent runs" in r.output


def test_baseline_usage_errors(exported_run, tmp_path):
    m = str(exported_run / "export" / "model_int8.tflite")
    for args, msg in ((["--max-slowdown", "5"], "needs --baseline"),
                      (["--baseline", str(tmp_path / "none.tflite")], "no such model file"),
                      (["--baseline", m, "--device", "phone-emulated"], "cannot")):
        r = CliRunner().invoke(main, ["bench", m, *args])
        assert r.exit_code == 2 and msg in r.output, r.output


def test_bench_run_dir_side_by_side_with_accuracy(exported_run, tmp_path):
    data = json.loads((exported_run / "metrics.json").read_text())["data"]["root"] + "/test"
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", str(exported_run), "--data", data, "--runs", "20", "--warmup", "2",
                                  "--min-seconds", "0", "--threads", "1", "--json", str(out),
                                  "--markdown", str(tmp_path / "b.md")])
    doc = json.loads(out.read_text())
    assert r.exit_code == {"PASS": 0, "INCONCLUSIVE": 3}[doc["verdict"]], r.output
    assert len(doc["devices"][0]["records"]) == 4 and doc["reference"]["artifact"] == "model_fp32.tflite"
    for rec in doc["devices"][0]["records"]:
        for key in ("artifact", "format", "precision", "device", "size_mb", "accuracy", "reference_accuracy",
                    "accuracy_drop_pp", "per_class", "flips", "latency_ms", "throughput_ips", "peak_rss_mb",
                    "budgets", "passed"):
            assert key in rec, key
        assert rec["tensorflow_imported"] is False  # latency measured without TensorFlow in the process
        assert rec["latency_ms"]["p50"] <= rec["latency_ms"]["p90"] <= rec["latency_ms"]["p99"]
    fp32 = next(r for r in doc["devices"][0]["records"] if r["artifact"] == "model_fp32.tflite")
    assert fp32["accuracy_drop_pp"] == 0 and fp32["top1_agreement"] == 1.0
    assert "| model_int8.tflite |" in (tmp_path / "b.md").read_text()


def test_budget_failure_exits_1_and_says_which(exported_run, tmp_path):
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["bench", str(exported_run / "export" / "model_int8.tflite"), "--runs", "5",
                                  "--warmup", "1", "--min-seconds", "0", "--budget-mb", "0.5", "--json", str(out)])
    assert r.exit_code == 1 and "size_mb" in r.output
    rec = json.loads(out.read_text())["devices"][0]["records"][0]
    assert rec["budgets"]["size_mb"] == {"limit": 0.5, "value": rec["size_mb"], "pass": False, "verdict": "FAIL"}
    assert rec["passed"] is False


def test_googles_hosted_model_is_read_through_its_standard_metadata():
    """Google's PTQ MobileNetV2 carries standard metadata (uint8 input, ImageNet's 1,001 labels, two
    of them named twice): the agent builds its preprocessing from it, raw pixels in."""
    from edgecnn.core.artifact import FROM_STANDARD_METADATA
    ref = need_shared("weights", "reference", "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    res = run_agent(AgentRequest(model=str(ref), threads=1, warmup=2, runs=5, min_seconds=0.0))
    c = res.contract
    assert res.input.dtype == "uint8" and res.latency_ms.n >= 5
    assert c.model["source"] == FROM_STANDARD_METADATA and c.input_size == (224, 224) and c.num_classes == 1001
    q = c.input_quantization
    assert c.mean == (float(q.zero_point),) * 3 and c.std == (1 / q.scale,) * 3      # the pixel is the input
    assert c.model["labels_renamed"] == 2 and "crane (135)" in c.labels and "crane (518)" in c.labels


def test_bad_inputs_are_clear_errors(exported_run, tmp_path):
    corrupt = tmp_path / "bad.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    r = CliRunner().invoke(main, ["bench", str(corrupt), "--runs", "2"])
    assert r.exit_code == 2 and "not a loadable TFLite model" in r.output
    # a model whose input does not match its contract
    ref = need_shared("weights", "reference", "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    m = tmp_path / "ref.tflite"
    m.write_bytes(ref.read_bytes())
    (tmp_path / "ref.tflite.contract.json").write_text((exported_run / "contract.json").read_text())
    data = tmp_path / "data"
    (data / "00_tshirts").mkdir(parents=True)
    r = CliRunner().invoke(main, ["bench", str(m), "--data", str(data), "--runs", "2"])
    assert r.exit_code == 2 and "224x224" in r.output and "96x96" in r.output
    # an empty data folder
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(main, ["bench", str(exported_run / "export" / "model_int8.tflite"), "--data", str(empty)])
    assert r.exit_code == 2 and "no class subfolders" in r.output
    assert "Traceback" not in r.output


@pytest.fixture(scope="module")
def broken_model(exported_run, tmp_path_factory):
    """The run's model with its head's classes permuted: a valid model that gets most images wrong,
    with the run's provenance (it stands for a bad export of the same model)."""
    import keras

    from edgecnn.core import contract as C
    from edgecnn.core.artifact import tflite_with_contract
    from edgecnn.export.tflite import convert
    m = keras.saving.load_model(str(exported_run / "model.keras"))
    head = m.get_layer("predictions")
    w, b = head.get_weights()
    head.set_weights([np.roll(w, 1, axis=1), np.roll(b, 1)])
    out = tmp_path_factory.mktemp("broken") / "broken_fp32.tflite"
    out.write_bytes(tflite_with_contract(convert(m, "fp32"), C.load(exported_run / "contract.json")))
    return out


def test_accuracy_drop_budget_and_per_class_values(exported_run, broken_model, tmp_path):
    data = json.loads((exported_run / "metrics.json").read_text())["data"]["root"] + "/test"
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["bench", str(broken_model), "--reference", str(exported_run / "export" / "model_fp32.tflite"),
                                  "--data", data, "--max-drop", "1", "--runs", "5", "--min-seconds", "0",
                                  "--json", str(out)])
    assert r.exit_code == 1 and "accuracy_drop_pp" in r.output, r.output
    rec = json.loads(out.read_text())["devices"][0]["records"][0]
    b = rec["budgets"]["accuracy_drop_pp"]
    assert b["verdict"] == "FAIL" and b["limit"] == 1.0 and b["value"] == pytest.approx(rec["accuracy_drop_pp"])
    assert b["interval"][0] > 1.0 and b["interval"][0] <= rec["accuracy_drop_pp"] <= b["interval"][1]
    assert rec["accuracy_drop_pp"] >= 40 and len(rec["flips"]) >= 12
    pc = rec["per_class"]
    n = sum(v["n"] for v in pc.values())
    assert n == rec["images"] == 30
    # per-class values add up to the overall ones, and the worst class is the largest per-class drop
    assert sum(v["accuracy"] * v["n"] for v in pc.values()) / n == pytest.approx(rec["accuracy"])
    assert sum(v["reference_accuracy"] * v["n"] for v in pc.values()) / n == pytest.approx(rec["reference_accuracy"])
    for v in pc.values():
        assert v["drop_pp"] == pytest.approx((v["reference_accuracy"] - v["accuracy"]) * 100)
    worst = max(v["drop_pp"] for v in pc.values())
    assert rec["worst_class"]["drop_pp"] == worst and pc[rec["worst_class"]["label"]]["drop_pp"] == worst
    # each flip names an image whose prediction changed, with both predictions
    assert all(f["reference"] != f["prediction"] for f in rec["flips"])


def test_p90_budget_fails(exported_run, tmp_path):
    out = tmp_path / "b.json"
    r = CliRunner().invoke(main, ["bench", str(exported_run / "export" / "model_int8.tflite"), "--max-p90-ms", "0.0001",
                                  "--runs", "5", "--min-seconds", "0", "--json", str(out)])
    assert r.exit_code == 1 and "p90_ms" in r.output
    b = json.loads(out.read_text())["devices"][0]["records"][0]["budgets"]["p90_ms"]
    assert b["limit"] == 0.0001 and b["pass"] is False and b["value"] > 0.0001
