"""phone: a real Android phone over adb, timed with LiteRT's benchmark tool.

The transport is the real ``adb`` client (``adb -s SERIAL push|pull|shell``). The device checks
the phone (none attached, unauthorized, several without a serial: one clear line each), reads its
ABI and model, pushes the .tflite and LiteRT's ``benchmark_model`` binary to /data/local/tmp, runs
it and parses its output (latency and memory) into the agent's JSON shape.

The benchmark binary is supplied by the user (``benchmark_binary``): it is not fetched. Get the
prebuilt ``android_aarch64_benchmark_model`` (or ``android_arm_benchmark_model`` for 32-bit phones)
from LiteRT/TensorFlow Lite's "Performance measurement" page (nightly prebuilt binaries), or build
``//tflite/tools/benchmark:benchmark_model`` with Bazel ``--config=android_arm64``.

The tool feeds random inputs: accuracy is not measured on the phone (use ``phone-emulated`` for
correctness on an Arm CPU). It prints avg/std/min/max, not percentiles (some builds print
p5/median/p95): when absent, p50 is the average and p90/p99 are approximated as avg + 1.28/2.33
std, marked in ``latency_source``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

from ..core.errors import DeviceError, InputError
from ..core.protocol import AgentRequest, AgentResult, Latency
from .base import Capabilities, Completed, Device, DeviceOptions, Text, Transport, option

REMOTE_DIR = "/data/local/tmp/edgecnn"
BINARY_HELP = ("pass --benchmark-binary PATH: LiteRT's android_aarch64_benchmark_model (prebuilt nightly "
               "binaries are linked from the TensorFlow Lite / LiteRT 'Performance measurement' page, or build "
               "//tflite/tools/benchmark:benchmark_model with Bazel --config=android_arm64)")


def parse_devices(text: str) -> list[dict]:
    """`adb devices -l` -> [{serial, state, model, product, device, transport_id}]."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        d = {"serial": parts[0], "state": parts[1]}
        for kv in parts[2:]:
            if ":" in kv:
                k, v = kv.split(":", 1)
                d[k] = v
        out.append(d)
    return out


def choose_device(devices: list[dict], serial: str | None) -> dict:
    """The device to use, or a DeviceError saying why none can be."""
    if serial:
        match = [d for d in devices if d["serial"] == serial]
        if not match:
            seen = ", ".join(d["serial"] for d in devices) or "none"
            raise DeviceError(f"no Android device {serial!r} attached (attached: {seen})")
        d = match[0]
    else:
        if not devices:
            raise DeviceError("no Android device attached: connect a phone with USB debugging on "
                              "(adb devices lists none)")
        if len(devices) > 1:
            raise DeviceError(f"{len(devices)} Android devices attached "
                              f"({', '.join(d['serial'] for d in devices)}): choose one with --serial")
        d = devices[0]
    if d["state"] == "unauthorized":
        raise DeviceError(f"{d['serial']} is unauthorized: unlock the phone and accept the USB debugging "
                          f"prompt (RSA key) for this computer")
    if d["state"] != "device":
        raise DeviceError(f"{d['serial']} is {d['state']}: reconnect it (adb reconnect) and try again")
    return d


_F = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"


def parse_benchmark_output(text: str) -> dict:
    """LiteRT benchmark_model's log -> latency (ms), memory (MB) and what it ran.

    Reads the 'Inference timings in us' summary, the last 'count=... avg=... std=...' statistics
    line (the timed runs), optional p5/median/p95, 'Memory footprint delta ... init= overall=' and
    'Overall peak memory footprint (MB) via periodic monitoring'.
    """
    res: dict = {}
    m = re.search(r"Inference timings in us: Init: " + _F + r", First inference: " + _F +
                  r", Warmup \(avg\): " + _F + r", Inference \(avg\): " + _F, text)
    if m:
        init, first, warm, avg = (float(g) for g in m.groups())
        res["timings_us"] = {"init": init, "first": first, "warmup_avg": warm, "avg": avg}
    stats = [dict(re.findall(r"(\w+)=" + _F, line)) for line in text.splitlines()
             if re.search(r"\bcount=\d+", line) and "avg=" in line]
    lat = None
    if stats:
        s = {k: float(v) for k, v in stats[-1].items()}
        mean, std = s["avg"] / 1000.0, s.get("std", 0.0) / 1000.0
        lat = {"mean": mean, "std": std, "min": s.get("min", s["avg"]) / 1000.0,
               "max": s.get("max", s["avg"]) / 1000.0, "n": int(s["count"])}
        if "median" in s:
            lat["p50"] = s["median"] / 1000.0
            lat["p90"] = s.get("p95", s["median"]) / 1000.0 if "p90" not in s else s["p90"] / 1000.0
            lat["p99"] = s["p99"] / 1000.0 if "p99" in s else min(lat["max"], mean + 2.33 * std)
            res["latency_source"] = "benchmark_model percentiles (p90 from p95 when p90 is not printed)"
        else:
            lat["p50"] = mean
            lat["p90"] = min(lat["max"], mean + 1.2816 * std)
            lat["p99"] = min(lat["max"], mean + 2.3263 * std)
            res["latency_source"] = "benchmark_model avg/std: p50 = avg, p90/p99 = avg + 1.28/2.33 std (capped at max)"
    elif m:
        a = res["timings_us"]["avg"] / 1000.0
        lat = {"mean": a, "p50": a, "p90": a, "p99": a, "n": None}
        res["latency_source"] = "benchmark_model average only"
    if lat:
        res["latency_ms"] = lat
        res["throughput_ips"] = round(1000.0 / lat["mean"], 2) if lat["mean"] else None
    m = re.search(r"Memory footprint delta from the start of the tool \(MB\): init=" + _F + r" overall=" + _F, text)
    if m:
        res["memory_mb"] = {"init": float(m.group(1)), "overall": float(m.group(2))}
    m = re.search(r"Overall peak memory footprint \(MB\) via periodic monitoring: " + _F, text)
    if m:
        res.setdefault("memory_mb", {})["peak"] = float(m.group(1))
    mem = res.get("memory_mb") or {}
    res["peak_rss_mb"] = mem.get("peak", mem.get("overall"))
    m = re.search(r"The input model file size \(MB\): " + _F, text)
    if m:
        res["size_mb"] = float(m.group(1))
    m = re.search(r"#threads used for CPU inference: \[(\d+)\]", text) or re.search(r"Num threads: \[(\d+)\]", text)
    if m:
        res["threads"] = int(m.group(1))
    if "XNNPACK delegate" in text:
        res["delegate"] = "xnnpack"
    return res


def benchmark_argv(binary: str, graph: str, *, threads: int, warmup: int, runs: int,
                   min_secs: float | None = None) -> list[str]:
    argv = [binary, f"--graph={graph}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={runs}", "--report_peak_memory_footprint=true"]
    if min_secs is not None:
        argv.append(f"--min_secs={min_secs:g}")
    return argv


class AdbTransport(Transport):
    """The real adb client: ``adb [-s SERIAL] push|pull|shell``; shell arguments quoted."""

    def __init__(self, serial: str | None = None, adb: str = "adb", timeout: float = 600):
        self.adb = shutil.which(adb)
        if self.adb is None:
            raise DeviceError("no adb client: install Android platform tools (apt-get install adb)")
        self.serial, self.timeout = serial, timeout

    def _adb(self, args: list[str], timeout: float | None = None) -> Completed:
        argv = [self.adb, *(["-s", self.serial] if self.serial else []), *args]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout or self.timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"adb {args[0]} timed out after {timeout or self.timeout:.0f} s") from None
        return Completed(p.returncode, p.stdout, p.stderr)

    def devices(self) -> list[dict]:
        c = Completed(1, "", "")
        try:
            p = subprocess.run([self.adb, "devices", "-l"], capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            c = Completed(p.returncode, p.stdout, p.stderr)
        except subprocess.TimeoutExpired:
            raise DeviceError("adb devices timed out: the adb server does not answer (adb kill-server)") from None
        if c.returncode != 0:
            raise DeviceError(f"adb cannot list devices: {(c.stderr.strip().splitlines() or ['no output'])[-1]}")
        return parse_devices(c.stdout)

    def run(self, argv: list[str], timeout: float | None = None) -> Completed:
        return self._adb(["shell", " ".join(shlex.quote(a) for a in argv)], timeout)

    def push(self, local: Path, remote: str) -> None:
        c = self._adb(["push", str(local), remote])
        if c.returncode != 0:
            raise DeviceError(f"adb push {Path(local).name} failed: {_last(c.stderr or c.stdout)}")

    def pull(self, remote: str, local: Path) -> None:
        c = self._adb(["pull", remote, str(local)])
        if c.returncode != 0:
            raise DeviceError(f"adb pull {remote} failed: {_last(c.stderr or c.stdout)}")


def _last(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1][:300] if lines else "no output"


class PhoneOptions(DeviceOptions):
    """What the phone device takes: which phone, and LiteRT's benchmark tool for it."""

    serial: Text | None = option(None, "adb serial (needed when several devices are attached).", identifies=True)
    benchmark_binary: Text | None = option(None, "LiteRT's benchmark_model binary for the phone's ABI.", path=True)


class PhoneDevice(Device):
    """Options: serial, benchmark_binary (path to LiteRT's benchmark_model for the phone's ABI),
    threads (default 4), adb (client path), timeout (seconds)."""

    name = "phone"
    capabilities = Capabilities(formats=("tflite",), accuracy=False)
    Options = PhoneOptions

    def __init__(self, serial: str | None = None, benchmark_binary: str | None = None, threads: int = 4,
                 adb: str = "adb", timeout: float = 600, log=None, **options):
        super().__init__(log=log, serial=serial, benchmark_binary=benchmark_binary, threads=threads, **options)
        self.serial, self.threads = serial, threads
        self.binary = Path(benchmark_binary) if benchmark_binary else None
        self.transport = AdbTransport(serial, adb=adb, timeout=timeout)
        self.info: dict = {}

    def describe(self) -> dict:
        return {"device": self.name, **{k: self.info.get(k) for k in ("serial", "model", "abi") if self.info.get(k)}}

    def connect(self) -> dict:
        if not self.info:
            d = choose_device(self.transport.devices(), self.serial)
            self.transport.serial = d["serial"]
            abi = self.transport.run(["getprop", "ro.product.cpu.abi"], timeout=60).stdout.strip()
            model = self.transport.run(["getprop", "ro.product.model"], timeout=60).stdout.strip()
            self.info = {"serial": d["serial"], "abi": abi or None, "model": model or d.get("model")}
        return self.info

    def _check(self, artifact: Path) -> dict:
        if artifact.suffix != ".tflite":
            raise InputError(f"{artifact.name}: the phone device runs .tflite models (LiteRT benchmark tool)")
        if self.binary is None:
            raise InputError(f"the phone device needs LiteRT's benchmark tool: {BINARY_HELP}")
        if not self.binary.is_file():
            raise InputError(f"benchmark binary not found: {self.binary} ({BINARY_HELP})")
        info = self.connect()
        if info.get("abi") and not info["abi"].startswith("arm64") and "aarch64" in self.binary.name:
            raise InputError(f"{info['serial']} is {info['abi']}: use the 32-bit android_arm benchmark binary")
        return info

    def run(self, request: AgentRequest) -> AgentResult:
        """The request mapped onto benchmark_model flags (threads, warm-up, runs, minimum seconds)."""
        artifact = Path(request.model)
        info = self._check(artifact)
        t = self.transport
        folder = f"{REMOTE_DIR}/run-{uuid.uuid4().hex[:12]}"
        graph, binary = f"{folder}/model.tflite", f"{folder}/benchmark_model"
        t.run(["mkdir", "-p", folder], timeout=60)
        try:
            t.push(artifact, graph)
            t.push(self.binary, binary)
            t.run(["chmod", "755", binary], timeout=60)
            argv = benchmark_argv(binary, graph, threads=request.threads or self.threads, warmup=request.warmup,
                                  runs=request.runs, min_secs=request.min_seconds)
            c = t.run(argv, timeout=t.timeout)
            text = c.stdout + "\n" + c.stderr
            parsed = parse_benchmark_output(text)
            if c.returncode != 0 or "latency_ms" not in parsed:
                raise DeviceError(f"benchmark_model failed on {info['serial']} (exit {c.returncode}): {_last(text)}")
        finally:
            t.run(["rm", "-rf", folder], timeout=60)
        notes = () if request.data is None else (
            "accuracy is not measured on the phone (the benchmark tool feeds random inputs): "
            "use --device phone-emulated for correctness on an Arm CPU",)
        return AgentResult(
            artifact=artifact.name, format="tflite", size_mb=round(artifact.stat().st_size / 1e6, 4),
            runtime="litert benchmark_model", runtime_version="unknown", threads=parsed.get("threads"),
            platform={"machine": info.get("abi"), "system": "Android", "model": info.get("model")},
            tensorflow_imported=False, latency_ms=Latency(**parsed["latency_ms"]), warmup=request.warmup,
            peak_rss_mb=parsed.get("peak_rss_mb"), latency_source=parsed.get("latency_source"),
            device_detail={"memory_mb": parsed.get("memory_mb"), "timings_us": parsed.get("timings_us")},
            notes=notes)
