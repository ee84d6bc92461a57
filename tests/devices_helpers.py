"""Shared helpers for tests/test_devices_*.py: a tiny real INT8 model, an image folder, a real sshd.

Nothing here mocks a tool: a missing tool makes the caller skip with the reason returned.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np

LABELS = ("cat", "dog", "bird")


def tiny_int8_tflite(out: Path) -> Path:
    """A real full-integer INT8 classifier (32x32 RGB int8 in, 3 classes int8 out) with its contract."""
    from tiny_model import tiny_int8_tflite as build
    out.write_bytes(build(True, LABELS))
    return out


def shared_tiny_model(tmp_path_factory) -> Path:
    """The tiny model, built once per test session (shared by the device test modules)."""
    p = tmp_path_factory.getbasetemp() / "tiny_int8.tflite"
    if not p.is_file():
        tmp = p.with_name("tiny_int8.partial.tflite")
        tiny_int8_tflite(tmp)
        tmp.replace(p)
    return p


def image_folder(root: Path, per_class: int = 3, size: int = 40) -> Path:
    from PIL import Image
    rng = np.random.default_rng(1)
    for k, label in enumerate(LABELS):
        d = root / label
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            img[..., k] = 255  # a colour per class
            Image.fromarray(img).save(d / f"img {i}.png")
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sshd_path() -> str | None:
    for p in (shutil.which("sshd"), "/usr/sbin/sshd"):
        if p and Path(p).is_file():
            return p
    return None


class Sshd:
    """A real OpenSSH server on 127.0.0.1 with its own host key and a key made for the test."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sshd":
        r = self.root
        r.mkdir(parents=True, exist_ok=True)
        for name in ("host_key", "client_key", "other_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(r / name)], check=True)
        (r / "authorized_keys").write_text((r / "client_key.pub").read_text())
        self.host_key, self.client_key, self.other_key = r / "host_key", r / "client_key", r / "other_key"
        self.known_hosts = r / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {(r / 'host_key.pub').read_text()}")
        cfg = r / "sshd_config"
        cfg.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {r / 'host_key'}",
            f"AuthorizedKeysFile {r / 'authorized_keys'}", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "StrictModes no",
            f"PidFile {r / 'sshd.pid'}", "MaxStartups 50", "MaxSessions 50", "LogLevel VERBOSE",
            "PermitRootLogin yes", "AcceptEnv LANG", ""]))
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.log = r / "sshd.log"
        self.proc = subprocess.Popen([sshd_path(), "-D", "-f", str(cfg), "-E", str(self.log)])
        deadline = time.time() + 10
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def user_host(self) -> str:
        import getpass
        return f"{getpass.getuser()}@127.0.0.1"


# The optional tools some tests run, by kind: (their names, how to install them). A test that needs one
# kind is marked needs_tools(kind) (tests/conftest.py) or calls need_tools(kind).
TOOLS = {
    "openssh": (("ssh", "ssh-keygen", "sshd"), "apt-get install openssh-server openssh-client (.ci/devices-deps.sh)"),
    "qemu": (("qemu-aarch64-static", "debootstrap", "dpkg"), "apt-get install qemu-user-static debootstrap "
                                                             "(.ci/devices-deps.sh)"),
    "ssh-client": (("ssh",), "apt-get install openssh-client (.ci/devices-deps.sh)"),
    "adb": (("adb",), "apt-get install adb (.ci/devices-deps.sh)"),
    "kotlin": (("java",), "a JDK 17+ and the Kotlin 2 compiler (.ci/android-deps.sh)"),
    "android": (("aapt2", "zipalign", "apksigner", "keytool"), "apt-get install aapt zipalign apksigner and a JDK "
                                                               "(.ci/android-deps.sh)"),
    "chromium": (("chromium", "chromedriver"), "apt-get install chromium chromium-driver"),
}


def missing_tools(names) -> list[str]:
    """Those of `names` not found (sshd also where non-root users' PATH lacks /usr/sbin)."""
    return [t for t in names if not (sshd_path() if t == "sshd" else shutil.which(t))]


def need_tools(kind: str) -> None:
    import pytest
    tools, hint = TOOLS[kind]
    missing = missing_tools(tools)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (not on PATH): {hint}")


def need_ssh() -> None:
    need_tools("openssh")


def need_qemu() -> None:
    need_tools("qemu")
