"""The agent protocol's rules on hand-built messages (no agent runs): every field survives a round trip,
another schema version is refused saying which side is older, a wrong field is named by its path, and
the statistics a message carries combine exactly. Round trips through real devices: tests/test_verdict.py."""

from __future__ import annotations

import dataclasses
import json

import pytest

from edgecnn.core.contract import Contract, Provenance, Quantization
from edgecnn.core.errors import EdgecnnError, InputError
from edgecnn.core.protocol import (AgentFailure, AgentRequest, AgentResult, BaselineTiming, BoardEmulation,
                                   EngineBuildRequest, EngineBuildResult, Evaluation, Latency, Predictions,
                                   ProtocolError, Skipped, Tensor, VsBaseline, read_reply)


def _latency(p50=2.0, **kw) -> Latency:
    return Latency(**{"p50": p50, "p90": p50 + 1, "p99": p50 + 2, "mean": p50 + 0.5, "std": 0.25, "min": p50 - 1,
                      "max": p50 + 3, "n": 10, **kw})


def _full_result() -> AgentResult:
    """A result with every field set to a value other than its default."""
    q = Quantization(0.5, -3)
    contract = Contract(input_size=(8, 8), labels=("a", "b"), provenance=Provenance("1" * 64, "2" * 64))
    return AgentResult(
        artifact="m.tflite", format="tflite", size_mb=1.5, runtime="litert", runtime_version="2.3.0",
        platform={"machine": "x86_64", "cores": 2}, tensorflow_imported=True, threads=3,
        input=Tensor("in", (None, 8, 8, 3), "int8", q), output=Tensor("out", (1, 2), "int8", Quantization(0.25, 7)),
        contract=contract, load_ms=3.5, warmup=4,
        latency_ms=_latency(repeats=2, p50_per_repeat=(1.5, 2.5), p50_spread_pct=50.0),
        evaluation=Evaluation(("x/a/1.png", "x/b/2.png"), (0, 1), (0, 0)),
        unlabeled=Predictions(("u/1.png",), (1,)), skipped=(Skipped("x/a/bad.png", "not an image"),),
        baseline=BaselineTiming("f.tflite", "tflite", 8.0, "litert", _latency(4.0)),
        vs_baseline=VsBaseline(0.5, 0.6, "in turns", (0.5, 0.5)), peak_rss_mb=99.0, latency_estimated=True,
        estimate={"profile": "pixel3", "scale": 2.5}, latency_source="benchmark_model",
        agreement_with_host={"bit_exact": True}, device_detail={"host": "b:22"}, notes=("one", "two"))


def test_every_field_of_a_result_survives_a_round_trip():
    res = _full_result()
    text = res.to_json()
    back = AgentResult.from_json(text)
    assert back == res and back.to_json() == text
    d = json.loads(text)
    assert d["schema"] == "edgecnn.agent.result/3"
    assert set(d) == {"schema", *(f.name for f in dataclasses.fields(AgentResult) if f.name != "outputs")}
    assert d["input"] == {"name": "in", "shape": [None, 8, 8, 3], "dtype": "int8",
                          "quantization": {"scale": 0.5, "zero_point": -3}}
    assert back.input.shape == (None, 8, 8, 3) and back.skipped == (Skipped("x/a/bad.png", "not an image"),)


def test_every_field_of_a_request_survives_a_round_trip():
    req = AgentRequest(model="m.tflite", data="d", unlabeled="u", engine="onnxruntime", threads=2, cpus=(0, 3),
                       warmup=0, runs=7, min_seconds=0.0, latency=False, max_images=5, baseline="b.tflite",
                       outputs="o.npy")
    d = req.to_dict()
    assert d == {"schema": "edgecnn.agent.request/3", "model": "m.tflite", "data": "d", "unlabeled": "u",
                 "engine": "onnxruntime", "threads": 2, "cpus": [0, 3], "warmup": 0, "runs": 7, "min_seconds": 0.0,
                 "latency": False, "max_images": 5, "baseline": "b.tflite", "outputs": "o.npy"}
    assert AgentRequest.from_json(req.to_json()) == req
    assert AgentRequest.from_dict({"schema": "edgecnn.agent.request/3", "model": "m"}) == AgentRequest(model="m")
    e = EngineBuildRequest(onnx="a.onnx", engine="a.engine", timing_cache="t", fp16=False, workspace_mb=2, max_batch=1)
    assert EngineBuildRequest.from_json(e.to_json()) == e
    r = EngineBuildResult(engine="a.engine", reused=True, stamp={"tensorrt": "10.3"})
    assert EngineBuildResult.from_json(r.to_json()) == r
    b = BoardEmulation(emulator="qemu 7.2", cpu="cortex-a76", host_machine="x86_64")
    assert BoardEmulation.from_json(b.to_json()) == b


@pytest.mark.parametrize("cls,schema", [
    (AgentRequest, "edgecnn.agent.request/3"), (AgentResult, "edgecnn.agent.result/3"),
    (EngineBuildRequest, "edgecnn.agent.engine-request/1"), (EngineBuildResult, "edgecnn.agent.engine-result/1"),
    (BoardEmulation, "edgecnn.board-emulation/1"),
])
def test_another_schema_version_is_refused_saying_the_sides_differ(cls, schema):
    assert cls.SCHEMA == schema
    name, version = schema.rsplit("/", 1)
    older = f"{name}/{int(version) - 1}" if int(version) > 1 else f"{name}/0"
    with pytest.raises(ProtocolError) as e:
        cls.from_dict({"schema": older}, "the reply")
    assert str(e.value) == (f"the reply: schema {older!r}, expected {schema!r}: the two sides come from different "
                            f"edgecnn versions (the agent is shipped with each run, so one side is a stale copy: "
                            f"reinstall edgecnn)")
    with pytest.raises(ProtocolError) as e:
        cls.from_dict({}, "the reply")
    assert str(e.value) == f"the reply: no schema field (expected {schema})"


@pytest.mark.parametrize("edit,says", [
    (lambda d: d.update(size_mb="1"), "result.size_mb: expected a number, got str '1'"),
    (lambda d: d.update(size_mb=True), "result.size_mb: expected a number, got bool 'True'"),
    (lambda d: d.update(threads=2.0), "result.threads: expected an integer, got float '2.0'"),
    (lambda d: d.update(tensorflow_imported=1), "result.tensorflow_imported: expected true or false, got int '1'"),
    (lambda d: d["latency_ms"].update(p90="x"), "result.latency_ms.p90: expected a number, got str 'x'"),
    (lambda d: d["latency_ms"].update(p90=1.0), "result.latency_ms: latency statistics out of order or negative "
                                                "(p50 2.0, p90 1.0, p99 4.0, mean 2.5)"),
    (lambda d: d["evaluation"].update(top1=[0]), "result.evaluation: paths, y_true and top1 must be non-empty and "
                                                 "of equal length"),
    (lambda d: d["unlabeled"].update(top1=[]), "result.unlabeled: paths and top1 must be non-empty and of equal "
                                               "length"),
    (lambda d: d["skipped"][0].update(reason=3), "result.skipped[0].reason: expected a string, got int '3'"),
    (lambda d: d["input"].update(shape=[1, "8"]), "result.input.shape[1]: expected an integer, got str '8'"),
    (lambda d: d.update(notes="one"), "result.notes: expected a list, got str 'one'"),
    (lambda d: d.update(platform=[1]), "result.platform: expected an object, got list '[1]'"),
    (lambda d: d.update(colour=1, size=2), "result: unknown field(s) colour, size"),
    (lambda d: d.pop("runtime"), "result: missing field 'runtime'"),
    (lambda d: d.update(contract=None), "result: an evaluation needs the contract that labels it"),
    (lambda d: d.update(vs_baseline=None), "result: baseline and vs_baseline come together"),
    (lambda d: d.update(estimate={"scale": float("inf")}), "result.estimate.scale: expected a finite number, got inf"),
    (lambda d: d.update(agreement_with_host={"x": [1.0, float("nan")]}),
     "result.agreement_with_host.x[1]: expected a finite number, got nan"),
])
def test_a_wrong_field_is_refused_by_its_path(edit, says):
    d = _full_result().to_dict()
    edit(d)
    with pytest.raises(ProtocolError) as e:
        AgentResult.from_dict(d, "result")
    assert str(e.value) == says


@pytest.mark.parametrize("field,value,says", [
    ("runs", 0, "request.runs: must be at least 1, got 0"),
    ("warmup", -1, "request.warmup: must be at least 0, got -1"),
    ("threads", 0, "request.threads: must be at least 1, got 0"),
    ("max_images", 0, "request.max_images: must be at least 1, got 0"),
    ("min_seconds", -0.5, "request.min_seconds: must be a finite number >= 0, got -0.5"),
    ("min_seconds", float("inf"), "request.min_seconds: must be a finite number >= 0, got inf"),
    ("cpus", (), "request.cpus: expected CPU ids >= 0, got []"),
    ("cpus", (1, -1), "request.cpus: expected CPU ids >= 0, got [1, -1]"),
])
def test_a_request_out_of_range_is_refused_by_name(field, value, says):
    with pytest.raises(ProtocolError) as e:
        AgentRequest(model="m", **{field: value})
    assert str(e.value) == says


def test_the_edges_of_a_request_are_valid():
    r = AgentRequest(model="m", runs=1, warmup=0, threads=1, max_images=1, min_seconds=0.0, cpus=(0,))
    assert (r.runs, r.warmup, r.threads, r.max_images, r.cpus) == (1, 0, 1, 1, (0,))
    for bad, says in (({"workspace_mb": 0}, "engine request.workspace_mb: must be at least 1, got 0"),
                      ({"max_batch": 0}, "engine request.max_batch: must be at least 1, got 0")):
        with pytest.raises(ProtocolError) as e:
            EngineBuildRequest(onnx="a", engine="b", timing_cache="c", **bad).check()
        assert str(e.value) == says


def test_latencies_combine_to_medians_and_scale_every_statistic():
    runs = [_latency(1.0, min=0.5, max=9.0, n=10), _latency(3.0, min=0.2, max=4.0, n=20),
            _latency(2.0, min=0.7, max=5.0, n=None)]
    m = Latency.median(runs)
    assert (m.p50, m.p90, m.p99, m.mean, m.std) == (2.0, 3.0, 4.0, 2.5, 0.25)
    assert (m.min, m.max, m.n) == (0.2, 9.0, 30)
    even = Latency.median(runs[:2])
    assert (even.p50, even.p90) == (2.0, 3.0)
    s = _latency(2.0, p50_per_repeat=(1.0, 3.0)).scaled(1.5)
    assert (s.p50, s.p90, s.p99, s.mean, s.std, s.min, s.max, s.n) == (3.0, 4.5, 6.0, 3.75, 0.375, 1.5, 7.5, 10)
    assert s.p50_per_repeat is None
    assert Latency(1.0, 2.0, 3.0, 1.5).scaled(2.0).min is None


def test_what_a_result_derives_from_its_fields():
    res = _full_result()
    assert res.evaluation.accuracy == 0.5 and res.evaluation.images == 2
    assert Evaluation(("a", "b", "c", "d"), (0, 1, 1, 0), (0, 1, 1, 1)).accuracy == 0.75
    assert res.throughput_ips == round(1000 / 2.5, 2) == 400.0
    assert AgentResult(**{**_minimal(), "latency_ms": Latency(1.0, 1.0, 1.0, 3.0)}).throughput_ips == 333.33
    assert AgentResult(**_minimal()).throughput_ips is None
    assert res.with_notes("three").notes == ("one", "two", "three")


def _minimal() -> dict:
    return dict(artifact="m", format="tflite", size_mb=1.0, runtime="litert", runtime_version="1",
                platform={}, tensorflow_imported=False)


def test_a_failure_reply_is_raised_as_one_error_of_its_exit_status():
    with pytest.raises(InputError) as e:
        read_reply(AgentFailure("bad image folder", exit_code=2).to_json(), AgentResult, "board:22")
    assert str(e.value) == "bad image folder (on board:22)"
    with pytest.raises(EdgecnnError) as e:
        read_reply(AgentFailure("runtime crashed").to_json(), AgentResult, "board:22")
    assert type(e.value) is EdgecnnError and e.value.exit_code == 1
    assert str(e.value) == "runtime crashed (on board:22)"
    with pytest.raises(EdgecnnError) as e:
        AgentFailure("board:22 is out of memory", exit_code=1).raise_it("board:22")
    assert str(e.value) == "board:22 is out of memory"                  # where is not said twice
    with pytest.raises(ProtocolError) as e:
        read_reply("{", AgentResult, "board:22")
    assert str(e.value).startswith("the agent's reply from board:22: not valid JSON (")
    res = AgentResult(**_minimal())
    assert read_reply(res.to_json(), AgentResult, "board:22") == res
    with pytest.raises(ProtocolError) as e:
        read_reply(res.to_json(), EngineBuildResult, "board:22")
    assert str(e.value).startswith("the agent's reply from board:22: schema 'edgecnn.agent.result/3', expected "
                                   "'edgecnn.agent.engine-result/1'")


def test_an_emulated_board_says_whose_latency_it_is():
    b = BoardEmulation(emulator="qemu-aarch64 7.2", cpu="cortex-a76", host_machine="x86_64")
    assert b.describe() == ("an emulated Arm64 board (cortex-a76 under qemu-aarch64 7.2 on x86_64): its latency is "
                            "this emulation's, not a Jetson's or any real board's")


def test_a_wrong_value_is_quoted_up_to_forty_characters():
    long = "x" * 39 + "yz" + "w" * 100
    with pytest.raises(ProtocolError) as e:
        AgentRequest.from_dict({**AgentRequest(model="m").to_dict(), "model": 1.5}, "request")
    assert str(e.value) == "request.model: expected a string, got float '1.5'"
    with pytest.raises(ProtocolError) as e:
        AgentResult.from_dict({**_full_result().to_dict(), "size_mb": long}, "result")
    assert str(e.value) == f"result.size_mb: expected a number, got str {long[:40]!r}"
