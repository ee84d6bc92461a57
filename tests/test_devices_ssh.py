"""The jetson device over a real OpenSSH server on 127.0.0.1 (a key made for the test).

TensorRT cannot run here: its command construction, version stamping and reuse decision are tested
as functions; the engine build on a board is skipped with the reason.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from devices_helpers import Sshd, free_port, image_folder, need_ssh, shared_tiny_model
from edgecnn.devices import get_device
from edgecnn.core.errors import DeviceError
from edgecnn.devices.host import HostDevice
from edgecnn.core.protocol import AgentRequest
from edgecnn.agent.tensorrt_build import engine_reusable
from edgecnn.devices.ssh import SSHTransport, bounded, local_path, remote_path, ssh_error


def req(model, **kw) -> AgentRequest:
    """A quick request: 20 timed runs, one thread."""
    opts = dict(runs=20, warmup=3, min_seconds=0.0, threads=1)
    opts.update({k: (str(v) if isinstance(v, Path) else v) for k, v in kw.items()})
    return AgentRequest(model=str(model), **opts)




@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    need_ssh()
    s = Sshd(tmp_path_factory.mktemp("sshd")).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory)


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("data") / "images with space")


def jetson(sshd, **kw):
    opts = dict(host=sshd.user_host, port=sshd.port, identity=str(sshd.client_key),
                known_hosts=str(sshd.known_hosts))
    opts.update(kw)
    return get_device("jetson", **opts)


def test_agent_over_ssh_matches_host(sshd, model, data):
    with jetson(sshd) as dev:
        res = dev.run(req(model, data=data, outputs="scores.npy"))
    with HostDevice() as h:
        host = h.run(req(model, data=data, outputs="scores.npy"))
    assert res.format == "tflite" and res.latency_ms.n >= 20
    assert res.evaluation.paths == host.evaluation.paths  # mapped back to the local files, so bench can compare
    assert res.evaluation == host.evaluation and res.evaluation.images == 9
    assert np.array_equal(res.outputs, host.outputs)
    assert res.device_detail["host"] == f"{sshd.user_host}:{sshd.port}"


def test_unlabeled_photos_over_ssh_match_the_host(sshd, model, data, tmp_path, monkeypatch):
    """--unlabeled is staged like --data and its paths map back, so bench pairs the board's changes with
    the host reference's; a relative folder too (the host's agent runs in a work folder of its own)."""
    photos = tmp_path / "field"
    photos.mkdir()
    for i, p in enumerate(sorted(data.rglob("*.png"))):
        shutil.copy(p, photos / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    with jetson(sshd) as dev:
        res = dev.run(req(model, unlabeled=Path("field"), latency=False))
    with HostDevice() as h:
        host = h.run(req(model, unlabeled=Path("field"), latency=False))
    assert res.unlabeled == host.unlabeled and len(res.unlabeled.paths) == 9
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in res.unlabeled.paths)


def test_board_paths_map_back_by_their_folder(tmp_path, monkeypatch):
    """The rule the SSH test above exercises, without sshd: data/ and unlabeled/ of the board's work dir
    map back to the same files here, as absolute paths."""
    monkeypatch.chdir(tmp_path)
    r = AgentRequest(model="m.tflite", data="test", unlabeled="field")
    assert local_path("data/cat/a.png", r) == str(tmp_path / "test" / "cat" / "a.png")
    assert local_path("unlabeled/x/b.jpg", r) == str(tmp_path / "field" / "x" / "b.jpg")
    assert local_path("unlabeled", r) == str(tmp_path / "field")


def test_a_relative_data_folder_maps_back_to_the_hosts_paths(sshd, model, data, monkeypatch):
    """bench pairs the board's images with the host reference's: both name them by the same absolute path."""
    monkeypatch.chdir(data.parent)
    relative = Path(data.name)
    with jetson(sshd) as dev:
        res = dev.run(req(model, data=relative, latency=False))
    with HostDevice() as h:
        host = h.run(req(model, data=relative, latency=False))
    assert res.evaluation.paths == host.evaluation.paths
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in res.evaluation.paths)


def test_baseline_timed_in_turns_on_the_board(sshd, model, tmp_path):
    """--baseline travels in its own folder (the same file name as the artifact does not clash)."""
    other = tmp_path / "other"
    other.mkdir()
    twin = other / model.name
    shutil.copyfile(model, twin)
    with jetson(sshd) as dev:
        res = dev.run(req(model, baseline=twin))
    assert res.baseline.artifact == model.name and res.baseline.latency_ms.n >= 20
    assert res.vs_baseline.p50_ratio == pytest.approx(res.latency_ms.p50 / res.baseline.latency_ms.p50)


def test_work_dir_removed_and_nothing_left(sshd, model):
    with jetson(sshd) as dev:
        dev.run(req(model))
        left = dev.transport.shell('ls -d "${TMPDIR:-/tmp}"/edgecnn.* 2>/dev/null | wc -l').stdout.strip()
    assert left == "0"


def test_hostile_file_names_are_not_commands(sshd, model, tmp_path):
    evil_dir = tmp_path / "dir with space; touch PWNED_DIR"
    evil_dir.mkdir()
    evil = evil_dir / "a; touch PWNED.tflite"
    shutil.copyfile(model, evil)
    evil2 = evil_dir / "$(touch PWNED2) `touch PWNED3` 'q\".tflite"
    shutil.copyfile(model, evil2)
    with jetson(sshd) as dev:
        r1 = dev.run(req(evil))
        r2 = dev.run(req(evil2))
        found = dev.transport.shell("find / -xdev -name 'PWNED*' 2>/dev/null | head -n 5").stdout.strip()
    assert r1.artifact == evil.name and r2.artifact == evil2.name
    assert found == ""
    assert not list(Path.home().glob("PWNED*")) and not list(Path("/tmp").glob("PWNED*"))


def test_transport_quotes_every_argument(sshd, tmp_path):
    t = SSHTransport(sshd.user_host, port=sshd.port, identity=sshd.client_key, known_hosts=sshd.known_hosts)
    try:
        c = t.run(["printf", "%s\\n", "a; echo INJECTED", "$(echo X)", "b c"])
        assert c.stdout.splitlines() == ["a; echo INJECTED", "$(echo X)", "b c"]
        src = tmp_path / "in; rm -rf x.bin"
        src.write_bytes(bytes(range(256)) * 10)
        remote = str(tmp_path / "remote copy; echo no.bin")
        t.push(src, remote)
        back = tmp_path / "back.bin"
        t.pull(remote, back)
        assert back.read_bytes() == src.read_bytes()
        assert remote_path("~/.cache/a b") == "\"$HOME\"/'.cache/a b'"
        assert t.shell("echo " + remote_path("~/x y")).stdout.strip() == str(Path.home() / "x y")
    finally:
        t.close()


def test_unreachable_host_is_one_clear_line(sshd, model):
    port = free_port()  # nothing listens there
    with jetson(sshd, port=port) as dev:
        with pytest.raises(DeviceError, match=r"cannot reach .*connection refused"):
            dev.run(req(model))


def test_refused_key_is_one_clear_line(sshd, model):
    with jetson(sshd, identity=str(sshd.other_key)) as dev:
        with pytest.raises(DeviceError, match=r"refused the key \(permission denied\)"):
            dev.run(req(model))


def test_unknown_host_key_then_accept_new(sshd, model, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    with jetson(sshd, known_hosts=str(kh)) as dev:
        with pytest.raises(DeviceError, match=r"host key of .* is not known.*accept_new_host_key"):
            dev.run(req(model))
    with jetson(sshd, known_hosts=str(kh), accept_new_host_key=True) as dev:
        assert dev.run(req(model)).format == "tflite"
    assert sshd.host_key.with_suffix(".pub").read_text().split()[1] in kh.read_text()


def test_changed_host_key_is_refused(sshd, model, tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {(sshd.other_key.with_suffix('.pub')).read_text()}")
    with jetson(sshd, known_hosts=str(kh), accept_new_host_key=True) as dev:
        with pytest.raises(DeviceError, match=r"host key of .* has CHANGED"):
            dev.run(req(model))


def test_missing_python3_and_runtime_on_the_board(sshd, model):
    with jetson(sshd, python="/nonexistent/python3") as dev:
        with pytest.raises(DeviceError, match=r"has no /nonexistent/python3: install python3 on the board"):
            dev.run(req(model))
    bare = "/usr/bin/python3"  # the distribution's python3: no numpy, no LiteRT
    if not Path(bare).is_file() or _imports(bare, "ai_edge_litert"):
        pytest.skip(f"needs a python3 without LiteRT at {bare} to stand for a bare board")
    with jetson(sshd, python=bare) as dev:
        with pytest.raises(DeviceError, match=r"lacks .*ai_edge_litert: /usr/bin/python3 -m pip install .*ai-edge-litert"):
            dev.run(req(model))


def _imports(python: str, module: str) -> bool:
    import subprocess
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def test_bench_over_ssh_first_vs_shared_connection(sshd, model):
    """Wall time of a bench over SSH: a fresh connection, then reusing the master connection."""
    times = []
    with jetson(sshd) as dev:
        for _ in range(3):
            t0 = time.perf_counter()
            dev.run(req(model))
            times.append(time.perf_counter() - t0)
    print(f"\nbench over ssh on loopback: first {times[0]:.2f} s, with connection sharing "
          f"{times[1]:.2f} s / {times[2]:.2f} s")
    t = SSHTransport(sshd.user_host, port=sshd.port, identity=sshd.client_key, known_hosts=sshd.known_hosts)
    try:
        t0 = time.perf_counter()
        t.run(["true"])
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(5):
            t.run(["true"])
        shared = (time.perf_counter() - t0) / 5
        # sharing is checked by asking the master itself, not by timing (this machine is noisy)
        check = subprocess.run([t.ssh, *t.options(), "-O", "check", "--", t.host], capture_output=True, text=True)
        assert check.returncode == 0 and "Master running" in check.stderr, check.stderr
    finally:
        t.close()
    print(f"ssh command: first {first * 1000:.0f} ms, shared {shared * 1000:.0f} ms")
    check = subprocess.run([t.ssh, *t.options(), "-O", "check", "--", t.host], capture_output=True, text=True)
    assert check.returncode != 0, "close() left the master connection running"


# ------------------------------------------------------------------ TensorRT on the board (no board here)
JETSON = {"tensorrt": "8.5.2", "cuda_runtime": "11.4", "gpu": "NVIDIA Jetson Xavier NX Developer Kit",
          "compute_capability": "7.2", "l4t": "# R35 (release), REVISION: 4.1", "jetpack": "5.1.2-b104",
          "machine": "aarch64"}


def test_engine_reuse_decision(tmp_path):
    """The one builder (run on the board by the agent) reuses an engine only for this ONNX and these versions."""
    import json
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    stamp = engine.with_name("m.engine.json")
    stamp.write_text(json.dumps({**JETSON, "onnx_sha256": "abc"}))
    assert engine_reusable(engine, JETSON, "abc")
    assert not engine_reusable(engine, JETSON, "def")                                   # another ONNX
    assert not engine_reusable(engine, {**JETSON, "tensorrt": "8.5.3"}, "abc")          # TensorRT upgrade
    assert not engine_reusable(engine, {**JETSON, "l4t": "# R35 (release), REVISION: 3.1"}, "abc")
    assert not engine_reusable(engine, {**JETSON, "jetpack": "5.1.1"}, "abc")           # JetPack changed
    stamp.write_text("not json")
    assert not engine_reusable(engine, JETSON, "abc")
    stamp.unlink()
    assert not engine_reusable(engine, JETSON, "abc")


def test_remote_agent_run_is_bounded_on_the_board():
    cmd = bounded(["python3", "agent.pyz", "--request", "a; rm -rf ~"], 90.4)
    assert "timeout -k 10 90 python3 agent.pyz --request 'a; rm -rf ~'" in cmd


def test_ssh_error_lines():
    assert "cannot reach h" in ssh_error("ssh: connect to host h port 22: Connection refused", "h", accept_new=False)
    assert "refused the key" in ssh_error("u@h: Permission denied (publickey).", "h", accept_new=False)
    assert "CHANGED" in ssh_error("@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @", "h", accept_new=False)
    assert ssh_error("some other thing", "h", accept_new=False) is None


def test_tensorrt_build_on_a_board():
    pytest.skip("needs a board with TensorRT (a Jetson): TensorRT cannot be installed on these CI machines; "
                "the builder's request, stamps and reuse are tested above")
