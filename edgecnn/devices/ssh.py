"""jetson: any Linux board over SSH (a Jetson, a Raspberry Pi, an Arm server).

The transport is the OpenSSH client run as a subprocess: key authentication only, batch mode (it
never waits on a prompt), a connect timeout, connection sharing (one master connection per device
in a private temporary folder, kept a minute), and host-key checking on (an explicit option accepts
a host's key the first time). Every remote argument is quoted with shlex.quote: a file named
``a; touch x.tflite`` stays a file name. Files travel over the same connection (``cat`` on the
other end), folders as a tar stream.

The device makes a work folder on the board (mktemp -d), pushes the artifact and the agent
(agent.pyz: the agent and the pure-Python modules it needs; the board needs python3, numpy,
Pillow and one runtime), runs it, parses its JSON, and always removes the work folder.
``--data`` travels as a tar stream up to ``max_data_mb`` (default 256 MB); a larger folder is not
sent and accuracy is skipped on the board with a note (run accuracy on the host instead).

TensorRT: with a Q/DQ ONNX and engine "tensorrt" the engine is built ON the board (trtexec when
there, else TensorRT's Python API through a small script), with a timing cache kept in
``~/.cache/edgecnn`` on the board for the next build, and stamped with the versions read from the
board (TensorRT, CUDA, L4T/JetPack, GPU). A cached engine is reused only when its stamp matches
(edgecnn.export.tensorrt.stamp_matches) and it was built from the same ONNX. Without TensorRT on
the board the model runs on the board's CPU instead (a sibling .tflite with LiteRT, else the ONNX
with ONNX Runtime), with a note.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from ..errors import InputError
from .base import Completed, Device, DeviceError, Transport, agent_zip, parse_agent_output

REMOTE_CACHE = "~/.cache/edgecnn"  # on the board; "~/" becomes "$HOME"/ for the remote shell


def q(s: str | os.PathLike) -> str:
    return shlex.quote(str(s))


def remote_path(p: str) -> str:
    """A remote path for the shell: quoted, except a leading ~/ that the remote shell must expand."""
    if p == "~":
        return '"$HOME"'
    if p.startswith("~/"):
        return '"$HOME"/' + q(p[2:])
    return q(p)


def flag(name: str, value: str) -> str:
    """--name=value as one shell word, the value's leading ~/ expanded by the remote shell."""
    return q(name) + remote_path(value) if value.startswith("~/") else q(name + value)


def ssh_error(stderr: str, where: str, *, accept_new: bool) -> str | None:
    """The one-line reason for an OpenSSH failure (exit 255), or None when stderr is not one."""
    s = stderr
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in s or "Host key for" in s and "has changed" in s:
        return (f"the host key of {where} has CHANGED since it was recorded in known_hosts: if the board "
                f"was re-installed, remove the old key (ssh-keygen -R HOST), else do not connect")
    if "Host key verification failed" in s or "No ED25519 host key is known" in s or "host key is known" in s:
        hint = "" if accept_new else " or pass accept_new_host_key (--accept-new-host-key) to trust it on first use"
        return f"the host key of {where} is not known: connect once with ssh to check and record it{hint}"
    if "Permission denied" in s:
        return (f"{where} refused the key (permission denied): check the identity file (--identity), "
                f"the user name and the board's ~/.ssh/authorized_keys")
    for pat, why in (("Connection refused", "connection refused"), ("timed out", "connection timed out"),
                     ("No route to host", "no route to host"), ("Network is unreachable", "network unreachable"),
                     ("Could not resolve hostname", "unknown host name"),
                     ("Name or service not known", "unknown host name"),
                     ("Connection closed", "connection closed by the remote side"),
                     ("Connection reset", "connection reset")):
        if pat in s:
            return f"cannot reach {where}: {why} (is the board on, sshd running, the port right?)"
    if "Load key" in s or "no such identity" in s.lower():
        return f"cannot use the identity file for {where}: {s.strip().splitlines()[-1][:200]}"
    return None


class SSHTransport(Transport):
    """OpenSSH client: ``ssh [options] -- DEST 'quoted command'``, with connection sharing."""

    def __init__(self, host: str, *, port: int | None = None, identity: str | os.PathLike | None = None,
                 accept_new_host_key: bool = False, known_hosts: str | os.PathLike | None = None,
                 connect_timeout: float = 10, persist_s: int = 60, ssh: str = "ssh"):
        if not host:
            raise InputError("the jetson device needs a host: --host USER@HOST")
        if host.startswith("-"):
            raise InputError(f"not a host name: {host!r}")
        self.host, self.port = host, port
        self.identity, self.known_hosts = identity, known_hosts
        self.accept_new = bool(accept_new_host_key)
        self.connect_timeout, self.persist_s = connect_timeout, persist_s
        self.ssh = shutil.which(ssh)
        if self.ssh is None:
            raise DeviceError("no ssh client: install OpenSSH (apt-get install openssh-client)")
        if identity is not None and not Path(identity).is_file():
            raise InputError(f"identity file not found: {identity}")
        self._ctl = tempfile.mkdtemp(prefix="edgecnn-ssh-")  # private (0700): holds the master socket

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host

    def options(self) -> list[str]:
        o = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.connect_timeout)}",
             "-o", "ControlMaster=auto", "-o", f"ControlPath={self._ctl}/%C",
             "-o", f"ControlPersist={int(self.persist_s)}",
             "-o", f"StrictHostKeyChecking={'accept-new' if self.accept_new else 'yes'}",
             "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
        if self.known_hosts is not None:
            o += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity is not None:
            o += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        if self.port:
            o += ["-p", str(int(self.port))]
        return o

    def argv(self, command: str) -> list[str]:
        """The ssh command line that runs `command` (a remote shell command line) on the board."""
        return [self.ssh, *self.options(), "--", self.host, command]

    def shell(self, command: str, *, stdin: bytes | None = None, timeout: float | None = None,
              binary: bool = False) -> Completed:
        """Run a remote shell command line (built with q() around every variable part)."""
        try:
            p = subprocess.run(self.argv(command), input=stdin, capture_output=True, timeout=timeout,
                               stdin=subprocess.DEVNULL if stdin is None else None)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.where}: command timed out after {timeout:.0f} s") from None
        err = p.stderr.decode(errors="replace")
        if p.returncode == 255:
            why = ssh_error(err, self.where, accept_new=self.accept_new)
            if why:
                raise DeviceError(why)
        out = p.stdout if binary else p.stdout.decode(errors="replace")
        return Completed(p.returncode, out, err)

    def run(self, argv: list[str], timeout: float | None = None, cwd: str | None = None) -> Completed:
        cmd = " ".join(q(a) for a in argv)
        if cwd:
            cmd = f"cd {remote_path(cwd)} && {cmd}"
        return self.shell(cmd, timeout=timeout)

    def push(self, local: Path, remote: str) -> None:
        c = self.shell(f"cat > {remote_path(remote)}", stdin=Path(local).read_bytes())
        if c.returncode != 0:
            raise DeviceError(f"{self.where}: cannot write {remote}: {_last(c.stderr)}")

    def pull(self, remote: str, local: Path) -> None:
        c = self.shell(f"cat -- {remote_path(remote)}", binary=True)
        if c.returncode != 0:
            raise DeviceError(f"{self.where}: cannot read {remote}: {_last(c.stderr)}")
        Path(local).write_bytes(c.stdout)

    def push_dir(self, local: Path, remote: str) -> None:
        """A folder as a tar stream into remote (created), its contents at remote/."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            t.add(str(local), arcname=".")
        rp = remote_path(remote)
        c = self.shell(f"mkdir -p {rp} && tar -xf - -C {rp}", stdin=buf.getvalue())
        if c.returncode != 0:
            raise DeviceError(f"{self.where}: cannot unpack the data folder: {_last(c.stderr)}")

    def close(self) -> None:
        if os.path.isdir(self._ctl):
            if os.listdir(self._ctl):  # a master is running: stop it
                subprocess.run([self.ssh, *self.options(), "-O", "exit", "--", self.host],
                               capture_output=True, timeout=15)
            shutil.rmtree(self._ctl, ignore_errors=True)


def _last(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1][:300] if lines else "no output"


# ------------------------------------------------------------------------ TensorRT on the board
STAMP_SCRIPT = r"""
v() { printf '%s=%s\n' "$1" "$2"; }
v machine "$(uname -m)"
v l4t "$(head -n 1 /etc/nv_tegra_release 2>/dev/null)"
v l4t_core "$(dpkg-query -W -f='${Version}' nvidia-l4t-core 2>/dev/null)"
v jetpack "$(dpkg-query -W -f='${Version}' nvidia-jetpack 2>/dev/null)"
v tensorrt_deb "$(dpkg-query -W -f='${Version}' tensorrt libnvinfer10 libnvinfer8 2>/dev/null | head -c 80)"
v tensorrt_py "$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null)"
T=$(command -v trtexec || ls /usr/src/tensorrt/bin/trtexec 2>/dev/null)
v trtexec "$T"
[ -n "$T" ] && v trtexec_banner "$("$T" --version 2>&1 | grep -m 1 -o 'TensorRT[^]]*v[0-9]*')"
v cuda "$(cat /usr/local/cuda/version.json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["cuda"]["version"])' 2>/dev/null || nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | cut -d' ' -f2)"
v gpu "$(tr -d '\0' < /proc/device-tree/model 2>/dev/null || nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
v compute_capability "$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1)"
"""


def trt_version_from_banner(text: str) -> str | None:
    """'[TensorRT v8502]' -> '8.5.2', 'v100300' -> '10.3.0' (trtexec's banner)."""
    m = re.search(r"v(\d{4,6})\b", text or "")
    if not m:
        return None
    n = int(m.group(1))
    if n >= 100000:  # TensorRT 10+: MMmmpp
        return f"{n // 10000}.{(n // 100) % 100}.{n % 100}"
    return f"{n // 1000}.{(n // 100) % 10}.{n % 100}"


def parse_board_stamp(text: str) -> dict:
    """The board's versions (key=value lines from STAMP_SCRIPT) as an engine stamp.

    Keys follow edgecnn.export.tensorrt.stamp so that stamp_matches compares them.
    """
    raw = {}
    for line in (text or "").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            raw[k.strip()] = v.strip()
    trt = raw.get("tensorrt_py") or trt_version_from_banner(raw.get("trtexec_banner", ""))
    if not trt and raw.get("tensorrt_deb"):
        trt = raw["tensorrt_deb"].split("-")[0].split("+")[0]
    cuda = raw.get("cuda") or None
    if cuda:
        cuda = ".".join(cuda.split(".")[:2])
    return {"tensorrt": trt or None, "cuda_runtime": cuda, "gpu": raw.get("gpu") or None,
            "compute_capability": raw.get("compute_capability") or None, "l4t": raw.get("l4t") or None,
            "machine": raw.get("machine") or None, "jetpack": raw.get("jetpack") or None,
            "l4t_core": raw.get("l4t_core") or None, "trtexec": raw.get("trtexec") or None}


def engine_reusable(recorded: dict | None, current: dict, onnx_sha256: str) -> bool:
    """Reuse a cached engine only when built from this ONNX for these exact versions."""
    from ..export.tensorrt import stamp_matches
    if not recorded or not current.get("tensorrt"):
        return False
    return (stamp_matches(recorded, current) and recorded.get("jetpack") == current.get("jetpack")
            and recorded.get("onnx_sha256") == onnx_sha256)


def trtexec_command(trtexec: str, onnx: str, engine: str, timing_cache: str, trt_version: str | None,
                    fp16: bool = True, workspace_mb: int = 1024) -> str:
    """The remote shell command line that builds an INT8 (Q/DQ) engine with trtexec."""
    major_minor = tuple(int(x) for x in (trt_version or "0.0").split(".")[:2] if x.isdigit())
    words = [remote_path(trtexec), flag("--onnx=", onnx), flag("--saveEngine=", engine), "--int8",
             flag("--timingCacheFile=", timing_cache)]
    if fp16:
        words.append("--fp16")
    if major_minor >= (8, 4):
        words.append(f"--memPoolSize=workspace:{int(workspace_mb)}M")
    else:
        words.append(f"--workspace={int(workspace_mb)}")
    words.append("--skipInference" if major_minor >= (8, 6) else "--buildOnly")
    return " ".join(words)


# Built on the board when trtexec is absent: TensorRT's Python API (8.x and 10.x), explicit Q/DQ INT8.
TRT_BUILD_SCRIPT = r'''
import os, sys
import tensorrt as trt
onnx, engine, cache_path = sys.argv[1:4]
logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
network = builder.create_network(flags)
parser = trt.OnnxParser(network, logger)
if not parser.parse(open(onnx, "rb").read()):
    sys.exit("TensorRT could not parse the ONNX: " + "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
config = builder.create_builder_config()
config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
config.set_flag(trt.BuilderFlag.INT8)
config.set_flag(trt.BuilderFlag.FP16)
cache = config.create_timing_cache(open(cache_path, "rb").read() if os.path.isfile(cache_path) else b"")
config.set_timing_cache(cache, ignore_mismatch=False)
inp = network.get_input(0)
shape = tuple(inp.shape)
if any(d < 0 for d in shape):
    profile = builder.create_optimization_profile()
    one = (1, *shape[1:])
    profile.set_shape(inp.name, one, one, one)
    config.add_optimization_profile(profile)
data = builder.build_serialized_network(network, config)
if data is None:
    sys.exit("TensorRT failed to build the engine")
open(engine + ".tmp", "wb").write(bytes(data)); os.replace(engine + ".tmp", engine)
open(cache_path + ".tmp", "wb").write(bytes(config.get_timing_cache().serialize())); os.replace(cache_path + ".tmp", cache_path)
'''


def _sha256(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


# ------------------------------------------------------------------------ the device
def probe_command(python: str = "python3") -> str:
    """One remote shell command: is `python` there, its version, machine, and which modules import."""
    py = remote_path(python)
    return (f"command -v {py} >/dev/null 2>&1 || {{ echo EDGECNN_NO_PYTHON3; exit 0; }}; {py} -c "
            + q("import json, platform, importlib\n"
                "mods = {}\n"
                "for m in ('numpy', 'PIL', 'ai_edge_litert', 'onnxruntime', 'tensorrt'):\n"
                "    try:\n        mods[m] = getattr(importlib.import_module(m), '__version__', 'yes')\n"
                "    except Exception:\n        mods[m] = None\n"
                "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), "
                "'modules': mods}))"))


class JetsonDevice(Device):
    """Options: host (USER@HOST), port, identity, accept_new_host_key, known_hosts, engine
    ("tensorrt" to build an engine from a Q/DQ ONNX on the board), python (the board's interpreter,
    default python3), connect_timeout, max_data_mb, timeout (seconds for the agent run)."""

    name = "jetson"

    def __init__(self, host: str | None = None, port: int | None = None, identity: str | None = None,
                 accept_new_host_key: bool = False, known_hosts: str | None = None, engine: str | None = None,
                 python: str = "python3", connect_timeout: float = 10, max_data_mb: float = 256, timeout: float = 1800, log=None,
                 **options):
        super().__init__(host=host, port=port, identity=identity, accept_new_host_key=accept_new_host_key,
                         known_hosts=known_hosts, engine=engine, **options)
        self.transport = SSHTransport(host or "", port=port, identity=identity,
                                      accept_new_host_key=accept_new_host_key, known_hosts=known_hosts,
                                      connect_timeout=connect_timeout)
        self.engine, self.max_data_mb, self.timeout = engine, max_data_mb, timeout
        self.python = python
        self.log = log or (lambda m: None)
        self._probe: dict | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecnn-ssh-local-")

    def close(self) -> None:
        self.transport.close()
        self._tmp.cleanup()

    def _agent_file(self) -> Path:
        p = Path(self._tmp.name) / "agent.pyz"
        if not p.is_file():
            p.write_bytes(agent_zip())
        return p

    def describe(self) -> dict:
        d = {"device": self.name, "host": self.transport.where}
        if self._probe:
            d.update(machine=self._probe.get("machine"), python=self._probe.get("python"))
        return d

    def probe(self) -> dict:
        """What the board has: python3, numpy, Pillow and which runtimes (one ssh call)."""
        if self._probe is None:
            c = self.transport.shell(probe_command(self.python), timeout=120)
            if "EDGECNN_NO_PYTHON3" in c.stdout:
                raise DeviceError(f"{self.transport.where} has no {self.python}: install python3 on the board "
                                  f"(e.g. sudo apt-get install python3 python3-numpy)")
            line = next((ln for ln in c.stdout.splitlines() if ln.startswith("{")), None)
            if c.returncode != 0 or line is None:
                raise DeviceError(f"{self.transport.where}: {self.python} did not run: {_last(c.stderr)}")
            self._probe = json.loads(line)
        return self._probe

    def _need(self, runtime: str) -> None:
        mods = self.probe()["modules"]
        missing = [m for m in ("numpy", "PIL") if not mods.get(m)]
        if not mods.get(runtime):
            missing.append(runtime)
        if missing:
            pip = {"numpy": "numpy", "PIL": "pillow", "ai_edge_litert": "ai-edge-litert",
                   "onnxruntime": "onnxruntime", "tensorrt": "tensorrt (with JetPack)"}
            raise DeviceError(f"{self.transport.where}: {self.python} lacks {', '.join(missing)}: "
                              f"{self.python} -m pip install {' '.join(pip[m] for m in missing)}")

    def run_agent(self, artifact: Path, agent_args: list[str], data: Path | None = None,
                  outputs: bool = False, baseline: Path | None = None) -> dict:
        artifact = Path(artifact)
        if not artifact.is_file():
            raise InputError(f"model file not found: {artifact}")
        args = list(agent_args)
        engine = self.engine
        if "--engine" in args:
            i = args.index("--engine")
            engine = engine or args[i + 1]
            if args[i + 1] == "tensorrt" and artifact.suffix == ".onnx":
                del args[i:i + 2]  # the ONNX becomes an engine on the board
        self.probe()
        t = self.transport
        c = t.shell('mktemp -d "${TMPDIR:-/tmp}/edgecnn.XXXXXXXX"', timeout=60)
        work = c.stdout.strip()
        if c.returncode != 0 or not work.startswith("/"):
            raise DeviceError(f"{t.where}: cannot make a work folder: {_last(c.stderr)}")
        notes: list[str] = []
        try:
            model_remote, runtime = self._stage_model(artifact, engine, work, args, notes)
            t.push(self._agent_file(), f"{work}/agent.pyz")
            remote_data = None
            if data is not None:
                size_mb = sum(f.stat().st_size for f in Path(data).rglob("*") if f.is_file()) / 1e6
                if size_mb > self.max_data_mb:
                    notes.append(f"--data is {size_mb:.0f} MB (> {self.max_data_mb:.0f} MB): not sent, "
                                 f"no accuracy on the board")
                    self.log(notes[-1])
                else:
                    remote_data = f"{work}/data"
                    t.push_dir(Path(data), remote_data)
            argv = [self.python, "agent.pyz", model_remote, *args]
            if baseline is not None:   # as is, in its own folder (its name may equal the artifact's)
                baseline = Path(baseline)
                t.shell(f"mkdir -p {q(work + '/baseline')}", timeout=60)
                for f in (baseline, *_sidecars(baseline)):
                    t.push(f, f"{work}/baseline/{f.name}")
                argv += ["--baseline", f"baseline/{baseline.name}"]
            if remote_data:
                argv += ["--data", "data"]
            if outputs and remote_data:
                argv += ["--outputs", "outputs.npy"]
            c = t.run(argv, timeout=self.timeout, cwd=work)
            res = parse_agent_output(c, t.where)
            if outputs and remote_data:
                import numpy as np
                local = Path(self._tmp.name) / "outputs.npy"
                t.pull(f"{work}/outputs.npy", local)
                res["outputs"] = np.load(local)
            if remote_data and res.get("paths"):  # the board's paths -> the same files here
                res["paths"] = [str(Path(data) / os.path.relpath(p, "data")) for p in res["paths"]]
                for s in res.get("skipped") or []:
                    s["path"] = str(Path(data) / os.path.relpath(s["path"], "data"))
            res["board"] = {"host": t.where, **{k: self._probe.get(k) for k in ("python", "machine")},
                            "runtime": runtime}
            if notes:
                res["notes"] = notes
            return res
        finally:
            t.shell(f"rm -rf -- {q(work)}", timeout=60)

    # -- model staging: as is, or an engine built on the board
    def _stage_model(self, artifact: Path, engine: str | None, work: str, args: list[str],
                     notes: list[str]) -> tuple[str, str]:
        t = self.transport
        if engine == "tensorrt" and artifact.suffix == ".onnx":
            stamp = self.board_stamp()
            if stamp.get("tensorrt") and self.probe()["modules"].get("tensorrt"):
                self._need("tensorrt")
                return self._build_engine(artifact, stamp, work, args), "tensorrt"
            fallback = _cpu_fallback(artifact)
            mods = self.probe()["modules"]
            if fallback is not None and mods.get("ai_edge_litert"):
                notes.append(f"no TensorRT on {t.where}: ran {fallback.name} with LiteRT on the board's CPU instead")
                artifact = fallback
            elif mods.get("onnxruntime"):
                notes.append(f"no TensorRT on {t.where}: ran the ONNX with ONNX Runtime on the board's CPU instead")
            else:
                raise DeviceError(f"{t.where} has no TensorRT (for --engine tensorrt), no LiteRT with a sibling "
                                  f".tflite and no ONNX Runtime: install JetPack's TensorRT or ai-edge-litert")
            self.log(notes[-1])
        runtime = {".tflite": "ai_edge_litert", ".onnx": "onnxruntime", ".engine": "tensorrt",
                   ".plan": "tensorrt"}.get(artifact.suffix, "ai_edge_litert")
        self._need(runtime)
        t.push(artifact, f"{work}/{artifact.name}")
        for side in _sidecars(artifact):
            t.push(side, f"{work}/{side.name}")
        return artifact.name, runtime

    def board_stamp(self) -> dict:
        c = self.transport.shell(STAMP_SCRIPT, timeout=120)
        return parse_board_stamp(c.stdout)

    def _build_engine(self, onnx: Path, stamp: dict, work: str, args: list[str]) -> str:
        """Build (or reuse) the engine in ~/.cache/edgecnn/engines on the board; copy it into work/."""
        t = self.transport
        sha = _sha256(onnx)
        cache = f"{REMOTE_CACHE}/engines"
        eng = f"{cache}/{onnx.stem}-{sha[:16]}.engine"
        timing = f"{REMOTE_CACHE}/timing-trt{stamp['tensorrt']}.cache"
        t.shell(f"mkdir -p {remote_path(cache)}", timeout=60)
        c = t.shell(f"cat -- {remote_path(eng + '.json')} 2>/dev/null && test -s {remote_path(eng)}", timeout=60)
        recorded = None
        if c.returncode == 0 and c.stdout.strip():
            try:
                recorded = json.loads(c.stdout)
            except ValueError:
                recorded = None
        if engine_reusable(recorded, stamp, sha):
            self.log(f"tensorrt: reusing the engine on {t.where} (TensorRT {stamp['tensorrt']})")
        else:
            t.push(onnx, f"{work}/{onnx.name}")
            if stamp.get("trtexec"):
                cmd = trtexec_command(stamp["trtexec"], f"{work}/{onnx.name}", eng, timing, stamp["tensorrt"])
            else:
                script = f"{work}/build_engine.py"
                t.shell(f"cat > {q(script)}", stdin=TRT_BUILD_SCRIPT.encode())
                cmd = " ".join([remote_path(self.python), q(script), q(f"{work}/{onnx.name}"), remote_path(eng), remote_path(timing)])
            self.log(f"tensorrt: building the engine on {t.where} (TensorRT {stamp['tensorrt']})...")
            c = t.shell(cmd, timeout=self.timeout)
            if c.returncode != 0:
                raise DeviceError(f"{t.where}: TensorRT engine build failed: {_last(c.stderr or c.stdout)}")
            recorded = {**stamp, "onnx": onnx.name, "onnx_sha256": sha, "int8": True, "fp16": True,
                        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
            t.shell(f"cat > {remote_path(eng + '.json')}", stdin=json.dumps(recorded).encode())
        local_name = f"{onnx.stem}.engine"
        t.shell(f"cp -- {remote_path(eng)} {q(work + '/' + local_name)}", timeout=120)
        from ..artifact import read_contract
        contract = read_contract(onnx, required=False)
        if contract is not None:
            t.shell(f"cat > {q(work + '/' + local_name + '.contract.json')}", stdin=contract.to_json().encode())
        args += ["--engine", "tensorrt"]
        return local_name


def _sidecars(artifact: Path) -> list[Path]:
    out = [artifact.with_name(artifact.name + ".contract.json")]
    if artifact.suffix not in (".tflite", ".onnx"):
        out.append(artifact.parent / "contract.json")
    return [p for p in out if p.is_file()]


def _cpu_fallback(onnx: Path) -> Path | None:
    for cand in (onnx.with_suffix(".tflite"), *sorted(onnx.parent.glob("*int8*.tflite"))):
        if cand.is_file():
            return cand
    return None

