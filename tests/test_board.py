"""`--device jetson` end to end on a real Arm64 userland: the stand-in board (edgecnn.emulation.standin).

The board is an Arm64 Debian whose programs run under QEMU (cortex-a76) through binfmt_misc, with its
own sshd on 127.0.0.1: the SSH device, the agent on the board's aarch64 Python, LiteRT and ONNX
Runtime's aarch64 builds all really run. Needs root and a usable binfmt_misc; elsewhere every test
skips with the board's own reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from devices_helpers import free_port, need_qemu
from edgecnn.emulation import arm64, standin
from edgecnn.core.protocol import AgentRequest
from edgecnn.cli import main
from edgecnn.devices import get_device
from edgecnn.core.errors import DeviceError
from edgecnn.devices.emulated import agreement
from edgecnn.devices.host import HostDevice

QUICK = ["--runs", "5", "--warmup", "1", "--min-seconds", "0"]
ARTIFACTS = ("model_int8.tflite", "model_fp32.tflite", "model_fp32.onnx", "model_int8_qdq.onnx")


def _binfmt_mounted() -> bool:
    return (standin.BINFMT / "register").exists()


@pytest.fixture(scope="module")
def board():
    """The board, built once (cached) and started for this module; stopped after it, checked clean."""
    need_qemu()
    try:
        standin.check_usable()
    except standin.Unavailable as e:
        pytest.skip(f"stand-in board: {e}")
    if standin.status() is not None:
        pytest.skip("a stand-in board is already running on this machine (edgecnn board stop)")
    mounted_before = _binfmt_mounted()
    t0 = time.perf_counter()
    try:
        s = standin.start(port=free_port(), log=print)
    except standin.Unavailable as e:
        pytest.skip(f"stand-in board: {e}")
    print(f"\nstand-in board up in {time.perf_counter() - t0:.1f} s (root built: {s.built_s} s, sshd answering "
          f"{s.start_s} s after start)")
    yield s
    if standin.status() is not None:
        left = standin.stop(log=print)
        assert not any(left.values()), left
    assert _binfmt_mounted() == mounted_before       # binfmt_misc as it was found


def jetson_args(s: standin.BoardState) -> list[str]:
    return ["--device", "jetson", "--host", s.host, "--port", str(s.port), "--identity", s.identity,
            "--known-hosts", s.known_hosts]


@pytest.fixture(scope="module")
def test_images(exported_run, products_subset):
    return products_subset / "test"


def test_without_the_privilege_binfmt_misc_is_refused_with_its_reason(tmp_path):
    """Root without capabilities (as in an unprivileged container): one line saying why, nothing changed."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or _binfmt_mounted():
        pytest.skip("needs root, setpriv, and binfmt_misc not mounted (so that mounting it is what is refused)")
    need_qemu()                      # the board's tools are checked first: without them that is what is said
    p = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-m", "edgecnn.cli",
                        "board", "start", "--port", str(free_port())], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("Error: binfmt_misc cannot be mounted here (") and "permission denied" in p.stderr
    assert not _binfmt_mounted() and standin.status() is None


def test_the_board_is_an_emulated_cortex_a76_with_both_runtimes(board):
    with get_device("jetson", **board.device_options()) as dev:
        probe = dev.probe()
        emulated = dev.emulation()
        info = dev.describe()
    assert probe["machine"] == "aarch64" and probe["python"].startswith(arm64.PYTHON_VERSION)
    assert probe["modules"]["ai_edge_litert"] and probe["modules"]["onnxruntime"] and probe["modules"]["numpy"]
    assert emulated.cpu == "cortex-a76" and "qemu-aarch64" in emulated.emulator
    assert info["emulated"]["cpu"] == "cortex-a76"
    assert arm64.ready(arm64.BOARD)                     # built whole: the stamp is there
    assert not list(arm64.BOARD.folder().parent.glob("arm64-board.partial-*"))


def test_four_artifact_kinds_agree_with_the_host(board, exported_run, test_images):
    """INT8 and float TFLite (LiteRT), float and Q/DQ ONNX (ONNX Runtime): same top-1 on every image."""
    seen = {}
    with get_device("jetson", **board.device_options()) as dev, HostDevice() as host:
        for name in ARTIFACTS:
            req = AgentRequest(model=str(exported_run / "export" / name), data=str(test_images), runs=3, warmup=1,
                               min_seconds=0.0, outputs="outputs.npy")
            on_board, on_host = dev.run(req), host.run(req)
            q = on_host.output.quantization if on_host.output else None
            a = agreement(on_host.outputs, on_board.outputs, q is not None, q.scale if q else None)
            seen[name] = a
            assert on_board.platform["machine"] == "aarch64", name
            assert on_board.device_detail["emulated"]["cpu"] == "cortex-a76"
            assert on_board.evaluation.paths == on_host.evaluation.paths and a["images"] == 30, name
            assert a["top1_agreement"] == 1.0, (name, a)
            assert on_board.evaluation.accuracy == on_host.evaluation.accuracy, name
            assert on_board.runtime == on_host.runtime, name
    print("\n" + "\n".join(f"{n}: {a}" for n, a in seen.items()))
    assert seen["model_int8.tflite"]["max_diff_lsb"] <= 1          # XNNPACK x86 vs Arm: at most 1 LSB
    assert seen["model_fp32.tflite"]["max_abs_diff"] < 1e-4


def test_bench_cli_on_the_board_marks_its_latency_as_emulated(board, exported_run, test_images, tmp_path,
                                                              monkeypatch):
    """The user's command, with a relative --data (the board's image paths map back to the same files)."""
    monkeypatch.chdir(test_images.parent)
    out = tmp_path / "board.json"
    r = CliRunner().invoke(main, ["bench", str(exported_run / "export" / "model_int8.tflite"), *jetson_args(board),
                                  "--data", "test", "--baseline", str(exported_run / "export" / "model_fp32.tflite"),
                                  "--json", str(out), *QUICK])
    assert r.exit_code in (0, 3), r.output
    rec = json.loads(out.read_text())["devices"][0]["records"][0]
    assert rec["device_info"]["machine"] == "aarch64" and rec["device_info"]["emulated"]["cpu"] == "cortex-a76"
    assert rec["top1_agreement"] == 1.0 and rec["images"] == 30
    assert rec["vs_baseline"]["p50_ratio"] > 0 and rec["baseline"]["artifact"] == "model_fp32.tflite"
    assert re.search(r"^jetson \S+ \(emulated\) +model_int8\.tflite ", r.output, re.M), r.output
    assert f"{board.host}:{board.port} is an emulated Arm64 board (cortex-a76" in r.output
    assert "not a Jetson's" in r.output


def test_a_stopped_agent_leaves_nothing_on_the_board(board, exported_run, test_images):
    """--timeout ends the agent on the board itself; its processes and work folder are gone after."""
    req = AgentRequest(model=str(exported_run / "export" / "model_fp32.tflite"), runs=100000, warmup=1,
                       min_seconds=600.0)
    root = Path(board.root)
    t0 = time.perf_counter()
    with get_device("jetson", **board.device_options(), timeout=20) as dev:
        with pytest.raises(DeviceError, match="did not finish within 20 s and was stopped on the board"):
            dev.run(req)
    assert time.perf_counter() - t0 < 120
    left = [p for p in standin.leftovers(root)["processes"] if p != board.pid]
    deadline = time.monotonic() + 20                    # sessions of the closed connection end
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [p for p in standin.leftovers(root)["processes"] if p != board.pid]
    cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ") for p in left
                if Path(f"/proc/{p}/cmdline").exists()]
    assert not any(b"agent.pyz" in c for c in cmdlines), cmdlines
    assert not list((root / "tmp").glob("edgecnn.*"))


def test_host_board_and_emulated_phone_in_one_fleet(board, exported_run, test_images, tmp_path):
    out = tmp_path / "fleet.json"
    r = CliRunner().invoke(main, ["bench", str(exported_run / "export" / "model_int8.tflite"), "--device", "host",
                                  *jetson_args(board), "--device", "phone-emulated", "--data", str(test_images),
                                  "--json", str(out), *QUICK])
    assert r.exit_code in (0, 3), r.output
    doc = json.loads(out.read_text())
    assert [e["device"] for e in doc["devices"]] == ["host", "jetson", "phone-emulated"]
    recs = {e["device"]: e["records"][0] for e in doc["devices"]}
    assert {rec["accuracy"] for rec in recs.values()} == {recs["host"]["accuracy"]}
    assert recs["jetson"]["device_info"]["machine"] == "aarch64"
    assert recs["phone-emulated"]["agreement_with_host"]["top1_agreement"] == 1.0
    table = r.output[r.output.index("device "):]
    assert re.search(r"^jetson \S+ \(emulated\) ", table, re.M) and "is an emulated Arm64 board" in table
    assert not re.search(r"^(host|phone-emulated)\S* [^\n]*\(emulated\)", table, re.M)     # only the board's rows


def test_stop_removes_everything_and_a_restart_is_quick(board):
    root = Path(board.root)
    left = standin.stop(log=print)
    assert not any(left.values()), left
    assert not arm64.mounts_below(root) and not (standin.BINFMT / standin.ENTRY).exists()
    assert standin.status() is None
    t0 = time.perf_counter()
    again = standin.start(port=board.port, log=print)
    restart_s = time.perf_counter() - t0
    print(f"\nstand-in board restarted in {restart_s:.1f} s (sshd answering after {again.start_s} s)")
    assert again.built_s is None and restart_s < 60       # cached: nothing rebuilt
    r = CliRunner().invoke(main, ["board", "status"])
    assert r.exit_code == 0 and f"port {board.port}" in r.output


def test_start_refuses_a_second_board(board):
    r = CliRunner().invoke(main, ["board", "start", "--port", str(free_port())])
    assert r.exit_code == 2 and r.output.count("Error:") == 1
    assert f"already running on 127.0.0.1:{board.port}" in r.output


def test_status_without_a_board_exits_1(board):
    standin.stop(log=print)
    r = CliRunner().invoke(main, ["board", "status"])
    assert r.exit_code == 1 and "no stand-in board is running" in r.output
    np.testing.assert_equal(standin.leftovers(Path(board.root)), {"processes": [], "mounts": [],
                                                                  "binfmt_entry": False})
