"""phone-emulated: correctness on an emulated Arm64 CPU, latency ESTIMATED from a device profile.

Correctness: the agent runs under QEMU user-mode emulation (``qemu-aarch64-static``) on a named
Arm core, with an Arm64 Python and the real LiteRT Arm64 kernels from a small sysroot prepared once
under the user's cache directory. The same model runs on the host; the class scores of both are
compared (top-1 agreement, largest score difference, bit-exactness — INT8 with XNNPACK is expected
to be bit-exact between x86 and Arm64).

Latency: emulated timings are 150-300x slower than the device and say nothing about it. The latency
is estimated from a profile (devices/profiles/*.yaml) that names the device, its QEMU core, its
threads and one or two anchor models with published latencies on that device. The anchors and the
candidate are benched side by side on the host in the same run and scaled:

    estimated_ms = candidate_host_ms * anchor_device_ms / anchor_host_ms

With two anchors (INT8 and float) the disagreement of their scale factors is the uncertainty.

The emulation itself is edgecnn.emulation.phone's: the sysroot is edgecnn.emulation.arm64's SYSROOT
(built once, ~1 minute; root or fakeroot): Debian's arm64 packages unpacked, and the aarch64 wheels of
ai-edge-litert, numpy and Pillow at the host's versions in site/, seen per core through a view that
carries that core's /proc/cpuinfo. This module is the device: profiles, agreement and the estimate.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core.artifact import read_contract
from ..core.errors import InputError
from ..core.protocol import AgentRequest, AgentResult, Latency
from ..emulation.arm64 import CORES, qemu_version
from ..emulation.phone import agent_command
from ..paths import shared_data, user_cache
from .base import (DEFAULT_TIMEOUT_S, Capabilities, Device, DeviceOptions, LocalTransport, Text, option,
                   run_agent_locally)
from .host import HostDevice

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "pixel3"
# ----------------------------------------------------------------------------------- profiles
def list_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str) -> dict:
    import yaml
    p = Path(name)
    path = p if p.suffix in (".yaml", ".yml") and p.is_file() else PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise InputError(f"unknown device profile {name!r}; available: {', '.join(list_profiles())}")
    try:
        prof = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise InputError(f"{path.name}: not valid YAML ({str(e).splitlines()[0]})") from None
    for key in ("name", "device", "qemu_cpu", "threads", "anchors"):
        if not isinstance(prof, dict) or key not in prof:
            raise InputError(f"profile {path.name}: missing {key!r}")
    if prof["qemu_cpu"] not in CORES:
        raise InputError(f"profile {path.name}: qemu_cpu {prof['qemu_cpu']!r} is not one of {', '.join(CORES)}")
    for a in prof["anchors"]:
        if not {"model", "precision", "ms", "source"} <= set(a):
            raise InputError(f"profile {path.name}: each anchor needs model, precision, ms and source")
    return prof


def anchor_path(model: str, log=print) -> Path | None:
    """The anchor model file: a file under shared_data()/weights/reference, or a built float anchor."""
    if model == "build:mobilenet_v2_1.0_224_float":
        return float_anchor(log)
    p = shared_data() / "weights" / "reference" / model
    return p if p.is_file() else None


def float_anchor(log=print) -> Path | None:
    """Float MobileNetV2 1.0/224 (ImageNet weights from shared_data()/weights), built once and cached.

    Built in a separate process (TensorFlow never enters the benchmarking process). None when
    TensorFlow is missing: the estimate then rests on the INT8 anchor alone.
    """
    out = user_cache() / "anchors" / "mobilenet_v2_1.0_224_float.tflite"
    if out.is_file():
        return out
    # the weights do not change the float latency; they are loaded when present
    weights = shared_data() / "weights" / "mobilenet_v2_1.0_224_imagenet.weights.h5"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    script = (
        "import os, sys\nos.environ['TF_CPP_MIN_LOG_LEVEL']='3'\nimport tensorflow as tf\n"
        "m = tf.keras.applications.MobileNetV2(input_shape=(224,224,3), alpha=1.0, weights=None, classes=1001)\n"
        "m.load_weights(sys.argv[1]) if os.path.isfile(sys.argv[1]) else None\n"
        "c = tf.lite.TFLiteConverter.from_keras_model(m)\n"
        "c.target_spec.supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS]\n"
        "open(sys.argv[2],'wb').write(c.convert())\n")
    log("phone-emulated: building the float MobileNetV2 anchor once (TensorFlow, ~30 s)...")
    try:
        p = subprocess.run([sys.executable, "-c", script, str(weights), str(tmp)], capture_output=True,
                           text=True, timeout=600)
    except subprocess.TimeoutExpired:
        p = None
    if p is None or p.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        return None
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------------- agreement
def agreement(host_scores, emulated_scores, integer_model: bool, output_scale: float | None = None) -> dict:
    """How the class scores of one model on two machines compare, image by image.

    output_scale: the quantized output's scale, to count differences in LSB (least significant bits).
    """
    import numpy as np
    a, b = np.asarray(host_scores), np.asarray(emulated_scores)
    if a.shape != b.shape:
        return {"images": None, "error": f"score shapes differ: host {a.shape}, emulated {b.shape}"}
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    out = {"images": int(a.shape[0]), "top1_agreement": float((a.argmax(1) == b.argmax(1)).mean()),
           "max_abs_diff": float(diff.max()), "bit_exact": bool(np.array_equal(a, b)), "int8": integer_model,
           "values_differing": int((diff > 0).sum()), "values": int(diff.size)}
    if output_scale:
        out["max_diff_lsb"] = int(round(float(diff.max()) / output_scale))
    return out


def estimate(profile: dict, candidate: Latency, anchors_host: dict[str, float], precision: str
             ) -> tuple[Latency, dict] | None:
    """Scale the candidate's host latency by each anchor's device/host ratio: (latency, how).

    anchors_host: {anchor model: host p50 ms}. The anchor of the candidate's precision is the primary
    one; the other gives the uncertainty. None when no anchor was timed.
    """
    scales = {}
    for a in profile["anchors"]:
        host_ms = anchors_host.get(a["model"])
        if host_ms:
            scales[a["model"]] = {"precision": a["precision"], "device_ms": float(a["ms"]), "host_ms": host_ms,
                                  "scale": float(a["ms"]) / host_ms, "source": a["source"]}
    if not scales:
        return None
    primary = next((m for m, s in scales.items() if s["precision"] == precision), next(iter(scales)))
    s = scales[primary]["scale"]
    others = [v["scale"] for m, v in scales.items() if m != primary]
    unc = max((abs(o - s) / s * 100.0 for o in others), default=None)
    return candidate.scaled(s), {
        "profile": profile["name"], "device": profile["device"], "anchor": primary,
        "anchor_device_ms": scales[primary]["device_ms"], "anchor_host_ms": round(scales[primary]["host_ms"], 4),
        "scale": round(s, 4), "uncertainty_pct": round(unc, 1) if unc is not None else None,
        "candidate_host_ms": round(candidate.p50, 4),
        "anchors": {m: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()} for m, d in scales.items()},
        "method": "candidate_host_ms * anchor_device_ms / anchor_host_ms, the candidate and the anchor timed "
                  "in turns in one process on the host",
        "note": None if unc is not None else "single anchor: no uncertainty from a second anchor"}


# ----------------------------------------------------------------------------------- device
class EmulatedPhoneOptions(DeviceOptions):
    """What the phone-emulated device takes: the phone profile it emulates."""

    profile: Text | None = option(None, "device profile name or YAML (default pixel3).", identifies=True)


class EmulatedPhoneDevice(Device):
    """Options: profile (name or YAML path, default pixel3), threads (host threads for the
    side-by-side latency, default min(profile threads, host CPUs)), rounds (side-by-side rounds, 2),
    timeout (seconds for one emulated agent run)."""

    name = "phone-emulated"
    capabilities = Capabilities(formats=("tflite",), latency_estimated=True)
    Options = EmulatedPhoneOptions

    def __init__(self, profile: str | None = None, threads: int | None = None, rounds: int = 2,
                 timeout: float = DEFAULT_TIMEOUT_S, log=None, **options):
        super().__init__(log=log or (lambda msg: print(msg, file=sys.stderr)), profile=profile, threads=threads,
                         rounds=rounds, **options)
        self.profile = load_profile(profile or DEFAULT_PROFILE)
        self.threads, self.timeout = threads, timeout
        self.rounds = max(1, int(rounds))
        self.host = HostDevice(timeout=timeout)
        self.transport = LocalTransport()
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecnn-emulated-")

    def close(self) -> None:
        self.host.close()
        self._tmp.cleanup()

    def describe(self) -> dict:
        return {"device": self.name, "profile": self.profile["name"], "emulates": self.profile["device"],
                "qemu_cpu": self.profile["qemu_cpu"], "threads": self.profile["threads"]}

    @property
    def emulated_threads(self) -> int:
        return min(int(self.profile["threads"]), os.cpu_count() or 1)

    # -- emulated run
    def run_emulated(self, request: AgentRequest) -> AgentResult:
        """The agent under QEMU on the profile's Arm core, in a fresh work folder of its own."""
        core = self.profile["qemu_cpu"]
        command, env = agent_command(self.host.agent(), core, int(self.profile.get("cpus", self.profile["threads"])),
                                     self.log)
        return run_agent_locally(self.transport, command, request, parent=Path(self._tmp.name), env=env,
                                 timeout=self.timeout, where=f"the emulated {core}")

    # -- the device
    def run(self, request: AgentRequest) -> AgentResult:
        """Correctness under emulation (scores compared with the host's), latency estimated on the host."""
        notes: list[str] = []
        t0 = time.perf_counter()
        res, agree = self._correctness(request, notes)
        emu_s = time.perf_counter() - t0
        latency, how = self._estimated_latency(request, res, notes) if request.latency else (None, None)
        emulation = {"qemu": qemu_version(), "qemu_cpu": self.profile["qemu_cpu"], "threads": self.emulated_threads,
                     "wall_s": round(emu_s, 1), "host": platform.machine(),
                     "emulated_peak_rss_mb": res.peak_rss_mb}
        return dataclasses.replace(
            res, latency_ms=latency, latency_estimated=latency is not None, estimate=how, warmup=None,
            agreement_with_host=agree, device_detail={"emulation": emulation}, notes=(*res.notes, *notes),
            outputs=res.outputs if request.outputs else None)

    def _correctness(self, request: AgentRequest, notes: list[str]) -> tuple[AgentResult, dict | None]:
        """The same images through the emulated Arm core and the host; their class scores compared."""
        synthetic = None if request.data is not None else self._random_images(Path(request.model))
        data = request.data if synthetic is None else (str(synthetic) if synthetic else None)
        check = dataclasses.replace(request, latency=False, threads=self.emulated_threads, cpus=None,
                                    baseline=None, data=data, outputs="outputs.npy" if data else None)
        res = self.run_emulated(check)
        if data is None:
            notes.append("the model carries no contract: agreement with the host not measured")
            return res, None
        host = self.host.run(check)
        agree = agreement(host.outputs, res.outputs, res.integer_input)
        agree["inputs"] = "random images (no --data)" if synthetic else "--data"
        if synthetic:
            res = dataclasses.replace(res, evaluation=None, skipped=())
        return res, agree

    def _estimated_latency(self, request: AgentRequest, res: AgentResult, notes: list[str]):
        """The candidate and each anchor timed in turns in one host process (their ratio holds on a busy
        machine where separate runs drift by 10-20%), scaled by the profile's published anchor times."""
        anchors = self._anchors(notes)
        if not anchors:
            notes.append("no anchor model available: no latency estimate (the anchor "
                         "mobilenet_v2_1.0_224_quant.tflite belongs in the shared data folder weights/reference)")
            self.log("phone-emulated: " + notes[-1])
            return None, None
        threads = self.threads or request.threads or self.emulated_threads
        timed = dataclasses.replace(request, data=None, outputs=None, threads=threads, cpus=None, latency=True)
        cand: list[Latency] = []
        ratios: dict[str, list[float]] = {}
        for _ in range(self.rounds):
            for model, path in anchors:
                r = self.host.run(dataclasses.replace(timed, baseline=str(path)))
                cand.append(r.latency_ms)
                ratios.setdefault(model, []).append(r.vs_baseline.p50_ratio)
        med = Latency.median(cand)
        # each anchor's host time as seen from the candidate's: candidate p50 / (candidate/anchor ratio)
        anchors_ms = {m: med.p50 / statistics.median(v) for m, v in ratios.items()}
        precision = "int8" if res.integer_input else "float"
        latency, how = estimate(self.profile, med, anchors_ms, precision)
        how.update(ratios_to_anchor={m: [round(x, 4) for x in v] for m, v in ratios.items()}, host_threads=threads,
                   profile_threads=self.profile["threads"], rounds=self.rounds)
        return latency, how

    def _anchors(self, notes: list[str]) -> list[tuple[str, Path]]:
        anchors = []
        for a in self.profile["anchors"]:
            p = anchor_path(a["model"], self.log)
            if p is None:
                notes.append(f"anchor {a['model']} not available ("
                             + ("TensorFlow is needed to build it" if a["model"].startswith("build:")
                                else "expected in the shared data folder weights/reference") + "): not used")
            else:
                anchors.append((a["model"], p))
        return anchors

    def _random_images(self, artifact: Path) -> Path | None:
        """Without --data: a few random images under the model's first label, for the agreement only."""
        c = read_contract(artifact, required=False)
        if c is None:
            return None
        import numpy as np
        from PIL import Image
        root = Path(self._tmp.name) / "random_images"
        d = root / c.labels[0]
        if d.is_dir():
            return root
        d.mkdir(parents=True)
        rng = np.random.default_rng(0)
        h, w = c.input_size
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"random_{i}.png")
        return root
