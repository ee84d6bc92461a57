"""Empirical bias correction of the INT8 Q/DQ ONNX: the same correction as the TFLite's (edgecnn/export/bias.py),
so that TensorRT and OpenVINO, which build from this file, get it too.

For every Conv/Gemm whose bias is an int32 initializer behind a DequantizeLinear (what ONNX Runtime's static
quantization writes), in graph order: the Q/DQ model as ONNX Runtime runs it on the CPU (the ops before
it in integer kernels; the op itself, whose output is read, on its dequantized inputs: the Q/DQ
semantics a TensorRT engine implements) and the float model it was quantized from run the calibration
images; the per-channel mean error of the op's output,
where the quantized activation after it is not clamped, is subtracted from the int32 bias in its own step."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .bias import VALUES_PER_IMAGE, unclamped_mean_error

BATCH = 16


@dataclass(frozen=True)
class QdqLayer:
    output: str           # the op's float output (in both models)
    bias: str             # its int32 bias initializer
    bias_scale: str       # that initializer's DequantizeLinear scale
    lo: float             # the range its output keeps after quantization (and a Clip/Relu after it)
    hi: float


def correct_qdq_biases(qdq, reference, images: np.ndarray, seed: int = 0) -> tuple[object, dict]:
    """The Q/DQ ModelProto with each bias corrected against the float ModelProto `reference` (the model
    the quantizer read, same tensor names). Returns (model, facts)."""
    t0 = time.perf_counter()
    layers = qdq_layers(qdq)
    names = [l.output for l in layers]
    ref = _sampled_outputs(reference, images, names, list(range(len(layers))), True, seed)
    errors = []
    for k, layer in enumerate(layers):
        got = _sampled_outputs(_up_to(qdq, layer.output), images, [layer.output], [k], True, seed)[0]
        err, count = unclamped_mean_error(got, ref[k], layer.lo, layer.hi)
        errors.append(float(np.abs(err).mean() / (layer.hi - layer.lo) * 255))   # in 8-bit steps of its range
        _patch(qdq, layer, err, count)
    return qdq, {"ops": len(layers), "images": len(images), "seconds": round(time.perf_counter() - t0, 1),
                 "mean_error_steps": round(float(np.mean(errors)) if errors else 0.0, 4)}


def qdq_layers(model) -> list[QdqLayer]:
    """Conv/Gemm ops with a quantized int32 bias, in graph order, with the range their output keeps."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    made_by = {o: n for n in model.graph.node for o in n.output}
    read_by: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            read_by.setdefault(i, []).append(n)
    value = lambda name: float(numpy_helper.to_array(inits[name]).reshape(-1)[0])   # noqa: E731
    layers = []
    for n in model.graph.node:
        if n.op_type not in ("Conv", "Gemm") or len(n.input) < 3:
            continue
        dq = made_by.get(n.input[2])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits \
                or inits[dq.input[0]].data_type != TensorProto.INT32:
            continue
        q = next((c for c in read_by.get(n.output[0], []) if c.op_type == "QuantizeLinear"), None)
        if q is None:
            continue
        s = value(q.input[1])
        lo, hi = -128 * s, 127 * s
        after = next((c for c in read_by.get(next(c for c in read_by[q.output[0]]).output[0], [])
                      if c.op_type in ("Clip", "Relu")), None) if read_by.get(q.output[0]) else None
        if after is not None and after.op_type == "Relu":
            lo = max(lo, 0.0)
        elif after is not None:
            if len(after.input) > 1 and after.input[1] in inits:
                lo = max(lo, value(after.input[1]))
            if len(after.input) > 2 and after.input[2] in inits:
                hi = min(hi, value(after.input[2]))
        layers.append(QdqLayer(n.output[0], dq.input[0], dq.input[1], lo, hi))
    return layers


def _up_to(model, output: str):
    """The part of the graph that computes `output` (the rest would run for nothing)."""
    import onnx.utils
    return onnx.utils.Extractor(model).extract_model([model.graph.input[0].name], [output])


def _session(model, outputs: list[str], optimized: bool):
    import onnx
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None)
                          for o in outputs if o not in have)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    if not optimized:    # keep every Q/DQ pair as written: no fusion into integer kernels
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _sampled_outputs(model, images: np.ndarray, names: list[str], ids: list[int], optimized: bool,
                     seed: int) -> list[np.ndarray]:
    """For each named tensor: its values at sampled positions of every image, (samples, channels). The
    positions depend on (seed, layer id, image) alone, so two models are compared at the same places."""
    sess = _session(model, names, optimized)
    feed = sess.get_inputs()[0].name
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for i in range(0, len(images), BATCH):
        for k, v in enumerate(sess.run(names, {feed: images[i:i + BATCH].astype(np.float32)})):
            v = np.moveaxis(v, 1, -1) if v.ndim == 4 else v                  # NCHW -> NHWC
            flat = v.reshape(v.shape[0], -1, v.shape[-1])
            for j in range(len(flat)):
                parts[k].append(flat[j][_positions(seed, ids[k], i + j, flat.shape[1], flat.shape[2])])
    return [np.concatenate(p) for p in parts]


def _positions(seed: int, layer: int, image: int, hw: int, channels: int) -> np.ndarray:
    keep = min(hw, max(1, VALUES_PER_IMAGE // max(channels, 1)))
    if keep == hw:
        return np.arange(hw)
    return np.sort(np.random.default_rng([seed, layer, image]).choice(hw, keep, replace=False))


def _patch(model, layer: QdqLayer, err: np.ndarray, count: np.ndarray) -> None:
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    bias = numpy_helper.to_array(inits[layer.bias]).astype(np.int64)
    step = np.broadcast_to(numpy_helper.to_array(inits[layer.bias_scale]).astype(np.float64), bias.shape)
    delta = np.where(count > 0, np.rint(err / step), 0).astype(np.int64)
    new = np.clip(bias - delta, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    inits[layer.bias].CopyFrom(numpy_helper.from_array(new, layer.bias))
