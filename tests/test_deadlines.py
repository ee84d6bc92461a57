"""Every deadline comes from its own option and ends what it bounds: the host agent's --timeout (through
the CLI and the device registry), the emulated phone's and the phone's, and the board's own bound on an
agent run (coreutils timeout, whose exit status the jetson device reads as "stopped at the deadline").
Over a real sshd: tests/test_bad_inputs.py (a board that hangs, an agent over its deadline)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from devices_helpers import shared_tiny_model
from edgecnn.core.protocol import AgentRequest
from edgecnn.cli import main
from edgecnn.devices import get_device
from edgecnn.core.errors import DeviceError
from edgecnn.devices.base import DEFAULT_TIMEOUT_S
from edgecnn.devices.ssh import DEADLINE_EXITS, bounded

LONG = dict(runs=100000, warmup=0, min_seconds=3600.0)     # far longer than any deadline below


def test_the_host_agent_is_stopped_at_its_timeout(tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    with get_device("host", timeout=2) as d:
        assert d.timeout == 2
        with pytest.raises(DeviceError, match=r"^command timed out after 2 s: python"):
            d.run(AgentRequest(model=str(model), **LONG))
    with get_device("host") as d:
        assert d.timeout == DEFAULT_TIMEOUT_S


def test_bench_timeout_reaches_the_host_agent(tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    r = CliRunner().invoke(main, ["bench", str(model), "--runs", str(LONG["runs"]), "--warmup", "0",
                                  "--min-seconds", "3600", "--timeout", "2"])
    assert r.exit_code == 2, r.output
    assert r.output.strip().splitlines()[-1].startswith("Error: host could not be benched: command timed out after 2 s: python")


def test_the_emulated_phone_and_its_host_side_share_its_timeout():
    with get_device("phone-emulated", timeout=7, log=lambda m: None) as d:
        assert (d.timeout, d.host.timeout) == (7, 7)
    with get_device("phone-emulated", log=lambda m: None) as d:
        assert (d.timeout, d.host.timeout) == (DEFAULT_TIMEOUT_S, DEFAULT_TIMEOUT_S)


def test_the_phones_transport_takes_the_phones_timeout():
    with get_device("phone", adb=sys.executable, timeout=9) as d:     # any executable stands for the adb path here
        assert d.transport.timeout == 9
    with get_device("phone", adb=sys.executable) as d:
        assert d.transport.timeout == 600


def _run_bounded(argv: list[str], seconds: float) -> int:
    return subprocess.run(["sh", "-c", bounded(argv, seconds)], capture_output=True, timeout=60).returncode


def test_a_bounded_command_keeps_its_status_and_one_past_its_deadline_reads_as_stopped():
    assert _run_bounded(["true"], 5) == 0
    assert _run_bounded(["sh", "-c", "exit 3"], 5) == 3
    stopped = _run_bounded(["sleep", "30"], 1)
    assert stopped == 124 and stopped in DEADLINE_EXITS
    assert 0 not in DEADLINE_EXITS and 3 not in DEADLINE_EXITS and 128 + 9 in DEADLINE_EXITS
