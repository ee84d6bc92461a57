"""Rules pinned on exact values, fast and without running a model: how a fleet's devices are benched at
once, what a bench record and document carry (through stand-in devices), the precision a model's own
tensors show, the note a model fed from its standard metadata gets, the phone's device choice and
benchmark_model log, the image decoder's reduced JPEG scale and size limit, the protocol's nested
objects and latency order, the device options' descriptions, the host's description, the ssh connect
timeout, and when no number of images can decide a drop budget."""

from __future__ import annotations

import hashlib
import struct
import sys
import threading
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgecnn import bench as B  # noqa: E402
from edgecnn import fleet as F  # noqa: E402
from edgecnn import verdict as V  # noqa: E402
from edgecnn.core import contract as C  # noqa: E402
from edgecnn.core.artifact import FROM_STANDARD_METADATA, format_of  # noqa: E402
from edgecnn.core.contract import Contract, Provenance, Quantization  # noqa: E402
from edgecnn.core.errors import DeviceError  # noqa: E402
from edgecnn.core.protocol import (AgentResult, BaselineTiming, Evaluation, Latency, ProtocolError,  # noqa: E402
                                   Tensor, VsBaseline)
from edgecnn.devices.adb import choose_device, parse_benchmark_output  # noqa: E402
from edgecnn.devices.base import Capabilities, OptionSpec  # noqa: E402
from edgecnn.results import BaselineRecord, Paired, UnlabeledChanges  # noqa: E402
from edgecnn.rundir import Budgets  # noqa: E402


# ------------------------------------------------------------------------------------ bench: _each
def test_devices_are_benched_at_once_up_to_parallel_and_results_keep_the_input_order():
    both = threading.Barrier(2, timeout=10)         # released only when two calls run at the same time

    def meet(x):
        both.wait()
        return (x, threading.current_thread().name)

    got = B._each(meet, ["a", "b"], 2)
    assert [x for x, _ in got] == ["a", "b"]
    assert all(name.startswith("bench") for _, name in got)          # the pool's threads, by name

    active, peak, lock = [0], [0], threading.Lock()

    def busy(x):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return x * 10

    assert B._each(busy, [1, 2, 3, 4, 5], 2) == [10, 20, 30, 40, 50]
    assert peak[0] == 2                                               # never more than `parallel` at once


def test_one_at_a_time_runs_in_the_callers_thread_in_order():
    me = threading.current_thread()
    seen, active, peak = [], [0], [0]

    def one(x):
        assert threading.current_thread() is me
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        seen.append(x)
        active[0] -= 1
        return x.upper()

    assert B._each(one, ["a", "b", "c"], 1) == ["A", "B", "C"]
    assert seen == ["a", "b", "c"] and peak[0] == 1
    assert B._each(one, ["z"], 4) == ["Z"]                            # a fleet of one: no thread at all


# ------------------------------------------------------------------------------------ bench: records
PROV = Provenance("1" * 64, "2" * 64)
PATHS = ("d/a/1.png", "d/b/2.png", "d/a/3.png", "d/b/4.png")


def _result(top1=(0, 1, 0, 0), *, dtype="int8", contract=True, provenance=True, baseline=False) -> AgentResult:
    c = Contract(input_size=(8, 8), labels=("a", "b"), provenance=PROV if provenance else None) if contract else None
    lat = Latency(2.0, 3.0, 4.0, 2.5)
    return AgentResult(
        artifact="m.engine", format="tensorrt", size_mb=2.0, runtime="tensorrt", runtime_version="10.3",
        platform={}, tensorflow_imported=False, threads=2, input=Tensor("in", (1, 8, 8, 3), dtype), contract=c,
        latency_ms=lat, evaluation=Evaluation(PATHS, (0, 1, 0, 1), tuple(top1)) if contract else None,
        baseline=BaselineTiming("f.engine", "tflite", 8.0, "litert", Latency(4.0, 5.0, 6.0, 4.5)) if baseline
        else None,
        vs_baseline=VsBaseline(0.5, 0.6, "timed in turns in one process") if baseline else None,
        peak_rss_mb=50.0, notes=("one",))


class _Dev:
    """A device that answers with a prepared result (nothing runs)."""

    name = "fake"
    capabilities = Capabilities(formats=("tensorrt",), accuracy=True, baseline=True)

    def __init__(self, result: AgentResult):
        self.result, self.requests = result, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def describe(self) -> dict:
        return {"device": "fake", "machine": "m1"}

    def run(self, request):
        self.requests.append(request)
        return self.result


def _plan(art: Path) -> B.Plan:
    return B.Plan([art], None, Budgets(size_mb=20.0, max_drop_pp=None, max_p90_ms=None, source="t"), None, [])


def test_a_record_carries_the_artifacts_provenance_precision_and_baseline(tmp_path):
    art = tmp_path / "m.engine"
    art.write_bytes(b"an engine this machine cannot read")
    rec = B._record(art, _result(baseline=True), _Dev(None), None, _plan(art))
    assert rec.artifact == "m.engine" and rec.sha256 == hashlib.sha256(art.read_bytes()).hexdigest()
    assert rec.provenance == {"model_sha256": "1" * 64, "recipe_sha256": "2" * 64}
    assert rec.precision == "int8"                     # named nothing, read nothing: the integer input says
    assert (rec.device, rec.device_info, rec.format, rec.runtime, rec.threads) == (
        "fake", {"device": "fake", "machine": "m1"}, "tensorrt", "tensorrt", 2)
    assert (rec.accuracy, rec.images, rec.throughput_ips, rec.notes) == (0.75, 4, 400.0, ["one"])
    assert rec.baseline == BaselineRecord(artifact="f.engine", format="tflite", size_mb=8.0,
                                          latency_ms=Latency(4.0, 5.0, 6.0, 4.5))
    assert rec.vs_baseline == VsBaseline(0.5, 0.6, "timed in turns in one process")
    assert list(rec.budgets) == ["size_mb"] and (rec.verdict, rec.passed) == ("PASS", True)

    plain = B._record(art, _result(dtype="float32"), _Dev(None), None, _plan(art))
    assert (plain.baseline, plain.vs_baseline, plain.precision) == (None, None, "fp32")
    assert B._record(art, _result(provenance=False), _Dev(None), None, _plan(art)).provenance is None
    bare = B._record(art, _result(contract=False), _Dev(None), None, _plan(art))
    assert (bare.provenance, bare.accuracy, bare.images) == (None, None, None)


def _bench(tmp_path_factory, tmp_path, point_estimate=False, devices=1):
    """bench() end to end on the host (real agents, the tiny model against its float twin)."""
    from devices_helpers import LABELS, image_folder, shared_tiny_model
    from tiny_model import tiny_float_tflite
    art, ref = shared_tiny_model(tmp_path_factory), tmp_path / "float.tflite"
    if not ref.is_file():
        ref.write_bytes(tiny_float_tflite(LABELS))
    data = image_folder(tmp_path / "d", per_class=2)
    fleet = F.Fleet(tuple(F.device("host", {}, name=f"dev{i}") for i in range(devices)), parallel=2)
    said: list[str] = []
    doc = B.bench(B.BenchOptions(target=art, data=data, reference=ref, point_estimate=point_estimate, runs=3,
                                 warmup=1, min_seconds=0.0, threads=1), fleet, said.append)
    return doc, said, art, ref, data


@pytest.mark.parametrize("name,runtime", [("m.keras", "Keras"), ("m.tflite", "LiteRT"), ("m.onnx", "ONNX Runtime"),
                                          ("m.engine", "TensorRT"), ("m.plan", "TensorRT")])
def test_the_reference_is_named_with_the_runtime_of_its_format(name, runtime):
    assert B.RUNTIME_NAMES[format_of(name)] == runtime


def test_a_bench_logs_to_its_caller_and_says_what_accuracy_budgets_are_judged_on(tmp_path_factory, tmp_path, capsys):
    doc, said, art, ref, data = _bench(tmp_path_factory, tmp_path)
    assert capsys.readouterr().out == ""                             # nothing printed: all to the caller's log
    assert said == ["reference: float.tflite on the host (LiteRT)", f"bench {art.name} on host..."]
    assert doc.judged_on == "95% intervals"
    assert doc.reference.artifact == "float.tflite"
    assert doc.reference.sha256 == hashlib.sha256(ref.read_bytes()).hexdigest()
    assert (doc.target, doc.data, doc.run, doc.parallel) == (str(art), str(data), None, 2)
    (e,) = doc.devices
    (rec,) = e.records
    assert (e.name, e.device, rec.precision, rec.images) == ("dev0", "host", "int8", 6)   # 2 photos of 3 classes

    doc, said, art, _, _ = _bench(tmp_path_factory, tmp_path, point_estimate=True, devices=2)
    assert doc.judged_on == "point estimates"
    assert said[0] == "reference: float.tflite on the host (LiteRT)"  # once, for every device
    assert sorted(said[1:]) == [f"[dev0] bench {art.name} on host...", f"[dev1] bench {art.name} on host..."]
    assert [e.name for e in doc.devices] == ["dev0", "dev1"]


# ------------------------------------------------------------------------------------ precision
def _onnx(path: Path, dtype: str | None, qdq: bool = False) -> Path:
    """An ONNX file holding one initializer of this dtype (none: None), with a QuantizeLinear node if asked."""
    import onnx
    from onnx import helper, numpy_helper
    inits = [] if dtype is None else [numpy_helper.from_array(np.zeros(2, dtype=dtype), "w")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["y"])] if qdq else []
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [], [], initializer=inits)), str(path))
    return path


def _res(input_dtype: str | None) -> AgentResult:
    return AgentResult(artifact="m", format="onnx", size_mb=1.0, runtime="onnxruntime", runtime_version="1",
                       platform={}, tensorflow_imported=False,
                       input=None if input_dtype is None else Tensor("in", (1, 8, 8, 3), input_dtype))


@pytest.mark.parametrize("name,weights,qdq,input_dtype,precision", [
    ("m_int8_qdq.onnx", "int8", False, "float32", "int8-qdq"),     # the name refines the tensors' int8
    ("m_int8_mixed.onnx", "int8", False, "float32", "int8-mixed"),
    ("m_int8.onnx", "uint8", False, "float32", "int8"),
    ("m_int8_qdq.onnx", "float32", True, "float32", "int8-qdq"),    # Q/DQ nodes show int8
    ("m_fp32.onnx", "int8", False, "float32", "int8"),              # ...but never overrides them
    ("m_int8.onnx", "float32", False, "int8", "fp32"),
    ("m_int8_qdq.onnx", "float16", False, "float32", "fp16"),
    ("m_fp16.onnx", "float16", False, "float32", "fp16"),
    ("m_fp16.onnx", "float32", False, "float32", "fp32"),
    ("m.onnx", "float16", False, "int8", "fp16"),                   # tensors over the input type
    ("m.onnx", "float32", False, "uint8", "fp32"),
    ("m.onnx", None, False, "uint8", "int8"),                       # tensors say nothing: the input type
    ("m.onnx", None, False, "float32", "fp32"),
    ("m.onnx", None, False, None, "fp32"),
    ("M_INT8_MIXED.onnx", None, False, "float32", "int8-mixed"),    # ...or the name first
])
def test_the_tensors_precision_refined_never_overridden_by_the_name(tmp_path, name, weights, qdq, input_dtype,
                                                                    precision):
    assert B.precision_of(_onnx(tmp_path / name, weights, qdq), _res(input_dtype)) == precision


# ------------------------------------------------------------------------------------ standard metadata note
@pytest.mark.parametrize("renamed,tail", [
    (2, ", 2 renamed to be unique folder names; bilinear resize assumed)"),
    (1, ", 1 renamed to be unique folder names; bilinear resize assumed)"),
    (0, "; bilinear resize assumed)"),
    (None, "; bilinear resize assumed)"),
])
def test_a_model_fed_from_its_standard_metadata_says_how(renamed, tail):
    model = {"source": FROM_STANDARD_METADATA, "normalization": "NormalizationOptions: (pixel - 127.5) / 127.5"}
    if renamed is not None:
        model["labels_renamed"] = renamed
    c = Contract(input_size=(224, 160), labels=("a", "b", "c"), model=model)
    assert B.standard_metadata_note("m.tflite", c) == (
        "m.tflite: no edgecnn contract; preprocessing from its standard TFLite metadata (224x160 RGB, "
        "NormalizationOptions: (pixel - 127.5) / 127.5, 3 labels" + tail)


# ------------------------------------------------------------------------------------ adb: the device chosen
def _d(serial, state="device", **kw) -> dict:
    return {"serial": serial, "state": state, **kw}


def test_the_phone_is_the_one_attached_or_the_serial_named():
    only = _d("A1", model="Pixel_3")
    assert choose_device([only], None) is only
    two = [_d("A1"), _d("B2", model="Pixel_8")]
    assert choose_device(two, "B2") is two[1]
    with pytest.raises(DeviceError) as e:
        choose_device(two, None)
    assert str(e.value) == "2 Android devices attached (A1, B2): choose one with --serial"
    with pytest.raises(DeviceError) as e:
        choose_device([*two, _d("C3", "offline")], None)
    assert str(e.value) == "3 Android devices attached (A1, B2, C3): choose one with --serial"
    with pytest.raises(DeviceError) as e:
        choose_device(two, "Z9")
    assert str(e.value) == "no Android device 'Z9' attached (attached: A1, B2)"
    with pytest.raises(DeviceError) as e:
        choose_device([], "Z9")
    assert str(e.value) == "no Android device 'Z9' attached (attached: none)"
    with pytest.raises(DeviceError) as e:
        choose_device([], None)
    assert str(e.value) == ("no Android device attached: connect a phone with USB debugging on (adb devices lists "
                            "none)")


def test_a_phone_not_ready_is_refused_by_its_state():
    with pytest.raises(DeviceError) as e:
        choose_device([_d("A1", "unauthorized")], None)
    assert str(e.value) == ("A1 is unauthorized: unlock the phone and accept the USB debugging prompt (RSA key) for "
                            "this computer")
    with pytest.raises(DeviceError) as e:
        choose_device([_d("A1"), _d("B2", "offline")], "B2")
    assert str(e.value) == "B2 is offline: reconnect it (adb reconnect) and try again"


# ------------------------------------------------------------------------------------ adb: benchmark_model's log
from test_devices_adb import SAMPLE  # noqa: E402  (a real benchmark_model log)

TIMED = "avg=12048.7 std=311"
PERCENTILES = "benchmark_model percentiles (p90 from p95 when p90 is not printed)"


@pytest.mark.parametrize("extra,p50,p90,p99", [
    ("median=12001 p90=12300 p95=12400 p99=12900", 12.001, 12.3, 12.9),     # p90 as printed
    ("median=12001 p95=12400", 12.001, 12.4, 12.0487 + 2.33 * 0.311),      # else p95
    ("median=12001", 12.001, 12.001, 12.0487 + 2.33 * 0.311),               # else the median
    ("median=12001 p99=13000", 12.001, 12.001, 13.0),
])
def test_printed_percentiles_are_read_p90_from_p95_else_the_median(extra, p50, p90, p99):
    r = parse_benchmark_output(SAMPLE.replace(TIMED, f"{TIMED} {extra}"))
    lat = r["latency_ms"]
    assert (lat["p50"], lat["p90"], lat["p99"]) == pytest.approx((p50, p90, p99), abs=1e-9)
    assert (lat["mean"], lat["std"], lat["min"], lat["max"], lat["n"]) == pytest.approx(
        (12.0487, 0.311, 11.801, 13.62, 83), abs=1e-9)
    assert r["latency_source"] == PERCENTILES


def test_without_percentiles_p90_and_p99_come_from_avg_and_std_capped_at_max():
    r = parse_benchmark_output(SAMPLE)
    lat = r["latency_ms"]
    assert (lat["p50"], lat["p90"], lat["p99"]) == pytest.approx(
        (12.0487, 12.0487 + 1.2816 * 0.311, 12.0487 + 2.3263 * 0.311), abs=1e-9)
    assert r["latency_source"] == ("benchmark_model avg/std: p50 = avg, p90/p99 = avg + 1.28/2.33 std "
                                   "(capped at max)")
    assert r["throughput_ips"] == round(1000 / 12.0487, 2) == 83.0
    wide = parse_benchmark_output(SAMPLE.replace(TIMED, "avg=12048.7 std=1000"))["latency_ms"]
    assert (wide["p90"], wide["p99"]) == pytest.approx((12.0487 + 1.2816, 13.62), abs=1e-9)   # p99 capped
    bare = parse_benchmark_output(SAMPLE.replace("min=11801 max=13620 avg=12048.7 std=311", "avg=12048.7"))
    assert bare["latency_ms"] == pytest.approx({"mean": 12.0487, "std": 0.0, "min": 12.0487, "max": 12.0487,
                                                "n": 83, "p50": 12.0487, "p90": 12.0487, "p99": 12.0487})


def test_the_average_alone_is_used_when_no_statistics_line_is_printed():
    text = "\n".join(ln for ln in SAMPLE.splitlines() if "count=" not in ln)
    r = parse_benchmark_output(text)
    assert r["latency_ms"] == {"mean": 12.0487, "p50": 12.0487, "p90": 12.0487, "p99": 12.0487, "n": None}
    assert r["latency_source"] == "benchmark_model average only"
    assert r["throughput_ips"] == 83.0
    nothing = parse_benchmark_output("ERROR: could not open model")
    assert "latency_ms" not in nothing and "latency_source" not in nothing and nothing["peak_rss_mb"] is None


def test_threads_are_read_from_either_line_the_inference_threads_first():
    assert parse_benchmark_output(SAMPLE.replace("CPU inference: [4]", "CPU inference: [2]"))["threads"] == 2
    no_used = "\n".join(ln for ln in SAMPLE.splitlines() if "#threads" not in ln)
    assert parse_benchmark_output(no_used.replace("Num threads: [4]", "Num threads: [6]"))["threads"] == 6
    neither = "\n".join(ln for ln in no_used.splitlines() if "Num threads" not in ln)
    assert "threads" not in parse_benchmark_output(neither)


def test_memory_peak_falls_back_on_the_overall_delta():
    no_peak = "\n".join(ln for ln in SAMPLE.splitlines() if "periodic monitoring" not in ln)
    r = parse_benchmark_output(no_peak)
    assert r["memory_mb"] == {"init": 6.05469, "overall": 12.7617} and r["peak_rss_mb"] == 12.7617
    assert "delegate" not in parse_benchmark_output(SAMPLE.replace("XNNPACK", "GPU"))


# ------------------------------------------------------------------------------------ decoding images
def test_a_large_jpeg_is_decoded_in_rgb_at_a_reduced_dct_scale(tmp_path):
    assert (C.LARGE_IMAGE_SIDE, C.MAX_DECODE_PIXELS) == (4096, 100_000_000)
    for (w, h), shape in (((9000, 300), (150, 4500, 3)), ((300, 9000), (4500, 150, 3)),
                          ((17000, 300), (75, 4250, 3))):     # 1/2, 1/2, 1/4: the longest side near 4096
        p = tmp_path / f"{w}x{h}.jpg"
        Image.new("RGB", (w, h), (10, 200, 30)).save(p, quality=90)
        out = C.load_image(p)
        assert out.shape == shape and out.dtype == np.uint8
        assert np.abs(out.reshape(-1, 3).mean(0) - (10, 200, 30)).max() < 3      # colour kept: decoded as RGB
    for (w, h), shape in (((9000, 2), (1, 4500, 3)), ((2, 9000), (4500, 1, 3)),     # the short side: at least 1
                          ((4096, 40), (40, 4096, 3))):                             # at the limit: full size
        p = tmp_path / f"{w}x{h}.jpg"
        Image.new("RGB", (w, h), (10, 200, 30)).save(p)
        assert C.load_image(p).shape == shape


def test_an_image_of_the_pixel_limit_decodes_and_one_pixel_more_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "12x10.png"
    Image.new("RGB", (12, 10), (1, 2, 3)).save(p)
    monkeypatch.setattr(C, "MAX_DECODE_PIXELS", 120)
    assert C.load_image(p).shape == (10, 12, 3)
    monkeypatch.setattr(C, "MAX_DECODE_PIXELS", 119)
    with pytest.raises(C.ImageError, match=r"12x10 is too large to decode safely"):
        C.load_image(p)


def _png_header(w: int, h: int) -> bytes:
    """A PNG that only declares its size (no pixels): never decoded by a refusal made on the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_an_image_over_the_real_limit_is_refused_from_its_header(tmp_path):
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header(17, 5_882_353))          # 100,000,001 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # Pillow's own decompression-bomb warning
        with pytest.raises(C.ImageError) as e:
            C.load_image(p)
    assert str(e.value) == f"{p}: 17x5882353 is too large to decode safely (over 100 MP)"



# ------------------------------------------------------------------------------------ protocol
def _full() -> dict:
    c = Contract(input_size=(8, 8), labels=("a", "b"))
    return AgentResult(artifact="m", format="tflite", size_mb=1.0, runtime="litert", runtime_version="1",
                       platform={}, tensorflow_imported=False, contract=c,
                       input=Tensor("in", (1, 8, 8, 3), "int8", Quantization(0.5, 1)),
                       latency_ms=Latency(1.0, 2.0, 3.0, 1.5)).to_dict()


@pytest.mark.parametrize("edit,says", [
    (lambda d: d.update(contract=[1]), "result.contract: expected an object, got list '[1]'"),
    (lambda d: d.update(contract="c"), "result.contract: expected an object, got str 'c'"),
    (lambda d: d["input"].update(quantization=5), "result.input.quantization: expected an object, got int '5'"),
    (lambda d: d.update(latency_ms=3), "result.latency_ms: expected an object, got int"),
    (lambda d: d.update(input=["in"]), "result.input: expected an object, got list"),
    (lambda d: d.update(estimate="x"), "result.estimate: expected an object, got str 'x'"),
])
def test_a_nested_field_that_must_be_an_object_is_refused_saying_so(edit, says):
    d = _full()
    assert AgentResult.from_dict(_full(), "result").input.quantization == Quantization(0.5, 1)
    edit(d)
    with pytest.raises(ProtocolError) as e:
        AgentResult.from_dict(d, "result")
    assert str(e.value) == says
    with pytest.raises(ProtocolError) as e:
        AgentResult.from_dict([d], "the reply")
    assert str(e.value) == "the reply: expected an object, got list"


@pytest.mark.parametrize("stats", [(0.0, 0.0, 0.0, 0.0), (2.0, 2.0, 2.0, 2.0), (1.0, 1.0, 3.0, 0.0),
                                   (1.0, 3.0, 3.0, 1.0)])
def test_zero_and_equal_latency_statistics_are_valid(stats):
    Latency(*stats).check("lat")
    back = AgentResult.from_dict({**_full(), "latency_ms": dict(zip(("p50", "p90", "p99", "mean"), stats))}, "r")
    assert (back.latency_ms.p50, back.latency_ms.p90, back.latency_ms.p99, back.latency_ms.mean) == stats


@pytest.mark.parametrize("stats", [(1.0, 2.0, 3.0, -0.001), (-0.001, 0.0, 0.0, 0.0), (2.0, 1.999, 3.0, 2.0),
                                   (1.0, 3.0, 2.999, 2.0)])
def test_negative_or_out_of_order_latency_statistics_are_refused(stats):
    p50, p90, p99, mean = stats
    with pytest.raises(ProtocolError) as e:
        Latency(*stats).check("lat")
    assert str(e.value) == (f"lat: latency statistics out of order or negative (p50 {p50}, p90 {p90}, p99 {p99}, "
                            f"mean {mean})")


# ------------------------------------------------------------------------------------ device options
@pytest.mark.parametrize("tp,rng,unit,says", [
    (int, None, None, "a whole number"),
    (int, (1, 64), None, "a whole number from 1 to 64"),
    (int, (0, 65535), "seconds", "a whole number from 0 to 65535"),
    (float, None, None, "a number"),
    (float, None, "seconds", "a number of seconds"),
    (float, (1.0, 86400.0), "seconds", "a number of seconds from 1 to 86400"),
    (float, (0.5, 2.5e6), None, "a number from 0.5 to 2.5e+06"),
    (bool, (0, 1), None, "true or false"),
    (str, None, None, "a text value"),
])
def test_each_option_type_is_described_in_words(tp, rng, unit, says):
    s = OptionSpec("n", tp, None, "", range=rng, unit=unit)
    assert s.expects() == says
    assert s.problem("x") == f"must be {says}, got 'x'"
    assert s.flag == "--n"


# ------------------------------------------------------------------------------------ the host
def test_the_host_describes_itself(monkeypatch):
    import os
    import platform

    from edgecnn.devices.host import HostDevice
    monkeypatch.setattr(platform, "machine", lambda: "riscv64")
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    with HostDevice() as h:
        monkeypatch.setattr(platform, "processor", lambda: "")
        assert h.describe() == {"device": "host", "machine": "riscv64", "cpus": 7, "processor": "riscv64"}
        monkeypatch.setattr(platform, "processor", lambda: "GenuineIntel")
        assert h.describe() == {"device": "host", "machine": "riscv64", "cpus": 7, "processor": "GenuineIntel"}


# ------------------------------------------------------------------------------------ ssh
def test_an_ssh_connection_waits_ten_seconds_by_default():
    from edgecnn.devices.ssh import SSHTransport
    t = SSHTransport("u@board", ssh=sys.executable)
    try:
        assert t.connect_timeout == 10
        argv = t.argv("true")
        assert "ConnectTimeout=10" in argv and argv[argv.index("ConnectTimeout=10") - 1] == "-o"
    finally:
        t.close()


# ------------------------------------------------------------------------------------ images to decide
def _on(n: int, b: int, c: int) -> Paired:
    y = [0] * n
    ref = [0] * b + [1] * c + [0] * (n - b - c)
    art = [1] * b + [0] * c + [0] * (n - b - c)
    return V.paired(y, art, ref)


def test_no_number_of_images_decides_a_drop_without_labels_or_on_its_limit_and_none_is_searched(monkeypatch):
    def searched(*a, **kw):
        raise AssertionError("searched for a size that cannot exist")

    unlabeled_only = V.paired([], [], [], UnlabeledChanges(n=50, changed=1, flips=[]))
    assert unlabeled_only.n == 0 and unlabeled_only.drop_pp is None
    on_limit = _on(100, 2, 1)                          # drop (2 - 1) / 100 = 1.0 pp
    assert on_limit.drop_pp == 1.0
    near = on_limit.model_copy(update={"drop_pp": 1.0 + 5e-10})
    no_images = V.paired([], [], [])                  # no labelled image, no photo: a drop of 0 on 0 images
    assert (no_images.n, no_images.drop_pp) == (0, 0.0)
    monkeypatch.setattr(V, "_fewest", searched)
    monkeypatch.setattr(V, "drop_interval", searched)
    assert V.images_to_decide_drop(unlabeled_only, 1.0) is None
    assert V.images_to_decide_drop(on_limit, 1.0) is None
    assert V.images_to_decide_drop(near, 1.0) is None
    assert V.images_to_decide_drop(no_images, 1.0) is None
    at_zero = on_limit.model_copy(update={"drop_pp": 5e-10})
    assert V.images_to_decide_drop(at_zero, 0.0) is None          # on a limit of 0: within 1e-9 absolute
    with pytest.raises(AssertionError, match="searched"):
        V.images_to_decide_drop(on_limit.model_copy(update={"drop_pp": 2e-9}), 0.0)
    with pytest.raises(AssertionError, match="searched"):             # off the limit: a size is searched
        V.images_to_decide_drop(on_limit, 1.0 + 1e-6)
    with pytest.raises(AssertionError, match="searched"):
        V.images_to_decide_drop(on_limit, 0.5)


def test_a_photo_past_pillows_pixel_limit_is_called_too_large_not_corrupt(tmp_path):
    """A JPEG whose header says 16384x12288 (201 MP, past Pillow's decompression-bomb limit) is refused
    as too large by both the decoder and the data check, never reported as a corrupt file."""
    from edgecnn.core.images import check_image
    p = tmp_path / "huge.jpg"
    Image.new("RGB", (16, 12), (10, 20, 30)).save(p, quality=90)
    data = bytearray(p.read_bytes())
    sof = next(i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5:sof + 9] = struct.pack(">HH", 12288, 16384)      # height, width
    p.write_bytes(bytes(data))
    with pytest.raises(C.ImageError, match=r"huge.jpg: too large to decode safely \(Image size \(201326592 pixels\)"):
        C.load_image(p)
    reason, _ = check_image(p)
    assert reason.startswith("too large to decode safely (Image size (201326592 pixels)")
