"""The jetson device's rules without a board: every deadline comes from its own option, the ssh command
line carries exactly the options asked for, remote arguments are quoted, a board's paths map back to
the host's files, and each OpenSSH failure is one line. The same over a real sshd on loopback:
tests/test_devices_ssh.py and tests/test_bad_inputs.py (need OpenSSH)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from edgecnn.core.errors import InputError
from edgecnn.core.protocol import AgentRequest
from edgecnn.devices.base import DEFAULT_TIMEOUT_S
from edgecnn.devices.ssh import SSHTransport, bounded, local_path, q, remote_path, ssh_error

# The transport is given an executable that exists everywhere in place of the OpenSSH client: only its
# command line is looked at here, nothing is run.
EXE = sys.executable


def _opts(argv: list[str]) -> dict[str, str]:
    """-o KEY=VALUE pairs of an ssh command line."""
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")


def _transport(**kw) -> SSHTransport:
    return SSHTransport(kw.pop("host", "u@board"), ssh=EXE, **kw)


def test_the_command_line_carries_each_option_from_its_own_setting(tmp_path):
    key = tmp_path / "id"
    key.write_text("k")
    t = _transport(port=2222, identity=key, known_hosts=tmp_path / "kh", connect_timeout=7.9, persist_s=45,
                   command_timeout=123)
    try:
        argv = t.argv("true")
        assert argv[0] == EXE and argv[-3:] == ["--", "u@board", "true"]
        o = _opts(argv)
        assert o == {"BatchMode": "yes", "ConnectTimeout": "7", "ControlMaster": "auto",
                     "ControlPath": o["ControlPath"], "ControlPersist": "45", "StrictHostKeyChecking": "yes",
                     "ServerAliveInterval": "15", "ServerAliveCountMax": "4", "LogLevel": "ERROR",
                     "UserKnownHostsFile": str(tmp_path / "kh"), "IdentitiesOnly": "yes"}
        ctl = Path(o["ControlPath"])
        assert ctl.name == "%C" and ctl.parent.is_dir() and ctl.parent.stat().st_mode & 0o777 == 0o700
        assert argv[argv.index("-i") + 1] == str(key) and argv[argv.index("-p") + 1] == "2222"
        assert t.command_timeout == 123 and t.where == "u@board:2222"
    finally:
        t.close()
    assert not ctl.parent.exists()                          # close() removes the private folder


def test_options_left_out_are_not_on_the_command_line():
    t = _transport(connect_timeout=3, accept_new_host_key=True)
    try:
        argv = t.argv("true")
        o = _opts(argv)
        assert o["StrictHostKeyChecking"] == "accept-new" and o["ConnectTimeout"] == "3"
        assert "UserKnownHostsFile" not in o and "IdentitiesOnly" not in o
        assert "-i" not in argv and "-p" not in argv
        assert t.command_timeout == 600 and t.persist_s == 60 and t.where == "u@board"
    finally:
        t.close()


def test_a_transport_refuses_what_is_not_a_host_or_a_key(tmp_path):
    with pytest.raises(InputError, match=r"^the jetson device needs a host: --host USER@HOST$"):
        SSHTransport("", ssh=EXE)
    with pytest.raises(InputError, match=r"^not a host name: '-oProxyCommand=x'$"):
        SSHTransport("-oProxyCommand=x", ssh=EXE)
    with pytest.raises(InputError, match=r"^identity file not found: .*nokey$"):
        SSHTransport("u@b", ssh=EXE, identity=tmp_path / "nokey")


@pytest.mark.parametrize("seconds,limit", [(90.4, 90), (90.9, 90), (1.0, 1), (0.2, 1), (0, 1), (600, 600)])
def test_an_agent_run_is_ended_by_the_board_at_its_deadline(seconds, limit):
    argv = ["python3", "agent.pyz", "--request", "a b; rm -rf ~"]
    cmd = " ".join(shlex.quote(a) for a in argv)
    assert bounded(argv, seconds) == (f"if command -v timeout >/dev/null 2>&1; then timeout -k 10 {limit} {cmd}; "
                                      f"else {cmd}; fi")


def test_remote_arguments_are_quoted_and_only_a_leading_home_expands():
    assert q("a; touch x") == "'a; touch x'" and q(Path("/w/m.tflite")) == "/w/m.tflite"
    assert remote_path("~") == '"$HOME"'
    assert remote_path("~/.cache/e dge") == '"$HOME"/' + "'.cache/e dge'"
    assert remote_path("/tmp/~/x") == "'/tmp/~/x'" and remote_path("~x") == "'~x'"
    assert remote_path("$(reboot)") == "'$(reboot)'"


def test_board_paths_map_back_to_the_folder_each_came_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    req = AgentRequest(model="m.tflite", data="photos/test", unlabeled=str(tmp_path / "field"))
    assert local_path("data/rust/1.png", req) == str(tmp_path / "photos" / "test" / "rust" / "1.png")
    assert local_path("data/a/b/c.jpg", req) == str(tmp_path / "photos" / "test" / "a" / "b" / "c.jpg")
    assert local_path("unlabeled/x.jpg", req) == str(tmp_path / "field" / "x.jpg")
    assert local_path("unlabeled", req) == str(tmp_path / "field")
    assert local_path("data", req) == str(tmp_path / "photos" / "test")
    # a class folder named like the other field stays under data/
    assert local_path("data/unlabeled/y.png", req) == str(tmp_path / "photos" / "test" / "unlabeled" / "y.png")


@pytest.mark.parametrize("stderr,says", [
    ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@",
     "the host key of b:22 has CHANGED since it was recorded in known_hosts: if the board was re-installed, "
     "remove the old key (ssh-keygen -R HOST), else do not connect"),
    ("Host key for [127.0.0.1]:22 has changed and you have requested strict checking.",
     "the host key of b:22 has CHANGED since"),
    ("Host key verification failed.",
     "the host key of b:22 is not known: connect once with ssh to check and record it or pass accept_new_host_key "
     "(--accept-new-host-key) to trust it on first use"),
    ("u@b: Permission denied (publickey).",
     "b:22 refused the key (permission denied): check the identity file (--identity), the user name and the "
     "board's ~/.ssh/authorized_keys"),
    ("ssh: connect to host b port 22: Connection refused",
     "cannot reach b:22: connection refused (is the board on, sshd running, the port right?)"),
    ("ssh: connect to host b port 22: Connection timed out", "cannot reach b:22: connection timed out ("),
    ("ssh: connect to host b port 22: No route to host", "cannot reach b:22: no route to host ("),
    ("ssh: connect to host b port 22: Network is unreachable", "cannot reach b:22: network unreachable ("),
    ("ssh: Could not resolve hostname b: Name or service not known", "cannot reach b:22: unknown host name ("),
    ("Connection closed by 127.0.0.1 port 22", "cannot reach b:22: connection closed by the remote side ("),
    ("Connection reset by peer", "cannot reach b:22: connection reset ("),
    ("Load key \"/k\": invalid format\n", 'cannot use the identity file for b:22: Load key "/k": invalid format'),
    ("No ED25519 host key is known for [b]:22 and you have requested strict checking.",
     "the host key of b:22 is not known: connect once with ssh"),
    ("No ECDSA host key is known for b", "the host key of b:22 is not known: connect once with ssh"),
    ("ssh: b: Name or service not known", "cannot reach b:22: unknown host name ("),
    ("Warning: Identity file /k not accessible: No such identity\nu@b: no such identity: /k: No such file",
     "cannot use the identity file for b:22: u@b: no such identity: /k: No such file"),
    ("kex_exchange_identification: banner line contains invalid characters", None),
])
def test_each_openssh_failure_is_one_line(stderr, says):
    got = ssh_error(stderr, "b:22", accept_new=False)
    if says is None:
        assert got is None
    else:
        assert got is not None and got.startswith(says) and "\n" not in got


def test_an_identity_failure_quotes_its_last_line_up_to_200_characters():
    got = ssh_error("Load key \"/k\": " + "x" * 400 + "\n", "b", accept_new=False)
    assert got == "cannot use the identity file for b: " + ('Load key "/k": ' + "x" * 400)[:200]


def test_a_host_key_hint_is_left_out_once_new_keys_are_accepted():
    assert ssh_error("Host key verification failed.", "b", accept_new=True) == (
        "the host key of b is not known: connect once with ssh to check and record it")


@pytest.mark.needs_tools("ssh-client")
def test_the_devices_deadlines_come_from_its_options():
    """--timeout bounds one agent run and every transfer; connect_timeout only the connection."""
    from edgecnn.devices.ssh import JetsonDevice
    with JetsonDevice(host="u@b", timeout=77, connect_timeout=5) as d:
        assert (d.timeout, d.transport.command_timeout, d.transport.connect_timeout) == (77, 77, 5)
        assert _opts(d.transport.argv("true"))["ConnectTimeout"] == "5"
    key = Path(__file__)                                # any file stands for the identity here
    with JetsonDevice(host="u@b", port=2200, identity=str(key), known_hosts="/kh", accept_new_host_key=True,
                      python="/opt/py3", max_data_mb=5) as d:
        argv = d.transport.argv("true")
        o = _opts(argv)
        assert (argv[argv.index("-p") + 1], argv[argv.index("-i") + 1]) == ("2200", str(key))
        assert (o["UserKnownHostsFile"], o["StrictHostKeyChecking"]) == ("/kh", "accept-new")
        assert (d.transport.where, d.python, d.max_data_mb) == ("u@b:2200", "/opt/py3", 5)
        assert d.options == {"host": "u@b", "port": 2200, "identity": str(key), "accept_new_host_key": True,
                             "known_hosts": "/kh"}
    with JetsonDevice(host="u@b") as d:
        assert (d.timeout, d.transport.command_timeout, d.transport.connect_timeout) == (DEFAULT_TIMEOUT_S,
                                                                                        DEFAULT_TIMEOUT_S, 10)
        assert d.max_data_mb == 256 and d.python == "python3"


def test_the_boards_probe_reports_python_its_machine_and_which_modules_import():
    """The probe is a remote shell command line; run here by sh it reports this machine's python3 the way a
    board reports its own (the same over sshd: test_missing_python3_and_runtime_on_the_board)."""
    import json
    import platform
    import subprocess

    from edgecnn.devices.ssh import PIP_NAMES, probe_command
    out = subprocess.run(["sh", "-c", probe_command(sys.executable)], capture_output=True, text=True,
                         timeout=120).stdout
    got = json.loads(next(ln for ln in out.splitlines() if ln.startswith("{")))
    assert set(got) == {"python", "machine", "modules", "emulation"}
    assert (got["python"], got["machine"]) == (platform.python_version(), platform.machine())
    assert set(got["modules"]) == set(PIP_NAMES)
    import numpy
    assert got["modules"]["numpy"] == numpy.__version__
    missing = subprocess.run(["sh", "-c", probe_command("/nonexistent/python3")], capture_output=True, text=True,
                             timeout=60)
    assert (missing.returncode, missing.stdout.strip()) == (0, "EDGECNN_NO_PYTHON3")
