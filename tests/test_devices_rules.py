"""What each device kind declares, and how a device refuses what it cannot do, on hand-built requests
(no device runs): the capabilities table, one line per refusal naming the devices that can, the agent's
failure turned into one line, and a local command past its deadline."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgecnn.core.errors import DeviceError, InputError
from edgecnn.core.protocol import AgentFailure, AgentRequest, AgentResult
from edgecnn.devices import available_devices, check_request, devices_with, get_device
from edgecnn.devices.base import Completed, LocalTransport, read_agent_result

CAPABILITIES = {   # kind: (formats, accuracy, unlabeled, baseline, cpu_pinning, latency_estimated, options)
    "host": (("tflite", "onnx", "tensorrt"), True, True, True, True, False, ()),
    "jetson": (("tflite", "onnx", "tensorrt"), True, True, True, True, False,
               ("host", "port", "identity", "accept_new_host_key", "known_hosts")),
    "phone": (("tflite",), False, False, False, False, False, ("serial", "benchmark_binary")),
    "phone-emulated": (("tflite",), True, False, False, False, True, ("profile",)),
}


def test_each_kind_declares_what_it_can_do():
    kinds = available_devices()
    assert set(kinds) == set(CAPABILITIES)
    for name, cls in kinds.items():
        c = cls.capabilities
        own = tuple(s.name for s in cls.Options.specs() if s.name != "timeout")      # every kind takes a timeout
        assert (c.formats, c.accuracy, c.unlabeled, c.baseline, c.cpu_pinning, c.latency_estimated, own) == \
            CAPABILITIES[name], name
    paths = {s.name for cls in kinds.values() for s in cls.Options.specs() if s.path}
    assert paths == {"identity", "known_hosts", "benchmark_binary"}     # read relative to a fleet file
    assert devices_with("baseline") == ["host", "jetson"]
    assert devices_with("unlabeled") == ["host", "jetson"]
    assert devices_with("cpu_pinning") == ["host", "jetson"]
    assert devices_with("latency_estimated") == ["phone-emulated"]
    assert devices_with("accuracy") == ["host", "jetson", "phone-emulated"]


@pytest.mark.parametrize("kind,options,request_kw,fmt,says", [
    ("phone-emulated", {}, {}, "onnx", "the phone-emulated device runs tflite models, not onnx"),
    ("phone", {"adb": sys.executable}, {}, "tensorrt", "the phone device runs tflite models, not tensorrt"),
    ("phone-emulated", {}, {"baseline": "b.tflite"}, "tflite",
     "--baseline is timed in turns in one agent process: the phone-emulated device cannot (devices that can: "
     "host, jetson)"),
    ("phone-emulated", {}, {"unlabeled": "u"}, "tflite",
     "--unlabeled: the phone-emulated device does not predict unlabeled photos; count the changes where it can "
     "(devices that can: host, jetson)"),
    ("phone", {"adb": sys.executable}, {"cpus": (0,)}, "tflite",
     "--cpus: the phone device cannot pin CPUs (devices that can: host, jetson)"),
])
def test_a_device_refuses_what_it_did_not_declare_in_one_line(kind, options, request_kw, fmt, says):
    with get_device(kind, log=lambda m: None, **options) as d:
        with pytest.raises(InputError) as e:
            check_request(d, AgentRequest(model="m.tflite", **request_kw), fmt)
        assert str(e.value) == says


def test_what_a_device_declared_it_accepts():
    with get_device("host") as d:
        for fmt in ("tflite", "onnx", "tensorrt"):
            check_request(d, AgentRequest(model="m", baseline="b", unlabeled="u", cpus=(0, 1)), fmt)
    with get_device("phone-emulated", log=lambda m: None) as d:
        check_request(d, AgentRequest(model="m.tflite", data="d"), "tflite")


def test_an_agent_that_wrote_no_result_is_one_line_from_its_last_words():
    with pytest.raises(DeviceError) as e:
        read_agent_result(Completed(3, "out 1\nout 2\n", "warning\nImportError: no numpy\n\n"), None, "the board")
    assert str(e.value) == "the agent failed on the board (exit 3): ImportError: no numpy"
    with pytest.raises(DeviceError) as e:
        read_agent_result(Completed(1, "only stdout\n", ""), "", "b")
    assert str(e.value) == "the agent failed on b (exit 1): only stdout"
    with pytest.raises(DeviceError) as e:
        read_agent_result(Completed(137, "", ""), None, "b")
    assert str(e.value) == "the agent failed on b (exit 137): no output"
    with pytest.raises(DeviceError) as e:
        read_agent_result(Completed(1, "", "x" * 500), None, "b")
    assert str(e.value) == "the agent failed on b (exit 1): " + "x" * 300
    with pytest.raises(InputError, match=r"^no such folder \(on b\)$"):
        read_agent_result(Completed(2, "", ""), AgentFailure("no such folder", exit_code=2).to_json(), "b")
    res = AgentResult(artifact="m", format="tflite", size_mb=1.0, runtime="litert", runtime_version="1",
                      platform={}, tensorflow_imported=False)
    assert read_agent_result(Completed(0, "", "noise"), res.to_json(), "b") == res


def test_a_local_command_past_its_deadline_is_one_line_naming_it():
    t = LocalTransport()
    with pytest.raises(DeviceError) as e:
        t.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1)
    assert str(e.value) == f"command timed out after 1 s: {Path(sys.executable).name}"
    c = t.run([sys.executable, "-c", "import sys; print('a'); sys.exit(4)"], timeout=60)
    assert (c.returncode, c.stdout) == (4, "a\n")
