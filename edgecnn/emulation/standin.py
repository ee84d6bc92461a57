"""A stand-in Arm64 board on loopback: try ``--device jetson`` end to end without a Jetson.

An Arm64 Debian userland (edgecnn.emulation.arm64's BOARD root: python3, numpy, Pillow, LiteRT and ONNX Runtime
for aarch64) runs its own OpenSSH server on 127.0.0.1; every binary in it runs under QEMU user-mode
emulation pinned to a named Arm core. To the SSH device it is a board like any other: it connects,
probes, pushes the agent, runs it on the board's aarch64 Python and pulls the result. The board says
it is emulated (protocol.BoardEmulation in /etc/edgecnn/emulated.json), and bench marks its latencies
so: they are this emulation's (50-90x slower than the host), not a Jetson's.

How (all undone by :func:`stop`):
- **binfmt_misc** (mounted if it is not) gets one entry, ``edgecnn-aarch64``, for aarch64 ELF files,
  flags ``FP`` (the interpreter is opened now, so it works inside the chroot; argv[0] is kept). The
  interpreter is a tiny static program built here with the C compiler: it runs
  ``qemu-aarch64-static -cpu CORE``. QEMU's CPU cannot come from the environment: sshd clears it,
  and QEMU's default ``max`` CPU gives wrong INT8 results. Debian's own qemu-user-static entry has no
  way to pass ``-cpu``; this is the one piece of hand-written native code in the project, 20 lines.
  A later entry for the same magic wins, so the board checks the CPU its processes really get.
- **mounts** in the root: a fresh proc (with a generated Arm64 /proc/cpuinfo bound over its cpuinfo:
  QEMU passes the host's x86 text through and LiteRT's CPU detection crashes on it), sysfs, /dev and
  a private devpts.
- **sshd** from the root (``chroot ROOT /usr/sbin/sshd -D``), key-only, on 127.0.0.1:PORT, with its
  own host key; the client key and a known_hosts line are in the board's folder.

State (a typed, versioned :class:`BoardState`, board.json in the board's folder) records what start
did, so ``stop`` (another process, later) undoes exactly that. Needs root (mounts, binfmt_misc,
chroot); where binfmt_misc cannot be used (a container without the privilege, a kernel without it)
start refuses with the reason, as :class:`Unavailable`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..core.errors import DeviceError
from ..core.io import atomic_write_text
from ..core.protocol import BOARD_EMULATION_FILE, BoardEmulation, Message, ProtocolError
from . import arm64

BINFMT = Path("/proc/sys/fs/binfmt_misc")
ENTRY = "edgecnn-aarch64"
DEFAULT_PORT = 2223
DEFAULT_CORE = "cortex-a76"
USER = "root"
# aarch64 ELF executables, as QEMU's own binfmt configuration matches them
MAGIC = r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00"
MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"
# Linux arm64 HWCAP bits (asm/hwcap.h): what the emulated CPU must and must not have
HWCAP_ASIMDDP, HWCAP_SVE = 1 << 20, 1 << 22

WRAPPER_C = r"""
/* binfmt_misc interpreter (flags FP): argv = [this, path of the program, its argv[0], its arguments...].
   Runs the program under QEMU pinned to one Arm core. */
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) { fputs("run by binfmt_misc only\n", stderr); return 127; }
    char *args[argc + 5];
    int n = 0;
    args[n++] = "%(qemu)s"; args[n++] = "-cpu"; args[n++] = "%(core)s";
    args[n++] = "-0"; args[n++] = argv[2]; args[n++] = argv[1];
    for (int i = 3; i < argc; i++) args[n++] = argv[i];
    args[n] = 0;
    execv(args[0], args);
    perror(args[0]);
    return 127;
}
"""


class Unavailable(DeviceError):
    """This machine cannot host the stand-in board (no root, no binfmt_misc, a missing tool)."""


@dataclass(frozen=True)
class BoardState(Message):
    """What `start` did, read back by `stop` and `status` (possibly another process)."""

    SCHEMA: ClassVar[str] = "edgecnn.standin-board/1"
    port: int
    pid: int                      # sshd in the root (the chroot'd process, running under QEMU)
    core: str
    root: str
    identity: str                 # the client key
    known_hosts: str              # the board's host key, for 127.0.0.1:port
    mounted_binfmt_misc: bool     # start mounted binfmt_misc (stop unmounts it again)
    built_s: float | None         # time to build the root in this start, None when it was cached
    start_s: float                # time from start to a board answering over SSH

    @property
    def host(self) -> str:
        return f"{USER}@127.0.0.1"

    def device_options(self) -> dict:
        """The jetson device's options for this board."""
        return {"host": self.host, "port": self.port, "identity": self.identity, "known_hosts": self.known_hosts}

    def summary(self) -> str:
        """Where the board runs and the bench command that reaches it."""
        return (f"board running: {self.host} port {self.port} ({self.core}, emulated)\n"
                f"  edgecnn bench MODEL --device jetson --host {self.host} --port {self.port} "
                f"--identity {shlex.quote(self.identity)} --known-hosts {shlex.quote(self.known_hosts)} --data FOLDER")


def _state_file() -> Path:
    return arm64.BOARD.folder().with_name("arm64-board.json")


def _state_lock() -> Path:
    return arm64.BOARD.folder().with_name("arm64-board.state.lock")


# ------------------------------------------------------------------------------ public steps
def check_usable() -> None:
    """Refuse, with the reason, where the board cannot run (before anything is built or changed)."""
    if platform.system() != "Linux":
        raise Unavailable("the stand-in board needs Linux (binfmt_misc, chroot)")
    if os.geteuid() != 0:
        raise Unavailable("the stand-in board needs root: it mounts file systems, registers an interpreter in "
                          "binfmt_misc and chroots (run it as root, e.g. in a disposable VM or container)")
    try:
        arm64.need_tools("the stand-in board")
    except arm64.BuildError as e:
        raise Unavailable(str(e)) from None
    missing = [t for t in ("chroot", "mount", "umount", "ssh", "ssh-keygen") if not shutil.which(t)]
    if missing:
        raise Unavailable(f"the stand-in board needs {', '.join(missing)}: apt-get install coreutils mount "
                          f"openssh-client (.ci/devices-deps.sh)")
    if not _compiler():
        raise Unavailable("the stand-in board needs a C compiler with a static C library for its 20-line QEMU "
                          "launcher: apt-get install gcc libc6-dev")
    if not BINFMT.is_dir():
        raise Unavailable(f"this kernel has no binfmt_misc ({BINFMT} missing): aarch64 programs cannot run "
                          f"transparently here")


def status() -> BoardState | None:
    """The running board, or None (also when its state file says it runs but its sshd is gone)."""
    s = _read_state()
    if s is None:
        return None
    if _alive(s.pid) and _port_open(s.port):
        return s
    return None


def build(log=print) -> Path:
    """The board's root, built once (4-5 minutes on 2 cores; needs binfmt_misc while it is built)."""
    check_usable()
    if arm64.ready(arm64.BOARD):
        return arm64.BOARD.folder()
    with _binfmt(DEFAULT_CORE):
        return arm64.ensure(arm64.BOARD, log)


def start(port: int = DEFAULT_PORT, core: str = DEFAULT_CORE, cpus: int | None = None, log=print) -> BoardState:
    """Build (once) and start the board; it runs until stop(). Refuses when one is already running."""
    check_usable()
    if core not in arm64.CORES:
        raise Unavailable(f"unknown Arm core {core!r}; known: {', '.join(arm64.CORES)}")
    with arm64.lock(_state_lock()):
        running = status()
        if running is not None:
            raise DeviceError(f"a stand-in board is already running on 127.0.0.1:{running.port} "
                              f"(edgecnn board stop)")
        _clean_stale(log)
        t0 = time.perf_counter()
        mounted = _binfmt_on(core)
        try:
            built_s = None
            if not arm64.ready(arm64.BOARD):
                arm64.ensure(arm64.BOARD, log)
                built_s = round(time.perf_counter() - t0, 1)
            t1 = time.perf_counter()
            root = arm64.BOARD.root()
            _mount_all(root, core, cpus or min(4, os.cpu_count() or 1))
            keys = _keys(root, port)
            _declare(root, core)
            pid = _start_sshd(root, port)
            state = BoardState(port=port, pid=pid, core=core, root=str(root), identity=str(keys["identity"]),
                               known_hosts=str(keys["known_hosts"]), mounted_binfmt_misc=mounted,
                               built_s=built_s, start_s=0.0)
            _check_cpu(state)
            state = dataclasses.replace(state, start_s=round(time.perf_counter() - t1, 2))
            atomic_write_text(_state_file(), state.to_json())
        except BaseException:
            _undo(arm64.BOARD.root(), mounted, pid=None, log=log)
            _state_file().unlink(missing_ok=True)
            raise
    log(f"board: Arm64 ({core}, emulated) on 127.0.0.1:{port}, answering over SSH "
        f"{state.start_s:.1f} s after start" + (f" (root built in {built_s:.0f} s)" if built_s else ""))
    return state


def stop(log=print) -> dict:
    """Stop the board and undo what start did: processes ended, mounts gone, binfmt entry removed."""
    with arm64.lock(_state_lock()):
        s = _read_state()
        root = Path(s.root) if s else arm64.BOARD.root()
        left = _undo(root, s.mounted_binfmt_misc if s else False, pid=s.pid if s else None, log=log)
        _state_file().unlink(missing_ok=True)
    return left


def leftovers(root: Path | None = None) -> dict:
    """What of a board is still on this machine: processes in the root, mounts under it, our binfmt entry."""
    root = Path(root or arm64.BOARD.root())
    return {"processes": _processes_in(root), "mounts": arm64.mounts_below(root),
            "binfmt_entry": (BINFMT / ENTRY).exists()}


# ------------------------------------------------------------------------------ binfmt_misc
def _compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def _wrapper(core: str) -> Path:
    """The static QEMU launcher for `core`, compiled once into the board's cache folder."""
    out = arm64.BOARD.folder().with_name(f"arm64-board-qemu-{core}")
    if out.is_file():
        return out
    src = out.with_suffix(".c")
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text(WRAPPER_C % {"qemu": "/" + arm64.QEMU_IN_ROOT, "core": core})
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    arm64.run([_compiler(), "-static", "-O2", "-o", str(tmp), str(src)], "compiling the QEMU launcher", timeout=120)
    os.replace(tmp, out)
    return out


def _binfmt_on(core: str) -> bool:
    """binfmt_misc mounted (True when this call mounted it) and our entry registered, last."""
    mounted = False
    if not (BINFMT / "register").exists():
        p = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            why = (p.stderr.strip().splitlines() or ["mount failed"])[0].rstrip(".")
            raise Unavailable(f"binfmt_misc cannot be mounted here ({why}): "
                              f"aarch64 programs cannot run transparently (a container needs the privilege)")
        mounted = True
    try:
        if (BINFMT / ENTRY).exists():
            (BINFMT / ENTRY).write_text("-1")
        line = f":{ENTRY}:M::{MAGIC}:{MASK}:{_wrapper(core)}:FP"
        try:
            (BINFMT / "register").write_text(line)
        except OSError as e:
            raise Unavailable(f"cannot register an interpreter in binfmt_misc ({e.strerror})") from None
        if (BINFMT / "status").read_text().strip() != "enabled":
            raise Unavailable("binfmt_misc is disabled on this machine (/proc/sys/fs/binfmt_misc/status)")
    except BaseException:
        _binfmt_off(mounted)
        raise
    return mounted


def _binfmt_off(mounted: bool) -> None:
    if (BINFMT / ENTRY).exists():
        (BINFMT / ENTRY).write_text("-1")
    if mounted and (BINFMT / "register").exists():
        subprocess.run(["umount", str(BINFMT)], capture_output=True, timeout=30)


@contextlib.contextmanager
def _binfmt(core: str):
    """binfmt_misc on for a block (the root's build), off again after it."""
    mounted = _binfmt_on(core)
    try:
        yield
    finally:
        _binfmt_off(mounted)


# ------------------------------------------------------------------------------ the root
def _mount_all(root: Path, core: str, cpus: int) -> None:
    """proc (with an Arm64 cpuinfo over it), sysfs, /dev and a private devpts inside the root."""
    cpuinfo = arm64.BOARD.folder() / f"cpuinfo-{core}-{cpus}"
    cpuinfo.write_text(arm64.cpuinfo_text(core, cpus))
    steps = [(["-t", "proc", "proc"], "proc"), (["-t", "sysfs", "sysfs"], "sys"), (["--bind", "/dev"], "dev"),
             (["-t", "devpts", "-o", "newinstance,ptmxmode=0666", "devpts"], "dev/pts"),
             (["--bind", str(cpuinfo)], "proc/cpuinfo")]
    for args, where in steps:
        target = root / where
        if where != "proc/cpuinfo":
            target.mkdir(parents=True, exist_ok=True)
        arm64.run(["mount", *args, str(target)], f"mounting {where} in the board", timeout=30)
    arm64.install_qemu(root)


def _keys(root: Path, port: int) -> dict:
    """The board's host key and our client key (made once), authorized, and a known_hosts for the port."""
    base = arm64.BOARD.folder()
    host_key, client = root / "etc/ssh/ssh_host_ed25519_key", base / "client_key"
    for key in (host_key, client):
        if not key.is_file():
            arm64.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgecnn stand-in board", "-f", str(key)],
                      "ssh-keygen", timeout=60)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_text(ssh_dir / "authorized_keys", client.with_suffix(".pub").read_text())
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    known = base / "known_hosts"
    pub = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    atomic_write_text(known, f"[127.0.0.1]:{port} {pub}\n")
    (root / "etc/ssh/edgecnn-board.conf").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PermitRootLogin prohibit-password", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "PidFile /run/sshd.pid", "MaxStartups 50",
        "MaxSessions 50", "UseDNS no", "LogLevel ERROR", ""]))
    return {"identity": client, "known_hosts": known}


def _declare(root: Path, core: str) -> None:
    """The board's own statement that it is emulated, read by the SSH device's probe."""
    decl = BoardEmulation(emulator=f"{arm64.qemu_version()} (user mode)", cpu=core, host_machine=platform.machine())
    path = root / BOARD_EMULATION_FILE.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, decl.to_json())


def _start_sshd(root: Path, port: int, timeout: float = 90) -> int:
    """The root's sshd, in its own session (it outlives this process); its pid once the port answers."""
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)
    log = arm64.BOARD.folder() / "sshd.log"
    with open(log, "wb") as out:
        p = subprocess.Popen(["chroot", str(root), "/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/edgecnn-board.conf"],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(port):
            return p.pid
        if p.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()
            raise DeviceError(f"board: sshd exited ({p.returncode}): {(tail or ['no output'])[-1][:300]}")
        time.sleep(0.1)
    p.kill()
    raise DeviceError(f"board: sshd did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _check_cpu(state: BoardState) -> None:
    """The board's processes really run on the named core (another binfmt entry could have won): asked
    over SSH with the board's own key and host key, as the jetson device will reach it."""
    probe = ("import struct, platform\n"
             "a = open('/proc/self/auxv', 'rb').read()\n"
             "v = dict(struct.iter_unpack('<QQ', a))\n"
             "print(platform.machine(), v.get(16, 0))")
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={state.known_hosts}", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
            "-i", state.identity, "-p", str(state.port), "--", state.host, "python3 -c " + shlex.quote(probe)]
    try:
        c = subprocess.run(argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DeviceError("board: python3 did not answer over SSH within 120 s") from None
    except FileNotFoundError:
        raise DeviceError("board: no ssh client (apt-get install openssh-client)") from None
    parts = c.stdout.split()
    if c.returncode != 0 or len(parts) != 2:
        raise DeviceError(f"board: python3 does not run over SSH: {(c.stderr.strip().splitlines() or ['?'])[-1]}")
    machine, hwcap = parts[0], int(parts[1])
    want_dp = "asimddp" in arm64.CORES[state.core]["features"]
    if machine != "aarch64" or bool(hwcap & HWCAP_ASIMDDP) != want_dp or hwcap & HWCAP_SVE:
        raise DeviceError(f"board: its processes do not run on an emulated {state.core} (machine {machine}, "
                          f"HWCAP {hwcap:#x}): another aarch64 binfmt_misc entry may take precedence")


# ------------------------------------------------------------------------------ undo
def _undo(root: Path, mounted_binfmt: bool, pid: int | None, log) -> dict:
    """End every process in the root, unmount everything under it, remove the binfmt entry."""
    if pid is not None and _alive(pid):
        _end([pid])
    _end(_processes_in(root))
    arm64.unmount_below(root)
    _binfmt_off(mounted_binfmt)
    left = leftovers(root)
    if any(left.values()):
        log(f"board: could not undo everything: {left}")
    return left


def _clean_stale(log) -> None:
    """A board whose state says it runs but is gone (a crash, a reboot): its leftovers removed first."""
    s = _read_state()
    if s is not None or any(leftovers().values()):
        log("board: cleaning up after a board that did not stop cleanly")
        _undo(Path(s.root) if s else arm64.BOARD.root(), s.mounted_binfmt_misc if s else False,
              pid=s.pid if s else None, log=log)
        _state_file().unlink(missing_ok=True)


def _processes_in(root: Path) -> list[int]:
    """Processes whose root directory is `root` (the board's sshd, its sessions, agents)."""
    real = os.path.realpath(root)
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/root") == real:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _end(pids: list[int], grace: float = 5) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            return


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)   # reap it when it is our child
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _read_state() -> BoardState | None:
    try:
        return BoardState.from_json(_state_file().read_text(), str(_state_file()))
    except FileNotFoundError:
        return None
    except ProtocolError:   # a state file of another version: treated as none (leftovers are still cleaned)
        return None
