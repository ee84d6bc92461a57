"""The emulated phone's Arm64 side: the agent under QEMU user-mode emulation (``qemu-aarch64-static``)
on a named Arm core, with an Arm64 Python and the real LiteRT Arm64 kernels from the sysroot
(edgecnn.emulation.arm64's SYSROOT, built once under the user's cache directory).

Per core, a view of the root (symbolic links) carries an Arm64 /proc/cpuinfo and
/sys/devices/system/cpu files matching the core (see edgecnn.emulation.arm64 on why a core is always
named). The phone-emulated device (edgecnn.devices.emulated) runs the command built here and compares
its class scores with the host's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..core.errors import InputError
from .arm64 import CORES, PYTHON, SYSROOT, cpuinfo_text, ensure, lock, need_tools


def agent_command(agent: Path, core: str, cpus: int, log=print) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run the agent zip `agent` under QEMU on `core` (with `cpus`
    CPUs in its /proc and /sys); the sysroot is built first when it is not there."""
    need_tools("phone-emulated")
    sysroot = ensure(SYSROOT, log)
    view = core_view(sysroot, core, cpus)
    env = {"QEMU_CPU": core, "PYTHONPATH": str(sysroot / "site"), "PYTHONNOUSERSITE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}
    return ["qemu-aarch64-static", "-L", str(view), str(view / PYTHON), str(agent)], env


def core_view(sysroot: Path, core: str, cpus: int = 4) -> Path:
    """A view of root/ (symbolic links) with /proc/cpuinfo and /sys/devices/system/cpu for `core`."""
    if core not in CORES:
        raise InputError(f"unknown Arm core {core!r}; known: {', '.join(CORES)}")
    view = sysroot / "views" / f"{core}-{cpus}"
    if (view / ".ready").is_file():
        return view
    with lock(sysroot / "views.lock"):
        if (view / ".ready").is_file():
            return view
        view.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{view.name}.", dir=view.parent))
        root = sysroot / "root"
        for entry in sorted(os.listdir(root)):
            if entry not in ("proc", "sys"):
                os.symlink(os.path.join("..", "..", "root", entry), tmp / entry)
        (tmp / "proc").mkdir()
        (tmp / "proc" / "cpuinfo").write_text(cpuinfo_text(core, cpus))
        cpu = tmp / "sys" / "devices" / "system" / "cpu"
        cpu.mkdir(parents=True)
        rng = f"0-{cpus - 1}\n" if cpus > 1 else "0\n"
        for name, text in (("possible", rng), ("present", rng), ("online", rng), ("kernel_max", f"{max(cpus - 1, 0)}\n")):
            (cpu / name).write_text(text)
        (tmp / ".ready").write_text(core + "\n")
        if view.exists():
            shutil.rmtree(view)
        os.rename(tmp, view)
    return view
