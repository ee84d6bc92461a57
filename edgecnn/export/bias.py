"""Empirical bias correction of a full-integer INT8 TFLite (Nagel et al., "Data-Free Quantization
Through Weight Equalization and Bias Correction", ICCV 2019, in its empirical form; AIMET ships the
same idea for PyTorch/ONNX graphs, nothing maintained does it for a .tflite, hence this module).

Rounding weights and activations to 8 bits shifts each output channel's mean; the shift adds up layer
after layer and moves borderline images across the decision boundary. For every CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED op, in graph order, the INT8 model (with the ops before it already
corrected) and the float model run the same calibration images; the op's per-channel mean error
(dequantized INT8 output minus float output, where neither is clamped by the int8 range or a fused ReLU)
is subtracted from its int32 bias, in the bias's own quantization step. Only bias values change: the
graph, its ops, scales, size and latency are those of the model it corrects, integer-only as it was."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .graph import Op, TFLiteGraph

TARGETS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
VALUES_PER_IMAGE = 8192   # activations kept per op and image (sampled positions, every channel)


@dataclass(frozen=True)
class Layer:
    """One op to correct: the INT8 graph's op, its output/input/bias tensors, the float model's output."""

    op: Op
    output: int
    bias: int
    float_output: int
    positions: np.ndarray     # per image, the output's spatial positions compared (a random sample)


@dataclass(frozen=True)
class BiasCorrection:
    model: bytes
    ops: int
    matched_by_name: int
    images: int
    seconds: float
    mean_error_steps: float   # mean |per-channel error| before correction, in output quantization steps
    max_error_steps: float

    def facts(self) -> dict:
        return {"ops": self.ops, "matched_by_name": self.matched_by_name, "images": self.images,
                "seconds": round(self.seconds, 1), "mean_error_steps": round(self.mean_error_steps, 4),
                "max_error_steps": round(self.max_error_steps, 4)}


class GraphMismatch(ValueError):     # a ValueError: the route keeps PTQ and says why
    """The INT8 and float graphs do not pair op for op: the correction cannot be measured."""


def correct_biases(int8: bytes, float_model: bytes, images: np.ndarray, seed: int = 0,
                   log: Callable[[str], None] = print) -> BiasCorrection:
    """The INT8 model with each conv/fc bias corrected by its mean error on `images` (float inputs
    preprocessed by the contract, N x H x W x 3)."""
    t0 = time.perf_counter()
    q, f = TFLiteGraph(int8), TFLiteGraph(float_model)
    layers, by_name = paired_layers(q, f, len(images), np.random.default_rng(seed))
    reference = _float_activations(float_model, images, layers)
    errors = []
    for layer, ref in zip(layers, reference):
        err, valid = channel_error(_int8_activations(bytes(q.data), images, layer), q.tensor(layer.output),
                                   ref, layer.op.activation)
        errors.append(np.abs(err).mean() / float(q.tensor(layer.output).scale[0]))
        _patch(q, layer, err, valid)
    steps = np.array(errors) if errors else np.zeros(1)
    log(f"bias correction: {len(layers)} ops on {len(images)} calibration images in "
        f"{time.perf_counter() - t0:.0f} s (mean error {steps.mean():.3f} steps before)")
    return BiasCorrection(bytes(q.data), len(layers), by_name, len(images), time.perf_counter() - t0,
                          float(steps.mean()), float(steps.max()))


def paired_layers(q: TFLiteGraph, f: TFLiteGraph, images: int, rng: np.random.Generator) -> tuple[list[Layer], int]:
    """The INT8 graph's target ops in order, each with the float graph's output of the same name (else
    the op of the same kind at the same place among targets), and the positions sampled in each image."""
    qops = [o for o in q.ops() if o.kind in TARGETS]
    fops = [o for o in f.ops() if o.kind in TARGETS]
    if [o.kind for o in qops] != [o.kind for o in fops]:
        raise GraphMismatch(f"{len(qops)} conv/fc ops in the INT8 model, {len(fops)} in the float model")
    named = {f.tensor(o.outputs[0]).name: o for o in fops}
    layers, by_name = [], 0
    for qo, fo in zip(qops, fops):
        if len(qo.inputs) < 3 or qo.inputs[2] < 0 or q.tensor(qo.inputs[2]).type != "INT32":
            continue                               # an op without an int32 bias has nothing to correct
        out = q.tensor(qo.outputs[0])
        match = named.get(out.name)
        if match is not None and match.kind == qo.kind:
            fo, by_name = match, by_name + 1        # by_name counts corrected ops only
        hw = int(np.prod(out.shape[1:-1])) if len(out.shape) > 2 else 1
        keep = min(hw, max(1, VALUES_PER_IMAGE // max(out.shape[-1], 1)))
        positions = np.stack([np.sort(rng.choice(hw, keep, replace=False)) for _ in range(images)])
        layers.append(Layer(qo, out.index, qo.inputs[2], fo.outputs[0], positions))
    return layers, by_name


def _interpreter(model: bytes):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=model, num_threads=2, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def _feed(it, x: np.ndarray) -> None:
    d = it.get_input_details()[0]
    if d["dtype"] != np.float32:
        scale, zp = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.rint(x / np.float32(scale)) + zp, info.min, info.max)
    it.set_tensor(d["index"], x[None].astype(d["dtype"]))
    it.invoke()


def _sampled(value: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return value.reshape(-1, value.shape[-1])[positions]   # (batch 1) x H x W x C -> positions x C


def _float_activations(model: bytes, images: np.ndarray, layers: list[Layer]) -> list[np.ndarray]:
    """Per layer: the float model's output at the layer's sampled positions, images x positions x C."""
    it = _interpreter(model)
    out: list[list[np.ndarray]] = [[] for _ in layers]
    for k, x in enumerate(images):
        _feed(it, x)
        for i, layer in enumerate(layers):
            out[i].append(_sampled(it.get_tensor(layer.float_output), layer.positions[k]).astype(np.float32))
    return [np.stack(v) for v in out]


def _int8_activations(model: bytes, images: np.ndarray, layer: Layer) -> np.ndarray:
    it = _interpreter(model)
    out = []
    for k, x in enumerate(images):
        _feed(it, x)
        out.append(_sampled(it.get_tensor(layer.output), layer.positions[k]).copy())
    return np.stack(out)


def channel_error(values: np.ndarray, tensor, reference: np.ndarray, activation: str) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel of an INT8 op: the mean of dequantized INT8 minus float, over the samples where
    neither is clamped (the int8 range, a fused RELU/RELU6's bounds), and how many samples that was."""
    scale, zp = float(tensor.scale[0]), int(tensor.zero_point[0])
    info = np.iinfo(np.int8 if tensor.type == "INT8" else np.uint8)
    lo, hi = (info.min - zp) * scale, (info.max - zp) * scale
    bounds = {"RELU": (0.0, np.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}.get(activation)
    if bounds:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    got = (values.reshape(-1, values.shape[-1]).astype(np.float64) - zp) * scale
    return unclamped_mean_error(got, reference.reshape(-1, reference.shape[-1]), lo, hi)


def unclamped_mean_error(got: np.ndarray, reference: np.ndarray, lo: float, hi: float,
                         tolerance: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (last axis): the mean of got - reference over samples strictly inside (lo, hi) in both
    (a value at a bound may have been clamped; `tolerance` absorbs float rounding), and the count."""
    got, reference = got.astype(np.float64), reference.astype(np.float64)
    inside = lambda v: (v > lo + tolerance) & (v < hi - tolerance)   # noqa: E731
    valid = inside(got) & inside(reference)
    count = valid.sum(0)
    return np.where(valid, got - reference, 0.0).sum(0) / np.maximum(count, 1), count


def _patch(q: TFLiteGraph, layer: Layer, err: np.ndarray, valid: np.ndarray) -> None:
    """Subtract each channel's error from its int32 bias, in the bias's own step (input x weight scale)."""
    bias_t = q.tensor(layer.bias)
    bias = q.buffer(bias_t)
    step = np.broadcast_to(bias_t.scale.astype(np.float64), bias.shape)
    delta = np.where(valid > 0, np.rint(err / step), 0).astype(np.int64)
    bias[:] = np.clip(bias.astype(np.int64) - delta, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
