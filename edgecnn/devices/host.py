"""The local machine: the agent in a fresh Python process that never imports TensorFlow."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from pathlib import Path

from .base import Device, LocalTransport, parse_agent_output


class HostDevice(Device):
    name = "host"
    supports_baseline = True

    def __init__(self, **options):
        super().__init__(**options)
        self.transport = LocalTransport()

    def describe(self) -> dict:
        return {"device": self.name, "machine": platform.machine(), "cpus": os.cpu_count(),
                "processor": platform.processor() or platform.machine()}

    def run_agent(self, artifact: Path, agent_args: list[str], data: Path | None = None,
                  outputs: bool = False, baseline: Path | None = None) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgecnn-agent-") as tmp:
            argv = [sys.executable, "-m", "edgecnn.agent", str(artifact), *agent_args]
            if data is not None:
                argv += ["--data", str(data)]
            if baseline is not None:
                argv += ["--baseline", str(baseline)]
            out_file = Path(tmp) / "outputs.npy"
            if outputs:
                argv += ["--outputs", str(out_file)]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                   "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                  os.environ.get("PYTHONPATH", "")])}
            res = parse_agent_output(self.transport.run(argv, env=env), "the host")
            if outputs and out_file.is_file():
                import numpy as np
                res["outputs"] = np.load(out_file)
            return res
