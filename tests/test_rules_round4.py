"""Rules pinned on exact values, fast: the baseline's refusals and its turn in the log, the reference's
record in the bench document, a message's JSON errors naming what was read, benchmark_model output with a
zero average, the host agent's environment, the unknown-host-key line of OpenSSH, the INT8 budget's line
when unlabeled photos would decide it, ONNX Runtime's class scores in batches, and the run folder's export
report and marker, the INT8 route's margin error on the float model's top two classes, the board's engine
cache keyed by the ONNX's bytes, the default agent deadline, and a repeated device flag."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgecnn import bench as B  # noqa: E402
from edgecnn import results  # noqa: E402
from edgecnn import rundir as RD  # noqa: E402
from edgecnn.core.contract import Contract, Provenance  # noqa: E402
from edgecnn.core.errors import InputError  # noqa: E402
from edgecnn.core.io import sha256_file  # noqa: E402
from edgecnn.core.protocol import AgentRequest, AgentResult, ProtocolError, Tensor  # noqa: E402
from edgecnn.devices.adb import parse_benchmark_output  # noqa: E402
from edgecnn.devices.base import Capabilities  # noqa: E402
from edgecnn.devices.host import agent_environment  # noqa: E402
from edgecnn.devices.ssh import ssh_error  # noqa: E402
from edgecnn.export.budget import decision  # noqa: E402
from edgecnn.results import ExportReport, Judged, ReferenceRecord  # noqa: E402
from edgecnn.rundir import Budgets  # noqa: E402

PROV = Provenance("1" * 64, "2" * 64)


def _result(name: str = "m.tflite", provenance: Provenance | None = PROV) -> AgentResult:
    c = Contract(input_size=(8, 8), labels=("a", "b"), provenance=provenance)
    return AgentResult(artifact=name, format="tflite", size_mb=2.0, runtime="litert", runtime_version="1",
                       platform={}, tensorflow_imported=False, threads=2, input=Tensor("in", (1, 8, 8, 3), "int8"),
                       contract=c, latency_ms=None, evaluation=None, peak_rss_mb=50.0)


# ------------------------------------------------------------------------------------ the baseline
def test_a_slowdown_budget_without_a_baseline_is_refused_naming_both_flags(tmp_path):
    with pytest.raises(InputError) as e:
        B._check_baseline(B.BenchOptions(target=tmp_path, max_slowdown_pct=10.0))
    assert str(e.value) == "--max-slowdown needs --baseline (the model to compare against)"
    assert B._check_baseline(B.BenchOptions(target=tmp_path)) is None          # neither: nothing to check


def test_a_baseline_must_be_a_benchable_model_file(tmp_path):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(InputError) as e:
        B._check_baseline(B.BenchOptions(target=tmp_path, baseline=missing))
    assert str(e.value) == f"--baseline {missing}: no such model file"
    keras = tmp_path / "m.keras"
    keras.write_bytes(b"x")
    with pytest.raises(InputError) as e:
        B._check_baseline(B.BenchOptions(target=tmp_path, baseline=keras, max_slowdown_pct=5.0))
    assert str(e.value) == "--baseline m.keras: not a benchable model (expected .tflite, .onnx, .engine, .plan)"
    ok = tmp_path / "b.onnx"
    ok.write_bytes(b"x")
    assert B._check_baseline(B.BenchOptions(target=tmp_path, baseline=ok, max_slowdown_pct=5.0)) is None


class _Device:
    """A device as bench drives it (name, capabilities, run): what it was asked is kept."""

    name = "fake"
    capabilities = Capabilities(formats=("tflite",), accuracy=False, baseline=True)

    def __init__(self):
        self.asked: list[AgentRequest] = []

    def run(self, request: AgentRequest) -> AgentResult:
        self.asked.append(request)
        return _result(Path(request.model).name)


def _plan(*arts: Path) -> B.Plan:
    return B.Plan(list(arts), None, Budgets(size_mb=20.0, max_drop_pp=None, max_p90_ms=None, source="t"), None, [])


@pytest.mark.parametrize("with_baseline", [True, False])
def test_the_log_says_when_each_artifact_is_timed_in_turns_with_the_baseline(tmp_path, with_baseline):
    arts = [tmp_path / "a.tflite", tmp_path / "b.tflite"]
    base = tmp_path / "base.tflite" if with_baseline else None
    dev, said = _Device(), []
    out = B._run_all(B.BenchOptions(target=tmp_path, baseline=base, repeat=3), _plan(*arts), dev, said.append)
    turns = " in turns with base.tflite" if with_baseline else ""
    assert said == [f"bench a.tflite on fake{turns}...", f"bench b.tflite on fake{turns}..."]  # untimed: no repeats
    assert [Path(r.model).name for r in dev.asked] == ["a.tflite", "b.tflite"]
    assert [r.baseline for r in dev.asked] == [str(base) if base else None] * 2
    assert [r.data for r in dev.asked] == [None, None] and list(out) == arts


# ------------------------------------------------------------------------------------ the reference's record
def test_the_documents_reference_names_the_file_its_digest_and_provenance(tmp_path):
    ref = tmp_path / "model.keras"
    ref.write_bytes(b"float model")
    assert B._reference_doc(None, None) is None                                   # no reference in the plan
    assert B._reference_doc(ref, _result()) == ReferenceRecord(artifact="model.keras", sha256=sha256_file(ref),
                                                               provenance=PROV.to_dict())
    assert B._reference_doc(ref, _result(provenance=None)) == ReferenceRecord(
        artifact="model.keras", sha256=sha256_file(ref), provenance=None)


# ------------------------------------------------------------------------------------ protocol messages
@pytest.mark.parametrize("cls", [AgentRequest, AgentResult])
def test_a_message_that_is_not_json_is_refused_naming_its_source(cls):
    with pytest.raises(ProtocolError) as e:
        cls.from_json("{not json")
    assert str(e.value).startswith(f"{cls.__name__}: not valid JSON (")
    with pytest.raises(ProtocolError) as e:
        cls.from_json(b"\xff\xfe", "the board's answer")
    assert str(e.value).startswith("the board's answer: not valid JSON (")
    with pytest.raises(ProtocolError) as e:
        cls.from_json("[1, 2]", "reply")                                      # JSON, not an object
    assert str(e.value).startswith("reply")


# ------------------------------------------------------------------------------------ benchmark_model output
def test_a_zero_average_gives_no_throughput_rather_than_a_division_by_zero():
    text = "INFO: count=5 first=0 curr=0 min=0 max=0 avg=0 std=0\n"
    r = parse_benchmark_output(text)
    assert r["latency_ms"] == {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0, "n": 5, "p50": 0.0, "p90": 0.0,
                               "p99": 0.0}
    assert r["throughput_ips"] is None
    assert parse_benchmark_output(text.replace("avg=0", "avg=2500"))["throughput_ips"] == 400.0


# ------------------------------------------------------------------------------------ the host agent's environment
def test_the_host_agent_keeps_locale_path_home_and_thread_settings_only():
    caller = {"PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "HOME": "/home/u", "OMP_NUM_THREADS": "2",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "3", "PYTHONPATH": "/evil", "LD_PRELOAD": "x.so",
              "NPY_DISABLE_CPU_FEATURES": "AVX2", "home": "/lower", "XOMP_": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}
    assert agent_environment(caller) == {
        "PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "HOME": "/home/u", "OMP_NUM_THREADS": "2",
        "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "3", "TF_CPP_MIN_LOG_LEVEL": "2"}
    assert agent_environment({}) == {"TF_CPP_MIN_LOG_LEVEL": "2"}


# ------------------------------------------------------------------------------------ OpenSSH's lines
@pytest.mark.parametrize("stderr", [
    "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\n"
    "Host key verification failed.\r\n",
    "No ECDSA host key is known for board.local and you have requested strict checking.\n",
])
def test_an_unknown_host_key_of_any_type_is_named_as_such(stderr):
    assert ssh_error(stderr, "b:22", accept_new=False) == (
        "the host key of b:22 is not known: connect once with ssh to check and record it or pass "
        "accept_new_host_key (--accept-new-host-key) to trust it on first use")
    assert ssh_error(stderr, "b:22", accept_new=True) == (
        "the host key of b:22 is not known: connect once with ssh to check and record it")


# ------------------------------------------------------------------------------------ the INT8 budget's line
def _undecided(**kw) -> Judged:
    return Judged.of(1.0, 0.8, "INCONCLUSIVE", interval=(-0.4, 2.1), **kw)


@pytest.mark.parametrize("kw, tail", [
    ({"images_to_decide": 900, "unlabeled_to_decide": 1200},
     " (about 900 labelled images or 1200 unlabeled photos (--unlabeled) would decide it at the observed rates)"),
    ({"unlabeled_to_decide": 1200}, " (1200 unlabeled photos (--unlabeled) would decide it at the observed rates)"),
    ({"images_to_decide": 900}, " (about 900 labelled images would decide it at the observed rates)"),
    ({}, ""),
])
def test_an_undecided_int8_budget_says_what_would_decide_it(kw, tail):
    assert decision(_undecided(**kw), 1.0, 120) == (
        "drop +0.80 pp, 95% interval -0.40 to +2.10 pp on 120 images, budget 1.0 pp: INCONCLUSIVE, no ops kept "
        "in float for a drop these images cannot resolve" + tail)


# ------------------------------------------------------------------------------------ ONNX Runtime's scores
def test_ort_scores_runs_every_batch_on_the_cpu_in_order():
    from onnx import TensorProto, helper, numpy_helper

    from edgecnn.export.route import ort_scores
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    x = np.random.default_rng(0).normal(size=(5, 4))                        # float64: cast to the model's float32
    got = ort_scores(model, x, batch=2)                                     # batches of 2, 2 and 1
    assert got.shape == (5, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, x.astype(np.float32) @ w, rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------ the run folder
def _report(run: str) -> ExportReport:
    from edgecnn.results import CalibrationUsed, KerasReference
    return ExportReport(run=run, recipe="products", provenance={}, eval_data="d", eval_images=120, unlabeled=None,
                        skipped=[], calibration=CalibrationUsed(source=None, list=None, images=0),
                        reference=KerasReference(artifact="model.keras", format="keras", accuracy=0.9, sha256="0" * 64),
                        artifacts=[], budget=None, tensorrt=None, export_s=1.0)


def test_a_runs_export_report_is_read_typed_and_absent_before_any_export(tmp_path):
    assert RD.read_export_report(tmp_path) is None
    path = tmp_path / RD.EXPORT_DIR / RD.EXPORT_REPORT
    path.parent.mkdir()
    results.write(path, _report(str(tmp_path)))
    assert RD.read_export_report(tmp_path) == _report(str(tmp_path))
    path.write_text(json.dumps({"schema": "edgecnn.export/1"}))
    with pytest.raises(InputError, match=r"not a result of this version \(schema edgecnn.export/2, found "
                                         r"edgecnn.export/1\)"):
        RD.read_export_report(tmp_path)
    path.write_text("[]")
    with pytest.raises(InputError, match=r"schema edgecnn.export/2, found None"):
        RD.read_export_report(tmp_path)


def test_the_run_marker_is_indented_json_that_reads_back(tmp_path):
    RD.write_marker(tmp_path, "train")
    text = (tmp_path / RD.MARKER_FILE).read_text()
    assert text == json.dumps({"schema": RD.MARKER_SCHEMA, "command": "train"}, indent=2) + "\n"
    assert RD.RunMarker.read(tmp_path) == RD.RunMarker("train")


# ------------------------------------------------------------------------------------ the INT8 route's measure
def test_the_margin_error_is_taken_on_the_float_models_top_two_classes():
    """The float model ranks classes 0 then 1 (margin 0.5); the INT8 model's own top two are 2 and 0. On the
    float model's classes the margin moves 0.5 -> 0.25: an error of 0.25 (the INT8 model's top two would
    give |(0.0 - 0.75) - (0.75 - 0.25)| = 1.25)."""
    from edgecnn.export.route import Candidate, HeldOut, measure
    held = HeldOut(np.zeros((1, 2, 2, 3), np.float32), np.array([[0.75, 0.25, 0.0]]), "1 image")
    assert measure("x", np.array([[0.25, 0.0, 0.75]]), held) == Candidate("x", 1, 1, 0.25)


# ------------------------------------------------------------------------------------ the board's engine cache
def test_the_boards_engine_cache_is_keyed_by_the_onnx_bytes(tmp_path):
    import hashlib

    from edgecnn.devices.ssh import engine_build_request
    a, b, c = (tmp_path / x / "model_int8_qdq.onnx" for x in "abc")
    for f, content in ((a, b"onnx graph A"), (b, b"onnx graph B"), (c, b"onnx graph A")):
        f.parent.mkdir()
        f.write_bytes(content)
    sha_a, sha_b = (hashlib.sha256(x).hexdigest()[:16] for x in (b"onnx graph A", b"onnx graph B"))
    req = engine_build_request(a, "/w/model/model_int8_qdq.onnx", "/home/u", "8.6.2")
    assert (req.onnx, req.engine, req.timing_cache, req.fp16, req.workspace_mb) == (
        "/w/model/model_int8_qdq.onnx", f"/home/u/.cache/edgecnn/engines/model_int8_qdq-{sha_a}.engine",
        "/home/u/.cache/edgecnn/timing-trt8.6.2.cache", True, 1024)
    assert engine_build_request(b, "x", "/home/u", "8.6.2").engine.endswith(f"-{sha_b}.engine")  # other bytes
    assert engine_build_request(c, "x", "/home/u", "10.3").engine == req.engine                  # same bytes: reused


# ------------------------------------------------------------------------------------ defaults and flags
def test_one_agent_runs_default_deadline_is_1800_seconds_everywhere():
    from edgecnn.devices.base import DEFAULT_TIMEOUT_S, DeviceOptions
    from edgecnn.devices.ssh import JetsonOptions
    assert DEFAULT_TIMEOUT_S == 1800.0
    assert DeviceOptions().timeout == JetsonOptions().timeout == B.BenchOptions(target=Path(".")).timeout == 1800.0
    spec = next(s for s in DeviceOptions.specs() if s.name == "timeout")
    assert (spec.default, spec.range, spec.unit) == (1800.0, (1.0, 86400.0), "seconds")


def test_a_repeated_flag_fills_only_the_device_specs_that_leave_it_unset():
    from edgecnn import fleet as F
    got = F.from_command_line(("jetson:host=u@a", "jetson"), {"host": ("u@b", "u@c"), "port": 2222})
    assert [(d.name, d.options.given()) for d in got] == [
        ("jetson u@a", {"host": "u@a", "port": 2222}),
        ("jetson u@b", {"host": "u@b", "port": 2222}),
        ("jetson u@c", {"host": "u@c", "port": 2222})]
    one = F.from_command_line(("jetson:host=u@a",), {"host": ("u@b", "u@c")})
    assert [(d.name, d.options.given()) for d in one] == [("jetson u@a", {"host": "u@a"})]
    assert len(F.Fleet(got).devices) == 3                                    # unique names: accepted
