"""phone: the real adb client's error paths (no phone exists here) and the benchmark_model parser."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from devices_helpers import free_port, shared_tiny_model
from edgecnn.core.protocol import AgentRequest
from edgecnn.devices import get_device
from edgecnn.devices.adb import (benchmark_argv, choose_device, parse_benchmark_output, parse_devices)
from edgecnn.core.errors import DeviceError, InputError

# The log of LiteRT's benchmark_model (android_aarch64) on a phone, as it prints it.
SAMPLE = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [50]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/edgecnn/model.tflite]
INFO: Signature to run: []
INFO: #threads used for CPU inference: [4]
INFO: Loaded model /data/local/tmp/edgecnn/model.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 3.57776
INFO: Initialized session in 24.331ms.
INFO: Running benchmark for at least 20 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=41 first=27642 curr=12087 min=11873 max=27642 avg=12545.2 std=2414

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=83 first=12135 curr=11991 min=11801 max=13620 avg=12048.7 std=311

INFO: Inference timings in us: Init: 24331, First inference: 27642, Warmup (avg): 12545.2, Inference (avg): 12048.7
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=6.05469 overall=12.7617
INFO: Overall peak memory footprint (MB) via periodic monitoring: 19.418
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 19 MB
INFO: + RssAnnon           : 9 MB
INFO: + RssFile + RssShmem : 10 MB
"""


def test_parse_benchmark_output():
    r = parse_benchmark_output(SAMPLE)
    lat = r["latency_ms"]
    assert lat["mean"] == pytest.approx(12.0487) and lat["std"] == pytest.approx(0.311) and lat["n"] == 83
    assert lat["min"] == pytest.approx(11.801) and lat["max"] == pytest.approx(13.620)
    assert lat["p50"] == pytest.approx(12.0487) and lat["p50"] < lat["p90"] < lat["p99"] <= lat["max"]
    assert "avg/std" in r["latency_source"]
    assert r["timings_us"] == {"init": 24331.0, "first": 27642.0, "warmup_avg": 12545.2, "avg": 12048.7}
    assert r["memory_mb"] == {"init": 6.05469, "overall": 12.7617, "peak": 19.418} and r["peak_rss_mb"] == 19.418
    assert r["size_mb"] == pytest.approx(3.57776) and r["threads"] == 4 and r["delegate"] == "xnnpack"


def test_parse_benchmark_output_with_percentiles():
    text = SAMPLE.replace("avg=12048.7 std=311", "avg=12048.7 std=311 p5=11850 median=12001 p95=12400")
    lat = parse_benchmark_output(text)["latency_ms"]
    assert lat["p50"] == pytest.approx(12.001) and lat["p90"] == pytest.approx(12.4)
    assert parse_benchmark_output("Error: no such file")  .get("latency_ms") is None


def test_benchmark_argv():
    a = benchmark_argv("/data/local/tmp/edgecnn/benchmark_model", "/data/local/tmp/edgecnn/model.tflite",
                       threads=4, warmup=20, runs=200, min_secs=1.0)
    assert a[1:] == ["--graph=/data/local/tmp/edgecnn/model.tflite", "--num_threads=4", "--warmup_runs=20",
                     "--num_runs=200", "--report_peak_memory_footprint=true", "--min_secs=1"]


def test_device_list_and_choice():
    text = ("List of devices attached\n"
            "8AHX0T1QX   device usb:1-1 product:blueline model:Pixel_3 device:blueline transport_id:2\n"
            "R58M123ABC  unauthorized usb:1-2 transport_id:3\n\n")
    devs = parse_devices(text)
    assert devs[0] == {"serial": "8AHX0T1QX", "state": "device", "usb": "1-1", "product": "blueline",
                       "model": "Pixel_3", "device": "blueline", "transport_id": "2"}
    with pytest.raises(DeviceError, match=r"2 Android devices attached .*--serial"):
        choose_device(devs, None)
    with pytest.raises(DeviceError, match=r"R58M123ABC is unauthorized: unlock the phone and accept"):
        choose_device(devs, "R58M123ABC")
    assert choose_device(devs, "8AHX0T1QX")["model"] == "Pixel_3"
    with pytest.raises(DeviceError, match=r"no Android device 'X' attached"):
        choose_device(devs, "X")
    with pytest.raises(DeviceError, match=r"no Android device attached"):
        choose_device(parse_devices("List of devices attached\n\n"), None)


@pytest.fixture
def adb_server(monkeypatch):
    """A real adb server of our own on 127.0.0.1 (a free port), killed afterwards."""
    adb = shutil.which("adb")
    if adb is None:
        pytest.skip("needs the adb client: apt-get install adb (.ci/devices-deps.sh)")
    port = str(free_port())
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", port)
    monkeypatch.setenv("ADB_MDNS", "0")
    subprocess.run([adb, "-L", f"tcp:127.0.0.1:{port}", "start-server"], capture_output=True, timeout=60)
    yield adb
    subprocess.run([adb, "-L", f"tcp:127.0.0.1:{port}", "kill-server"], capture_output=True, timeout=60)


def test_real_adb_no_device(adb_server, tmp_path_factory, tmp_path):
    model = shared_tiny_model(tmp_path_factory)
    with get_device("phone") as dev:
        with pytest.raises(InputError, match=r"needs LiteRT's benchmark tool: pass --benchmark-binary PATH.*"
                                             r"android_aarch64_benchmark_model"):
            dev.run(AgentRequest(model=str(model), runs=10))
    binary = tmp_path / "android_aarch64_benchmark_model"
    binary.write_bytes(b"\x7fELF")  # never runs: there is no phone
    with get_device("phone", benchmark_binary=str(binary)) as dev:
        with pytest.raises(DeviceError, match=r"no Android device attached"):
            dev.run(AgentRequest(model=str(model), runs=10))
    with get_device("phone", serial="emulator-5554", benchmark_binary=str(binary)) as dev:
        with pytest.raises(DeviceError, match=r"no Android device 'emulator-5554' attached"):
            dev.run(AgentRequest(model=str(model), runs=10))


def test_only_tflite(adb_server, tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with get_device("phone") as dev:
        with pytest.raises(InputError, match=r"runs \.tflite models"):
            dev.run(AgentRequest(model=str(onnx)))


def test_adb_happy_path_needs_a_phone():
    pytest.skip("needs an Android phone (or an endpoint speaking the adb protocol): none exists on CI; "
                "the benchmark_model output parser is tested against a real log above")
