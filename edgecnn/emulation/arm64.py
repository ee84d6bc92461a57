"""Arm64 Debian userlands for emulated devices, built once per machine and cached.

One builder serves both emulated Arm64 targets of the project:

* the emulated phone's **sysroot** (:data:`SYSROOT`): Debian's packages *unpacked* (``dpkg -x``),
  no binary of the root ever runs while it is built, so it needs neither root privileges (fakeroot
  does) nor binfmt_misc; QEMU runs Python from it with ``-L``;
* the stand-in **board** (:data:`BOARD`, edgecnn.emulation.standin): a root *installed* by debootstrap's
  second stage run under emulation (dpkg configures every package, so sshd and its users exist),
  which needs aarch64 binaries to run transparently (binfmt_misc, registered by the board first).

Both: ``debootstrap --foreign --variant=minbase --arch=arm64`` from the Debian mirror this machine's
apt uses, then the aarch64 wheels of the agent's packages (the host's versions, so both sides run
the same LiteRT, ONNX Runtime and numpy) by the host's pip (``--target``, ``--platform``). A root is
built in a partial folder under a lock and renamed into place; a version stamp says it is whole.

The Arm cores an emulated target can be pinned to are listed in :data:`CORES`, with the
/proc/cpuinfo text the Linux kernel prints on them: QEMU 7.2 passes the host's x86 cpuinfo through
(LiteRT's CPU detection crashes on it), and QEMU's default ``max`` CPU gives wrong INT8 results, so
a core is always named.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.errors import DeviceError
from ..paths import user_cache

SUITE = "bookworm"
PYTHON = "usr/bin/python3.11"
PYTHON_VERSION = "3.11"
APT_PACKAGES = "qemu-user-static debootstrap"
QEMU_IN_ROOT = "usr/bin/qemu-aarch64-static"   # where an installed root's interpreter finds QEMU

# /proc/cpuinfo per core as the Linux kernel prints it on that core (Features = its HWCAPs).
CORES = {
    "cortex-a76": {"features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                               "asimdrdm lrcpc dcpop asimddp",
                   "variant": "0x4", "part": "0xd0b", "revision": "1"},
    "cortex-a72": {"features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid",
                   "variant": "0x0", "part": "0xd08", "revision": "3"},
    "cortex-a57": {"features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid",
                   "variant": "0x1", "part": "0xd07", "revision": "1"},
    "cortex-a53": {"features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid",
                   "variant": "0x0", "part": "0xd03", "revision": "4"},
}


class BuildError(DeviceError):
    """An Arm64 root that cannot be built here: exit 2, one line saying why."""


@dataclasses.dataclass(frozen=True)
class RootSpec:
    """What one cached Arm64 userland holds and how it is made."""

    name: str                    # its folder under the user's cache
    version: int                 # bumped when its content changes: an older stamp is rebuilt
    packages: tuple[str, ...]    # Debian packages beyond minbase (debootstrap --include)
    installed: bool              # second stage run emulated (needs binfmt) vs packages unpacked
    wheels: tuple[str, ...]      # PyPI packages, at the host's versions when it has them
    site: str                    # where the wheels go, relative to the built folder

    def folder(self) -> Path:
        return user_cache() / self.name

    def root(self) -> Path:
        """The userland itself (what a chroot or QEMU's -L sees as /)."""
        return self.folder() / "root"


SYSROOT = RootSpec("arm64-sysroot", 1, ("python3", "libstdc++6"), installed=False,
                   wheels=("ai-edge-litert", "numpy", "pillow", "flatbuffers"), site="site")
BOARD = RootSpec("arm64-board", 1, ("python3", "libstdc++6", "openssh-server", "procps"), installed=True,
                 wheels=("ai-edge-litert", "numpy", "pillow", "flatbuffers", "onnxruntime"),
                 site=f"root/usr/local/lib/python{PYTHON_VERSION}/dist-packages")

STAMP = "sysroot.json"


def need_tools(what: str) -> dict[str, str]:
    """Paths of qemu-aarch64-static, debootstrap and dpkg, or a BuildError naming the packages."""
    tools = {t: shutil.which(t) for t in ("qemu-aarch64-static", "debootstrap", "dpkg")}
    missing = [t for t, p in tools.items() if p is None]
    if missing:
        raise BuildError(f"{what} needs {', '.join(missing)}: apt-get install {APT_PACKAGES}")
    return tools


def apt_mirror(suite: str = SUITE) -> str:
    """The Debian mirror this machine's apt uses (sources.list and sources.list.d), for `suite`."""
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    found: list[tuple[str, list[str]]] = []
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.split()
                if "deb" in fields.get("types", []):
                    for uri in fields.get("uris", []):
                        found.append((uri, fields.get("suites", [])))
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m:
                    found.append((m.group(1), [m.group(2)]))
    for uri, suites in found:
        if suite in suites and "security" not in uri:
            return uri
    for uri, suites in found:
        if "debian" in uri and "security" not in uri:
            return uri
    raise BuildError(f"no Debian mirror for {suite} in /etc/apt/sources.list*: add one to build an Arm64 root")


@contextlib.contextmanager
def lock(path: Path):
    """An exclusive lock on `path` (created) for as long as the block runs, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def wheel_pins(names: tuple[str, ...]) -> list[str]:
    """`names` pinned to the host's versions, so both sides run the same LiteRT, ONNX Runtime and numpy."""
    from importlib import metadata
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def run(argv: list[str], what: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    """A build step within a deadline; its failure is one line (the command's last output line)."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired:
        raise BuildError(f"Arm64 root: {what} timed out after {timeout:.0f} s") from None
    if p.returncode != 0:
        tail = ((p.stderr or "") + (p.stdout or "")).strip().splitlines()
        raise BuildError(f"Arm64 root: {what} failed (exit {p.returncode}): {(tail or ['no output'])[-1][:300]}")
    return p


def stamp(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STAMP).read_text())
    except (OSError, ValueError):
        return None


def ready(spec: RootSpec) -> bool:
    return (stamp(spec.folder()) or {}).get("version") == spec.version


def ensure(spec: RootSpec, log=print) -> Path:
    """The built folder of `spec` (root/ and its wheels), built once under a lock, moved in place whole.

    An installed root runs aarch64 binaries while it is built: the caller registers binfmt_misc first.
    """
    tools = need_tools("an Arm64 root")
    final = spec.folder()
    if ready(spec):
        return final
    with lock(final.with_name(f"{spec.name}.lock")):
        if ready(spec):
            return final
        t0 = time.perf_counter()
        mirror = apt_mirror()
        log(f"arm64: building the {spec.name} root once (Debian {SUITE} from {mirror}, "
            f"{'installed under emulation' if spec.installed else 'unpacked'}, wheels by pip)...")
        build = Path(tempfile.mkdtemp(prefix=f"{spec.name}.partial-", dir=final.parent))
        try:
            root = build / "root"
            _first_stage(spec, root, mirror, tools)
            if spec.installed:
                _second_stage(root, log)
            else:
                _unpack(root, tools)
            if not (root / PYTHON).is_file():
                raise BuildError(f"Arm64 root: no {PYTHON} in the {SUITE} root")
            _wheels(spec, build / spec.site)
            (build / STAMP).write_text(json.dumps({
                "version": spec.version, "suite": SUITE, "mirror": mirror, "packages": list(spec.packages),
                "installed": spec.installed, "wheels": wheel_pins(spec.wheels),
                "built_s": round(time.perf_counter() - t0, 1)}))
            _replace(build, final)
        except BaseException:
            _remove_tree(build)
            raise
        log(f"arm64: {spec.name} ready in {time.perf_counter() - t0:.0f} s ({final})")
    return final


def _first_stage(spec: RootSpec, root: Path, mirror: str, tools: dict) -> None:
    argv = [tools["debootstrap"], "--foreign", "--variant=minbase", "--arch=arm64",
            f"--include={','.join(spec.packages)}", SUITE, str(root), mirror]
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if keyring.is_file():
        argv.insert(1, f"--keyring={keyring}")
    if os.geteuid() != 0:
        if spec.installed:
            raise BuildError("Arm64 root: an installed root needs root privileges (debootstrap's second stage)")
        if not shutil.which("fakeroot"):
            raise BuildError("Arm64 root: debootstrap needs root or fakeroot (apt-get install fakeroot)")
        argv = ["fakeroot"] + argv
    run(argv, "debootstrap (first stage)")


def _unpack(root: Path, tools: dict) -> None:
    """Every downloaded package unpacked in place (nothing of the root runs)."""
    debs = sorted(glob.glob(str(root / "var/cache/apt/archives/*.deb")))
    if not debs:
        raise BuildError("Arm64 root: debootstrap downloaded no packages")
    for deb in debs:
        run([tools["dpkg"], "-x", deb, str(root)], f"dpkg -x {Path(deb).name}")
        os.unlink(deb)


def _second_stage(root: Path, log) -> None:
    """debootstrap's second stage inside the root, its binaries run by QEMU through binfmt_misc."""
    cfg = root / "etc" / "dpkg" / "dpkg.cfg.d"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "unsafe-io").write_text("force-unsafe-io\n")   # a throwaway build: ~35 s less of fsync
    install_qemu(root)
    log("arm64: debootstrap's second stage under emulation (about 4 minutes)...")
    try:
        run(["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"], "debootstrap (second stage)",
            timeout=1800, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                               "DEBIAN_FRONTEND": "noninteractive"})
    finally:
        unmount_below(root)   # the second stage mounts proc and sys inside the root
    for leftover in (root / "var/cache/apt/archives").glob("*.deb"):
        leftover.unlink()


def install_qemu(root: Path) -> None:
    """The host's static QEMU copied into the root: binfmt_misc's interpreter runs it from inside a chroot."""
    dest = root / QEMU_IN_ROOT
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".new")
    shutil.copyfile(need_tools("an installed Arm64 root")["qemu-aarch64-static"], tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def _wheels(spec: RootSpec, target: Path) -> None:
    run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
         "--target", str(target), "--python-version", PYTHON_VERSION, "--implementation", "cp",
         "--only-binary=:all:", "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux_2_27_aarch64",
         "--platform", "manylinux2014_aarch64", *wheel_pins(spec.wheels)], "pip install of the aarch64 wheels")
    shutil.rmtree(target / "bin", ignore_errors=True)   # console scripts naming the host's Python


def mounts_below(path: Path) -> list[str]:
    """Mount points at or under `path`, deepest first (the order to unmount them in)."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def unmount_below(path: Path) -> None:
    """Everything mounted at or under `path` unmounted, deepest first; what is busy is detached lazily."""
    for lazy in ([], ["-l"]):
        for point in mounts_below(path):
            subprocess.run(["umount", *lazy, point], capture_output=True, timeout=60)


def _remove_tree(path: Path) -> None:
    """rm -rf that never follows a mount: whatever is still mounted below is unmounted first."""
    if path.exists():
        unmount_below(path)
        shutil.rmtree(path, ignore_errors=True)


def _replace(build: Path, final: Path) -> None:
    if final.exists():  # an older version: moved aside, then away
        old = final.with_name(f"{final.name}.old-{os.getpid()}")
        os.rename(final, old)
        _remove_tree(old)
    os.rename(build, final)


def cpuinfo_text(core: str, cpus: int) -> str:
    """/proc/cpuinfo as an Arm64 Linux kernel prints it for `cpus` cores of kind `core`."""
    c = CORES[core]
    block = ("processor\t: {i}\nBogoMIPS\t: 38.40\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
             "CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n")
    return "\n".join(block.format(i=i, **c) for i in range(cpus)) + "\n"


def qemu_version() -> str:
    try:
        out = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0].strip() if out else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
