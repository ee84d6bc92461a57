"""A device = a transport (push files, run a command, pull files) + how to run the agent there.

Devices are discovered from the modules of this package (any Device subclass with a ``name``),
so adding a device kind is one new file.
"""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgecnnError, InputError

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# What the agent needs on a device: pure Python over numpy, Pillow and one runtime.
AGENT_MODULES = ("__init__.py", "agent.py", "artifact.py", "contract.py", "data.py", "discovery.py", "errors.py",
                 "evaluate.py", "io.py", "runtimes/__init__.py", "runtimes/base.py", "runtimes/litert.py",
                 "runtimes/onnxrt.py", "runtimes/tensorrt.py")


class DeviceError(EdgecnnError):
    """A device that cannot be reached or used: exit 2, one line saying why."""

    exit_code = 2


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


class Transport:
    """Move files to and from a device and run commands on it."""

    def push(self, local: Path, remote: str) -> None:
        raise NotImplementedError

    def pull(self, remote: str, local: Path) -> None:
        raise NotImplementedError

    def run(self, argv: list[str], timeout: float | None = None) -> Completed:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalTransport(Transport):
    def push(self, local: Path, remote: str) -> None:
        import shutil
        Path(remote).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, remote)

    def pull(self, remote: str, local: Path) -> None:
        import shutil
        shutil.copyfile(remote, local)

    def run(self, argv: list[str], timeout: float | None = None, env: dict | None = None) -> Completed:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"command timed out after {timeout:.0f} s: {argv[0]}") from None
        except FileNotFoundError:
            raise DeviceError(f"command not found: {argv[0]}") from None
        return Completed(p.returncode, p.stdout, p.stderr)


def agent_zip() -> bytes:
    """The agent and the modules it imports as a runnable zip (python3 agent.pyz MODEL ...)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rel in AGENT_MODULES:
            z.write(PACKAGE_DIR / rel, f"edgecnn/{rel}")
        z.writestr("__main__.py", "import sys\nfrom edgecnn.agent import main\nsys.exit(main())\n")
    return buf.getvalue()


def parse_agent_output(c: Completed, where: str) -> dict:
    """The agent's JSON (last JSON line of stdout), or a DeviceError/InputError saying why not."""
    for line in reversed(c.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                res = json.loads(line)
            except json.JSONDecodeError:
                break
            if "error" in res:
                cls = InputError if res.get("exit_code") == 2 else EdgecnnError
                raise cls(res["error"])
            return res
    err = (c.stderr.strip().splitlines() or ["no output"])[-1]
    raise DeviceError(f"the agent failed on {where} (exit {c.returncode}): {err[:300]}")


class Device:
    """Base class: subclasses set ``name`` and implement run_agent (and describe)."""

    name = ""
    measures_latency = True
    supports_baseline = False   # can time a second model in turns with the first (agent --baseline)

    def __init__(self, **options):
        self.options = options

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self) -> None:
        pass

    def describe(self) -> dict:
        return {"device": self.name}

    def run_agent(self, artifact: Path, agent_args: list[str], data: Path | None = None,
                  outputs: bool = False, baseline: Path | None = None) -> dict:
        raise NotImplementedError
