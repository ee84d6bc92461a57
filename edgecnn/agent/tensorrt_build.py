"""TensorRT engine from the INT8 Q/DQ ONNX, with a timing cache and a version stamp: the one builder,
run where the engine will run (``edgecnn export --tensorrt`` on this machine, the agent's
``--build-engine`` on a Jetson over SSH).

Written against TensorRT 10's Python API (explicit quantisation from Q/DQ nodes: the INT8 flag is
set, no calibrator: the implicit-quantisation calibrators are deprecated; TensorRT 8.x needs the
EXPLICIT_BATCH flag, set when the major version is below 10). An engine only runs on the GPU model
and TensorRT/CUDA (and on a Jetson, L4T/JetPack) versions it was built with, so each engine gets a
JSON stamp of those and is rebuilt, never copied, when they differ.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path

from ..core.errors import ConversionError
from ..core.io import atomic_path, atomic_write_bytes, atomic_write_json
from ..core.protocol import EngineBuildRequest, EngineBuildResult
from .runtimes.tensorrt import import_tensorrt

STAMP_KEYS = ("tensorrt", "cuda_runtime", "gpu", "compute_capability", "l4t", "jetpack", "machine")


def _dpkg_version(package: str) -> str | None:
    try:
        p = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                           timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() or None if p.returncode == 0 else None


def _cuda(out: dict) -> None:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            return
    _, v = cudart.cudaRuntimeGetVersion()
    out["cuda_runtime"] = f"{v // 1000}.{(v % 1000) // 10}"
    _, prop = cudart.cudaGetDeviceProperties(0)
    out["gpu"] = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    out["compute_capability"] = f"{prop.major}.{prop.minor}"


def stamp(trt=None) -> dict:
    """What an engine is tied to: TensorRT, CUDA, GPU and (on a Jetson) L4T/JetPack versions."""
    trt = trt or import_tensorrt()
    out = {"tensorrt": trt.__version__, "machine": platform.machine()}
    _cuda(out)
    l4t = Path("/etc/nv_tegra_release")
    if l4t.is_file():
        out["l4t"] = l4t.read_text(errors="replace").splitlines()[0].strip()
        out["jetpack"] = _dpkg_version("nvidia-jetpack")
    return out


def stamp_matches(recorded: dict, current: dict) -> bool:
    return all(recorded.get(k) == current.get(k) for k in STAMP_KEYS)


def engine_reusable(engine: Path, current: dict, onnx_sha256: str) -> dict | None:
    """The recorded stamp when `engine` was built from this ONNX for these exact versions, else None."""
    stamp_path = engine.with_name(engine.name + ".json")
    if not (engine.is_file() and stamp_path.is_file()):
        return None
    try:
        recorded = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(recorded, dict) and stamp_matches(recorded, current) and recorded.get("onnx_sha256") == onnx_sha256:
        return recorded
    return None


def _network(trt, builder, logger, onnx: Path):
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT could not parse {onnx.name}: {errs[:300]}")
    return network, parser


def _config(trt, builder, network, req: EngineBuildRequest, timing_cache: Path):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, req.workspace_mb << 20)
    config.set_flag(trt.BuilderFlag.INT8)   # Q/DQ nodes define the scales: explicit quantisation
    if req.fp16:
        config.set_flag(trt.BuilderFlag.FP16)  # layers left unquantised may run in FP16
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    inp = network.get_input(0)
    shape = tuple(inp.shape)
    if any(d < 0 for d in shape):   # a dynamic batch axis: optimise for 1, allow up to max_batch
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, (1, *shape[1:]), (1, *shape[1:]), (req.max_batch, *shape[1:]))
        config.add_optimization_profile(profile)
    return config


def build_engine(req: EngineBuildRequest, log=lambda msg: None) -> EngineBuildResult:
    """Build (or reuse, when its stamp matches) an engine from a Q/DQ ONNX."""
    trt = import_tensorrt()
    onnx, engine, timing_cache = Path(req.onnx), Path(req.engine), Path(req.timing_cache)
    current = stamp(trt)
    sha = hashlib.sha256(onnx.read_bytes()).hexdigest()
    recorded = engine_reusable(engine, current, sha)
    if recorded is not None:
        log(f"tensorrt: reusing {engine.name} (built for {current.get('gpu')}, TensorRT {current['tensorrt']})")
        return EngineBuildResult(engine=str(engine), reused=True, stamp=recorded)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _network(trt, builder, logger, onnx)
    config = _config(trt, builder, network, req, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConversionError(f"TensorRT failed to build an engine from {onnx.name}")
    atomic_write_bytes(engine, bytes(serialized))
    with atomic_path(timing_cache) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    recorded = {**current, "onnx": onnx.name, "onnx_sha256": sha, "int8": True, "fp16": req.fp16}
    atomic_write_json(engine.with_name(engine.name + ".json"), recorded)
    return EngineBuildResult(engine=str(engine), reused=False, stamp=recorded)
