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

What runs there is a typed request (edgecnn.core.protocol, a JSON file in the work folder) and
what comes back a typed result; the agent run is bounded on the board too (coreutils ``timeout``),
so nothing keeps running there after the deadline.

TensorRT: with a Q/DQ ONNX and engine "tensorrt" the engine is built ON the board by the agent
itself (``agent.pyz --build-engine``: edgecnn.agent.tensorrt_build, the same builder ``export
--tensorrt`` uses), with a timing cache kept in ``~/.cache/edgecnn`` on the board for the next
build, and stamped with the board's TensorRT, CUDA, L4T/JetPack and GPU versions; a cached engine is
reused only when its stamp matches and it was built from the same ONNX. Without TensorRT on the
board the model runs on the board's CPU instead (a sibling .tflite with LiteRT, else the ONNX with
ONNX Runtime), with a note.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import posixpath
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..core.artifact import contract_source, format_of, read_contract
from ..core.errors import DeviceError, InputError
from ..core.protocol import (BOARD_EMULATION_FILE, AgentRequest, AgentResult, BoardEmulation, EngineBuildRequest,
                             EngineBuildResult, read_reply)
from .base import (DEFAULT_TIMEOUT_S, Capabilities, Completed, Device, DeviceOptions, Text, Transport, agent_zip,
                   option, read_agent_result)
from ..limits import PORT_RANGE


def q(s: str | os.PathLike) -> str:
    return shlex.quote(str(s))


def remote_path(p: str) -> str:
    """A remote path for the shell: quoted, except a leading ~/ that the remote shell must expand."""
    if p == "~":
        return '"$HOME"'
    if p.startswith("~/"):
        return '"$HOME"/' + q(p[2:])
    return q(p)


def ssh_error(stderr: str, where: str, *, accept_new: bool) -> str | None:
    """The one-line reason for an OpenSSH failure (exit 255), or None when stderr is not one."""
    s = stderr
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in s or "Host key for" in s and "has changed" in s:
        return (f"the host key of {where} has CHANGED since it was recorded in known_hosts: if the board "
                f"was re-installed, remove the old key (ssh-keygen -R HOST), else do not connect")
    if "Host key verification failed" in s or "host key is known" in s:   # "No ED25519 host key is known for ..."
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
                 connect_timeout: float = 10, persist_s: int = 60, ssh: str = "ssh",
                 command_timeout: float = 600):
        if not host:
            raise InputError("the jetson device needs a host: --host USER@HOST")
        if host.startswith("-"):
            raise InputError(f"not a host name: {host!r}")
        self.host, self.port = host, port
        self.identity, self.known_hosts = identity, known_hosts
        self.accept_new = bool(accept_new_host_key)
        self.connect_timeout, self.persist_s = connect_timeout, persist_s
        self.command_timeout = command_timeout
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
        """Run a remote shell command line (built with q() around every variable part), within a deadline."""
        timeout = self.command_timeout if timeout is None else timeout
        try:
            p = subprocess.run(self.argv(command), input=stdin, capture_output=True, timeout=timeout,
                               stdin=subprocess.DEVNULL if stdin is None else None)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.where}: no answer within {timeout:.0f} s "
                              f"(raise --timeout for a slow board or link)") from None
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

    def push_text(self, text: str, remote: str) -> None:
        c = self.shell(f"cat > {remote_path(remote)}", stdin=text.encode())
        if c.returncode != 0:
            raise DeviceError(f"{self.where}: cannot write {remote}: {_last(c.stderr)}")

    def pull(self, remote: str, local: Path) -> None:
        c = self.shell(f"cat -- {remote_path(remote)}", binary=True)
        if c.returncode != 0:
            raise DeviceError(f"{self.where}: cannot read {remote}: {_last(c.stderr)}")
        Path(local).write_bytes(c.stdout)

    def read_text(self, remote: str) -> str | None:
        """A remote file's text, or None when it is not there."""
        c = self.shell(f"cat -- {remote_path(remote)} 2>/dev/null")
        return c.stdout if c.returncode == 0 else None

    def push_dir(self, local: Path, remote: str) -> None:
        """A folder as a tar stream into remote (created), its contents at remote/. Symbolic links are
        followed (the files they point to travel), so the board sees what the host sees."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", dereference=True) as t:
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




# ------------------------------------------------------------------------ the device
PIP_NAMES = {"numpy": "numpy", "PIL": "pillow", "ai_edge_litert": "ai-edge-litert", "onnxruntime": "onnxruntime",
             "tensorrt": "tensorrt (with JetPack)"}
RUNTIME_MODULE = {"tflite": "ai_edge_litert", "onnx": "onnxruntime", "tensorrt": "tensorrt"}


def probe_command(python: str = "python3") -> str:
    """One remote shell command: is `python` there, its version, machine, and which modules import."""
    py = remote_path(python)
    return (f"command -v {py} >/dev/null 2>&1 || {{ echo EDGECNN_NO_PYTHON3; exit 0; }}; {py} -c "
            + q("import json, platform, importlib\n"
                "mods = {}\n"
                f"for m in {tuple(PIP_NAMES)!r}:\n"
                "    try:\n        mods[m] = getattr(importlib.import_module(m), '__version__', 'yes')\n"
                "    except Exception:\n        mods[m] = None\n"
                "try:\n    emulation = json.load(open(" + repr(BOARD_EMULATION_FILE) + "))\n"
                "except (OSError, ValueError):\n    emulation = None\n"
                "print(json.dumps({'python': platform.python_version(), 'machine': platform.machine(), "
                "'modules': mods, 'emulation': emulation}))"))


# The exit statuses of a command bounded() ended at its deadline: coreutils timeout's own (TERM sent) and
# 128 + SIGKILL (the command outlived the grace period).
DEADLINE_EXITS = (124, 137)


def bounded(argv: list[str], seconds: float) -> str:
    """The remote command line for argv, ended by the board itself after `seconds` (TERM, then KILL)."""
    cmd = " ".join(q(a) for a in argv)
    s = max(1, int(seconds))
    return f"if command -v timeout >/dev/null 2>&1; then timeout -k 10 {s} {cmd}; else {cmd}; fi"


def local_path(remote: str, request: AgentRequest) -> str:
    """A path the board's agent reported (under data/ or unlabeled/ of its work dir) as the same file here,
    by the absolute path the host's agent reports, so bench can pair the images of both."""
    field = "unlabeled" if remote == "unlabeled" or remote.startswith("unlabeled/") else "data"
    return str(Path(getattr(request, field)).absolute() / os.path.relpath(remote, field))


class JetsonOptions(DeviceOptions):
    """What the jetson device takes: the board and how to reach it over SSH."""

    host: Text | None = option(None, "the board to reach over SSH (repeat it for several boards).",
                               metavar="USER@HOST", repeat=True, identifies=True)
    port: int | None = option(None, "SSH port.", range=PORT_RANGE)
    identity: Text | None = option(None, "SSH private key.", path=True)
    accept_new_host_key: bool = option(False, "trust the board's key on first contact.")
    known_hosts: Text | None = option(None, "a known_hosts file to check the board's key against (default: "
                                            "ssh's own).", path=True)


class JetsonDevice(Device):
    """The user's options are JetsonOptions (host, port, identity, accept_new_host_key, known_hosts, and
    timeout: seconds for one agent run, also the deadline of each transfer). python (the board's
    interpreter, default python3), connect_timeout and max_data_mb are arguments for callers of the
    library only: no flag or fleet key sets them."""

    name = "jetson"
    capabilities = Capabilities(baseline=True, cpu_pinning=True, unlabeled=True)
    Options = JetsonOptions

    def __init__(self, host: str | None = None, port: int | None = None, identity: str | None = None,
                 accept_new_host_key: bool = False, known_hosts: str | None = None, python: str = "python3",
                 connect_timeout: float = 10, max_data_mb: float = 256, timeout: float = DEFAULT_TIMEOUT_S,
                 log=None, **options):
        super().__init__(log=log, host=host, port=port, identity=identity, accept_new_host_key=accept_new_host_key,
                         known_hosts=known_hosts, **options)
        self.transport = SSHTransport(host or "", port=port, identity=identity,
                                      accept_new_host_key=accept_new_host_key, known_hosts=known_hosts,
                                      connect_timeout=connect_timeout, command_timeout=timeout)
        self.max_data_mb, self.timeout, self.python = max_data_mb, timeout, python
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
            if self.emulation() is not None:
                d["emulated"] = self.emulation().to_dict()
        return d

    def emulation(self) -> BoardEmulation | None:
        """What the board declares when its CPU is emulated (a stand-in board), else None."""
        declared = self.probe().get("emulation")
        return None if declared is None else BoardEmulation.from_dict(declared, f"{self.transport.where}'s "
                                                                                f"{BOARD_EMULATION_FILE}")

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

    def _need(self, module: str) -> None:
        mods = self.probe()["modules"]
        missing = [m for m in ("numpy", "PIL", module) if not mods.get(m)]
        if missing:
            raise DeviceError(f"{self.transport.where}: {self.python} lacks {', '.join(missing)}: "
                              f"{self.python} -m pip install {' '.join(PIP_NAMES[m] for m in missing)}")

    def run(self, request: AgentRequest) -> AgentResult:
        artifact = Path(request.model)
        if not artifact.is_file():
            raise InputError(f"model file not found: {artifact}")
        self.probe()
        work = self._make_work_folder()
        try:
            return self._run_in(work, request)
        finally:
            self.transport.shell(f"rm -rf -- {q(work)}", timeout=60)

    def _make_work_folder(self) -> str:
        c = self.transport.shell('mktemp -d "${TMPDIR:-/tmp}/edgecnn.XXXXXXXX"', timeout=60)
        work = c.stdout.strip()
        if c.returncode != 0 or not work.startswith("/"):
            raise DeviceError(f"{self.transport.where}: cannot make a work folder: {_last(c.stderr)}")
        return work

    def _run_in(self, work: str, request: AgentRequest) -> AgentResult:
        t, notes = self.transport, []
        remote = {"model": self._stage_model(Path(request.model), request.engine, work, notes)}
        engine = "tensorrt" if remote["model"].endswith(".engine") else (
            None if request.engine == "tensorrt" else request.engine)
        t.push(self._agent_file(), f"{work}/agent.pyz")
        for field in ("data", "unlabeled"):    # image folders, each in its own folder of the work dir
            if getattr(request, field) is not None:
                remote[field] = self._stage_data(Path(getattr(request, field)), work, notes, field)
        if request.baseline is not None:   # as is, in its own folder (its name may equal the artifact's)
            remote["baseline"] = self._stage_file(Path(request.baseline), f"{work}/baseline")
        if request.outputs and remote.get("data"):
            remote["outputs"] = "outputs.npy"
        req = dataclasses.replace(request, engine=engine, outputs=remote.pop("outputs", None), **remote)
        t.push_text(req.to_json(), f"{work}/request.json")
        c = t.shell(f"cd {q(work)} && " + bounded([self.python, "agent.pyz", "--request", "request.json",
                                                  "--result", "result.json"], self.timeout),
                    timeout=self.timeout + 30)
        if c.returncode in DEADLINE_EXITS:
            raise DeviceError(f"{t.where}: the agent did not finish within {self.timeout:.0f} s and was stopped "
                              f"on the board (raise --timeout for a slow board)")
        res = read_agent_result(c, t.read_text(f"{work}/result.json"), t.where)
        return self._localised(res, request, work, notes)

    def _localised(self, res: AgentResult, request: AgentRequest, work: str, notes: list[str]) -> AgentResult:
        """The board's result with its image paths mapped back to the same files here, and the board named."""
        t = self.transport
        detail = {"host": t.where, **{k: self._probe.get(k) for k in ("python", "machine")}}
        if (emulated := self.emulation()) is not None:
            detail["emulated"] = emulated.to_dict()     # bench says so beside its latencies
        changes: dict = {"device_detail": detail, "notes": (*res.notes, *notes)}
        # the same absolute paths the host's agent reports, so bench can pair the images of both
        if res.evaluation is not None:
            changes["evaluation"] = dataclasses.replace(
                res.evaluation, paths=tuple(local_path(p, request) for p in res.evaluation.paths))
        if res.unlabeled is not None:
            changes["unlabeled"] = dataclasses.replace(
                res.unlabeled, paths=tuple(local_path(p, request) for p in res.unlabeled.paths))
        changes["skipped"] = tuple(dataclasses.replace(s, path=local_path(s.path, request)) for s in res.skipped)
        if request.outputs and res.evaluation is not None:
            import numpy as np
            dest = Path(self._tmp.name) / "outputs.npy"
            t.pull(f"{work}/outputs.npy", dest)
            changes["outputs"] = np.load(dest)
        return dataclasses.replace(res, **changes)

    def _stage_file(self, f: Path, folder: str) -> str:
        """f into folder on the board, with the contract file the host reads it with (when it embeds none)
        as its sidecar there, so the board judges it by the same contract; the remote path of f."""
        self.transport.shell(f"mkdir -p {q(folder)}", timeout=60)
        self.transport.push(f, f"{folder}/{f.name}")
        side = contract_source(f)
        if side is not None:
            self.transport.push(side, f"{folder}/{f.name}.contract.json")
        return f"{folder}/{f.name}"

    def _stage_data(self, data: Path, work: str, notes: list[str], field: str = "data") -> str | None:
        size_mb = sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 1e6
        if size_mb > self.max_data_mb:
            notes.append(f"--{field} is {size_mb:.0f} MB (> {self.max_data_mb:.0f} MB): not sent, "
                         f"{'no accuracy' if field == 'data' else 'no changes counted'} on the board")
            self.log(notes[-1])
            return None
        self.transport.push_dir(data, f"{work}/{field}")
        return field

    # -- model staging: as is, or an engine built on the board
    def _stage_model(self, artifact: Path, engine: str | None, work: str, notes: list[str]) -> str:
        if engine == "tensorrt" and artifact.suffix == ".onnx":
            if self.probe()["modules"].get("tensorrt"):
                return self._build_engine(artifact, work)
            artifact = self._cpu_instead(artifact, notes)
        self._need(RUNTIME_MODULE[format_of(artifact)])
        return self._stage_file(artifact, f"{work}/model")

    def _cpu_instead(self, onnx: Path, notes: list[str]) -> Path:
        where, mods = self.transport.where, self.probe()["modules"]
        fallback = _cpu_fallback(onnx)
        if fallback is not None and mods.get("ai_edge_litert"):
            notes.append(f"no TensorRT on {where}: ran {fallback.name} with LiteRT on the board's CPU instead")
            onnx = fallback
        elif mods.get("onnxruntime"):
            notes.append(f"no TensorRT on {where}: ran the ONNX with ONNX Runtime on the board's CPU instead")
        else:
            raise DeviceError(f"{where} has no TensorRT (for --engine tensorrt), no LiteRT with a sibling "
                              f".tflite and no ONNX Runtime: install JetPack's TensorRT or ai-edge-litert")
        self.log(notes[-1])
        return onnx

    def _build_engine(self, onnx: Path, work: str) -> str:
        """The engine built (or reused) on the board by the agent itself; its path in work/model/."""
        t = self.transport
        self._need("tensorrt")
        home = t.shell('printf %s "$HOME"', timeout=60).stdout.strip() or "/tmp"
        trt = self.probe()["modules"]["tensorrt"]
        req = engine_build_request(onnx, self._stage_file(onnx, f"{work}/model"), home, trt)
        t.shell(f"mkdir -p {q(posixpath.dirname(req.engine))}", timeout=60)
        t.push_text(req.to_json(), f"{work}/engine-request.json")
        self.log(f"tensorrt: building the engine on {t.where} (TensorRT {trt}; reused when its stamp matches)...")
        c = t.shell(f"cd {q(work)} && " + bounded([self.python, "agent.pyz", "--build-engine", "engine-request.json",
                                                  "--result", "engine-result.json"], self.timeout),
                    timeout=self.timeout + 30)
        built: EngineBuildResult = read_reply(t.read_text(f"{work}/engine-result.json") or
                                              _no_reply(c, t.where), EngineBuildResult, t.where)
        local_name = f"{work}/model/{onnx.stem}.engine"
        t.shell(f"cp -- {q(built.engine)} {q(local_name)}", timeout=120)
        contract = read_contract(onnx, required=False)
        if contract is not None:
            t.push_text(contract.to_json(), local_name + ".contract.json")
        return local_name


def engine_build_request(onnx: Path, onnx_remote: str, home: str, tensorrt: str) -> EngineBuildRequest:
    """Where the board keeps an engine: in its cache, named by the ONNX's name and the digest of its bytes
    (two runs' model_int8_qdq.onnx never share one engine; the same bytes reuse it), beside TensorRT's
    timing cache of that TensorRT version."""
    cache = f"{home}/.cache/edgecnn"
    sha = hashlib.sha256(onnx.read_bytes()).hexdigest()
    return EngineBuildRequest(onnx=onnx_remote, engine=f"{cache}/engines/{onnx.stem}-{sha[:16]}.engine",
                              timing_cache=f"{cache}/timing-trt{tensorrt}.cache")


def _no_reply(c: Completed, where: str) -> str:
    raise DeviceError(f"{where}: the TensorRT engine build gave no result (exit {c.returncode}): "
                      f"{_last(c.stderr or c.stdout)}")


def _cpu_fallback(onnx: Path) -> Path | None:
    for cand in (onnx.with_suffix(".tflite"), *sorted(onnx.parent.glob("*int8*.tflite"))):
        if cand.is_file():
            return cand
    return None
