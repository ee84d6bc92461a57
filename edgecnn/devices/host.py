"""The local machine: the agent in a fresh Python process that never imports TensorFlow.

It runs the same agent zip a board gets, in isolated mode (``python -I``: no PYTHONPATH, no user
site, not the caller's working directory), from a private temporary folder: a ``numpy.py`` lying
in the user's folder is never imported.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from ..core.protocol import AgentRequest, AgentResult
from .base import DEFAULT_TIMEOUT_S, Capabilities, Device, LocalTransport, agent_zip, run_agent_locally


class HostDevice(Device):
    """Options: timeout (seconds for one agent run)."""

    name = "host"
    capabilities = Capabilities(baseline=True, cpu_pinning=True, unlabeled=True)

    def __init__(self, timeout: float = DEFAULT_TIMEOUT_S, **options):
        super().__init__(**options)
        self.transport = LocalTransport()
        self.timeout = timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecnn-host-")
        self._pyz: Path | None = None

    def close(self) -> None:
        self._tmp.cleanup()

    def describe(self) -> dict:
        return {"device": self.name, "machine": platform.machine(), "cpus": os.cpu_count(),
                "processor": platform.processor() or platform.machine()}

    def agent(self) -> Path:
        if self._pyz is None:
            self._pyz = Path(self._tmp.name) / "agent.pyz"
            self._pyz.write_bytes(agent_zip())
        return self._pyz

    def run(self, request: AgentRequest) -> AgentResult:
        return run_agent_locally(self.transport, [sys.executable, "-I", str(self.agent())], request,
                                 parent=Path(self._tmp.name), env=agent_environment(os.environ),
                                 timeout=self.timeout, where="the host")


def agent_environment(environ) -> dict[str, str]:
    """The agent's environment: the caller's locale, PATH, HOME and the math libraries' thread settings,
    nothing else (a PYTHONPATH, LD_PRELOAD or numpy setting of the caller's shell never reaches the
    measured process)."""
    env = {k: v for k, v in environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME")
           or k.startswith(("OMP_", "OPENBLAS_", "MKL_"))}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env
