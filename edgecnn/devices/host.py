"""The local machine: the agent in a fresh Python process that never imports TensorFlow.

It runs the same agent zip a board gets, in isolated mode (``python -I``: no PYTHONPATH, no user
site, not the caller's working directory), from a private temporary folder: a ``numpy.py`` lying
in the user's folder is never imported.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import tempfile
from pathlib import Path

from ..agent.protocol import AgentRequest, AgentResult
from .base import DEFAULT_TIMEOUT_S, Capabilities, Device, LocalTransport, agent_zip, read_agent_result


class HostDevice(Device):
    """Options: timeout (seconds for one agent run)."""

    name = "host"
    capabilities = Capabilities(baseline=True, cpu_pinning=True)

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
        with tempfile.TemporaryDirectory(prefix="run-", dir=self._tmp.name) as work:
            work = Path(work)
            absolute = {k: str(Path(v).absolute()) for k in ("model", "data", "baseline")
                        if (v := getattr(request, k)) is not None}
            outputs = work / "outputs.npy" if request.outputs else None
            req = dataclasses.replace(request, **absolute, outputs=str(outputs) if outputs else None)
            (work / "request.json").write_text(req.to_json())
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")
                   or k.startswith(("OMP_", "OPENBLAS_", "MKL_"))}
            env["TF_CPP_MIN_LOG_LEVEL"] = "2"
            c = self.transport.run([sys.executable, "-I", str(self.agent()), "--request", "request.json",
                                    "--result", "result.json"], timeout=self.timeout, env=env, cwd=work)
            result_file = work / "result.json"
            res = read_agent_result(c, result_file.read_text() if result_file.is_file() else None, "the host")
            if outputs is not None and outputs.is_file():
                import numpy as np
                res = dataclasses.replace(res, outputs=np.load(outputs))
            return res
