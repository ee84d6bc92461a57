"""TensorRT engine from the INT8 Q/DQ ONNX, with a timing cache and a version stamp.

Written against TensorRT 10's Python API (explicit quantisation from Q/DQ nodes: the INT8 flag is
set, no calibrator: the implicit-quantisation calibrators are deprecated). An engine only runs on
the GPU model and TensorRT/CUDA versions it was built with, so each engine gets a JSON stamp of
those and is rebuilt, never copied, when they differ. The same functions run on a Jetson, where
the devices' SSH path builds the engine on the board.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

from ..io import atomic_path, atomic_write_bytes, atomic_write_json
from ..runtimes.tensorrt import import_tensorrt
from .tflite import ConversionError


def stamp(trt=None) -> dict:
    """What an engine is tied to: TensorRT, CUDA, GPU and (on a Jetson) L4T/JetPack versions."""
    trt = trt or import_tensorrt()
    out = {"tensorrt": trt.__version__, "machine": platform.machine()}
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            cudart = None
    if cudart is not None:
        _, v = cudart.cudaRuntimeGetVersion()
        out["cuda_runtime"] = f"{v // 1000}.{(v % 1000) // 10}"
        _, prop = cudart.cudaGetDeviceProperties(0)
        out["gpu"] = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
        out["compute_capability"] = f"{prop.major}.{prop.minor}"
    l4t = Path("/etc/nv_tegra_release")
    if l4t.is_file():
        out["l4t"] = l4t.read_text(errors="replace").splitlines()[0].strip()
    return out


def stamp_matches(recorded: dict, current: dict) -> bool:
    keys = ("tensorrt", "cuda_runtime", "gpu", "compute_capability", "l4t", "machine")
    return all(recorded.get(k) == current.get(k) for k in keys)


def build_engine(onnx_path: Path, engine_path: Path, *, timing_cache: Path, fp16: bool = True,
                 workspace_mb: int = 1024, log=print) -> dict:
    """Build (or reuse, when its stamp matches) an engine from a Q/DQ ONNX. Returns the stamp."""
    trt = import_tensorrt()
    current = stamp(trt)
    stamp_path = engine_path.with_name(engine_path.name + ".json")
    if engine_path.is_file() and stamp_path.is_file():
        recorded = json.loads(stamp_path.read_text())
        if stamp_matches(recorded, current) and recorded.get("onnx_sha256") == _sha(onnx_path):
            log(f"tensorrt: reusing {engine_path.name} (built for {current.get('gpu')}, TensorRT {current['tensorrt']})")
            return recorded
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"TensorRT could not parse {onnx_path.name}: {errs[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    config.set_flag(trt.BuilderFlag.INT8)   # Q/DQ nodes define the scales: explicit quantisation
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)  # layers left unquantised may run in FP16
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    inp = network.get_input(0)
    profile = builder.create_optimization_profile()
    shape = tuple(inp.shape)
    one = (1, *shape[1:])
    profile.set_shape(inp.name, one, one, (max(1, 8), *shape[1:]))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConversionError(f"TensorRT failed to build an engine from {onnx_path.name}")
    atomic_write_bytes(engine_path, bytes(serialized))
    with atomic_path(timing_cache) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    recorded = {**current, "onnx": onnx_path.name, "onnx_sha256": _sha(onnx_path), "int8": True, "fp16": fp16}
    atomic_write_json(stamp_path, recorded)
    return recorded


def _sha(p: Path) -> str:
    import hashlib
    return hashlib.sha256(p.read_bytes()).hexdigest()
