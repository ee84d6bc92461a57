"""The INT8 route's and the bias correction's rules, fast and on exact values (not marked slow).

edgecnn/export/bias.py on tiny synthetic Keras models (8x8x3 in: a Conv2D with a fused ReLU6, a
DepthwiseConv2D, Dense layers; fixed seeded weights) converted by the project's own converter in
seconds, checked against an independent recomputation from the two interpreters' intermediate
outputs: the corrected model is the PTQ model with each conv/fc int32 bias moved by exactly
round(per-channel mean unclamped error / bias step), ops in order, each measured with the ones before
it already corrected; nothing else in the file moves. edgecnn/export/route.py with plain callables
for `correct` and `scores`: every branch of int8_route, its reasons, its facts, and the rules of
choose, measure and margin_error on hand-computed arrays.
"""

from __future__ import annotations

import os
import re
from types import SimpleNamespace

import numpy as np
import pytest

from edgecnn.export import bias as B
from edgecnn.export import route as R
from edgecnn.export.bias import GraphMismatch, channel_error, correct_biases, paired_layers, unclamped_mean_error
from edgecnn.export.graph import Op, Tensor
from edgecnn.export.route import CORRECTED, PTQ, Candidate, HeldOut, Route, choose, int8_route, margin_error, \
    measure

TARGETS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
BOUNDS = {"RELU6": (0.0, 6.0), "RELU": (0.0, np.inf), "NONE": (-np.inf, np.inf)}


# ================================================================ tiny real models (built once per module)
def _keras_model(layers: list[tuple[str, str, dict]], seed: int):
    """8x8x3 in; (kind, name, kwargs) layers; a Reshape to a vector before the first Dense. Weights are
    fixed: kernels N(0, 1/fan_in), biases N(0, 0.3), from `seed`."""
    import keras

    inp = keras.Input((8, 8, 3))
    x, flat = inp, False
    for kind, name, kw in layers:
        if kind == "dense" and not flat:
            x, flat = keras.layers.Reshape((-1,))(x), True
        cls = {"conv": keras.layers.Conv2D, "dw": keras.layers.DepthwiseConv2D, "dense": keras.layers.Dense}[kind]
        x = cls(name=name, **kw)(x)
    model = keras.Model(inp, x)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape) if w.ndim == 1 else
                       rng.normal(0, 1 / np.sqrt(np.prod(w.shape[:-1])), w.shape) for w in model.get_weights()])
    return model


MAIN = [("conv", "c", dict(filters=4, kernel_size=3, padding="same", activation="relu6")),
        ("dw", "d", dict(kernel_size=3, padding="same")),
        ("dense", "f", dict(units=6, activation="relu")),
        ("dense", "g", dict(units=3))]
MAIN_ACTIVATIONS = ("RELU6", "NONE", "RELU", "NONE")
# one more FC op than MAIN (without a bias: the converter gives it none, input -1)
NO_BIAS = MAIN[:3] + [("dense", "g", dict(units=5)), ("dense", "n", dict(units=3, use_bias=False))]


@pytest.fixture(scope="module")
def tiny():
    """INT8 (uint8 I/O, as export writes it) and float32 TFLites of MAIN, the float TFLite of NO_BIAS, and
    images: the calibration set in [-1, 1], correction images in [-1.3, 1.3] (beyond the calibrated input
    range, so feeding them clamps)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgecnn.export.tflite import convert

    rng = np.random.default_rng(7)
    calib = rng.uniform(-1, 1, (16, 8, 8, 3)).astype(np.float32)
    images = rng.uniform(-1.3, 1.3, (6, 8, 8, 3)).astype(np.float32)
    main = _keras_model(MAIN, 1)
    return SimpleNamespace(calib=calib, images=images, int8=convert(main, "int8", calib, input_type="uint8"),
                           float=convert(main, "fp32"), no_bias_float=convert(_keras_model(NO_BIAS, 2), "fp32"))


# ------------------------------------------- an independent recomputation of the correction (LiteRT only)
def _interpreter(model: bytes):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


def _target_ops(model: bytes) -> list[dict]:
    return [d for d in _interpreter(model)._get_ops_details() if d["op_name"] in TARGETS]


def _details(model: bytes) -> dict[int, dict]:
    return {d["index"]: d for d in _interpreter(model).get_tensor_details()}


def _values(model: bytes, images: np.ndarray, index: int) -> np.ndarray:
    """A tensor's values on every image, images x positions x channels (inputs quantized to the input type,
    clamped to its range)."""
    it = _interpreter(model)
    d = it.get_input_details()[0]
    out = []
    for x in images:
        if d["dtype"] != np.float32:
            scale, zp = d["quantization"]
            lo, hi = np.iinfo(d["dtype"]).min, np.iinfo(d["dtype"]).max
            x = np.clip(np.rint(x / np.float32(scale)) + zp, lo, hi)
        it.set_tensor(d["index"], x[None].astype(d["dtype"]))
        it.invoke()
        v = it.get_tensor(index)
        out.append(v.reshape(-1, v.shape[-1]).copy())
    return np.stack(out)


def _expected(ptq: bytes, flt: bytes, images: np.ndarray, activations, positions=None,
              sequential: bool = True) -> SimpleNamespace:
    """The rule, computed here: per conv/fc op with an int32 bias, in order, on the INT8 model with the
    biases before it already moved: err = mean over samples where neither the dequantized INT8 output nor
    the float output is at (or beyond) the int8 range or the fused activation's bounds of (INT8 - float);
    bias -= round(err / bias scale). positions: per corrected op, images x sampled positions (else all).
    sequential=False measures every op on the PTQ model instead (what the rule does not do)."""
    qops, fops = _target_ops(ptq), _target_ops(flt)
    details = _details(ptq)
    data = bytearray(ptq)
    deltas, steps, k = [], [], 0
    for qop, fop, act in zip(qops, fops, activations):
        if qop["inputs"][2] < 0:
            continue
        out, bias = details[qop["outputs"][0]], details[qop["inputs"][2]]
        got = _values(bytes(data) if sequential else ptq, images, out["index"])
        ref = _values(flt, images, fop["outputs"][0])
        if positions is not None:
            pick = positions[k]
            got = np.stack([got[i][pick[i]] for i in range(len(images))])
            ref = np.stack([ref[i][pick[i]] for i in range(len(images))])
        k += 1
        (scale,), (zp,) = out["quantization_parameters"]["scales"], out["quantization_parameters"]["zero_points"]
        deq = (got.reshape(-1, got.shape[-1]).astype(np.float64) - zp) * float(scale)
        ref = ref.reshape(-1, ref.shape[-1]).astype(np.float64)
        lo, hi = max((-128 - zp) * float(scale), BOUNDS[act][0]), min((127 - zp) * float(scale), BOUNDS[act][1])
        valid = (deq > lo + 1e-6) & (deq < hi - 1e-6) & (ref > lo + 1e-6) & (ref < hi - 1e-6)
        count = valid.sum(0)
        err = np.array([(deq[valid[:, c], c] - ref[valid[:, c], c]).mean() if count[c] else 0.0
                        for c in range(deq.shape[1])])
        delta = np.where(count > 0, np.rint(err / bias["quantization_parameters"]["scales"]), 0).astype(np.int64)
        old = _interpreter(ptq).get_tensor(bias["index"]).astype(np.int32)
        at = bytes(data).find(old.tobytes())
        assert at > 0 and bytes(data).count(old.tobytes()) == 1     # where this bias lies in the file
        data[at:at + 4 * len(old)] = (old.astype(np.int64) - delta).astype(np.int32).tobytes()
        deltas.append(delta)
        steps.append(np.abs(err).mean() / float(scale))
    return SimpleNamespace(model=bytes(data), deltas=deltas, steps=steps)


# ======================================================================== bias.py on the tiny models
def test_each_bias_moves_by_its_mean_unclamped_error_in_its_own_step_ops_in_order(tiny):
    logs = []
    fixed = correct_biases(tiny.int8, tiny.float, tiny.images, log=logs.append)
    want = _expected(tiny.int8, tiny.float, tiny.images, MAIN_ACTIVATIONS)
    # the test has teeth: every op's bias moves, and by steps the ops before it change (measured on PTQ
    # alone, the later ops would move otherwise)
    assert all(np.any(d != 0) for d in want.deltas), want.deltas
    alone = _expected(tiny.int8, tiny.float, tiny.images, MAIN_ACTIVATIONS, sequential=False).deltas
    assert any(not np.array_equal(a, d) for a, d in zip(alone, want.deltas))
    assert fixed.model == want.model
    assert len(fixed.model) == len(tiny.int8)
    assert (fixed.ops, fixed.matched_by_name, fixed.images) == (4, 3, 6)   # the last FC's output is renamed
    assert fixed.mean_error_steps == pytest.approx(np.mean(want.steps), rel=1e-9)
    assert fixed.max_error_steps == pytest.approx(np.max(want.steps), rel=1e-9)
    facts = fixed.facts()
    assert facts == {"ops": 4, "matched_by_name": 3, "images": 6, "seconds": round(fixed.seconds, 1),
                     "mean_error_steps": round(fixed.mean_error_steps, 4),
                     "max_error_steps": round(fixed.max_error_steps, 4)}
    assert facts["mean_error_steps"] == round(float(np.mean(want.steps)), 4)
    assert facts["max_error_steps"] == round(float(np.max(want.steps)), 4)
    assert len(logs) == 1 and re.fullmatch(
        rf"bias correction: 4 ops on 6 calibration images in \d+ s "
        rf"\(mean error {np.mean(want.steps):.3f} steps before\)", logs[0]), logs


def test_only_bias_values_change_graph_ops_types_and_size_stay(tiny):
    from edgecnn.export.graph import integer_only

    fixed = correct_biases(tiny.int8, tiny.float, tiny.images, log=lambda s: None).model
    assert integer_only(fixed) == integer_only(tiny.int8)
    assert integer_only(fixed)["integer_only"] is True
    details = _details(tiny.int8)
    biases = {op["inputs"][2] for op in _target_ops(tiny.int8)}
    ranges = []
    for i in biases:
        raw = _interpreter(tiny.int8).get_tensor(i).astype(np.int32).tobytes()
        at = tiny.int8.find(raw)
        ranges.append(range(at, at + len(raw)))
        assert details[i]["dtype"] == np.int32
    a, b = np.frombuffer(tiny.int8, np.uint8), np.frombuffer(fixed, np.uint8)
    assert len(a) == len(b)
    moved = np.flatnonzero(a != b)
    assert len(moved) and all(any(p in r for r in ranges) for p in moved)
    # every constant but the biases reads the same after loading; every tensor keeps its type and quantization
    q, f = _interpreter(tiny.int8), _interpreter(fixed)
    made = {int(i) for op in q._get_ops_details() for i in op["outputs"]} | {q.get_input_details()[0]["index"]}
    constants = [i for i in details if i not in made]
    assert len(constants) > len(biases)
    after = _details(fixed)
    assert sorted(after) == sorted(details)
    for i, d in details.items():
        assert (after[i]["name"], after[i]["dtype"], after[i]["shape"].tolist()) == \
            (d["name"], d["dtype"], d["shape"].tolist())
        for k in ("scales", "zero_points"):
            assert after[i]["quantization_parameters"][k].tolist() == d["quantization_parameters"][k].tolist()
        if i in constants and i not in biases:
            assert np.array_equal(q.get_tensor(i), f.get_tensor(i)), d["name"]
    assert [(o["op_name"], o["inputs"].tolist(), o["outputs"].tolist()) for o in q._get_ops_details()] == \
        [(o["op_name"], o["inputs"].tolist(), o["outputs"].tolist()) for o in f._get_ops_details()]


def test_sampled_positions_are_the_same_for_both_models_and_seeded(tiny, monkeypatch):
    from edgecnn.export.graph import TFLiteGraph

    monkeypatch.setattr(B, "VALUES_PER_IMAGE", 16)        # 16 // 4 channels: 4 of the 64 positions per image
    q, f = TFLiteGraph(tiny.int8), TFLiteGraph(tiny.float)
    layers, by_name = paired_layers(q, f, 6, np.random.default_rng(5))
    assert by_name == 3
    assert [l.positions.shape for l in layers] == [(6, 4), (6, 4), (6, 1), (6, 1)]
    for l in layers[:2]:
        for row in l.positions:
            assert row.tolist() == sorted(set(row.tolist())) and 0 <= row.min() and row.max() < 64
        assert len({tuple(r) for r in l.positions}) > 1              # drawn per image
    assert all(l.positions.tolist() == [[0]] * 6 for l in layers[2:])  # a vector has one position
    qops = [o for o in q.ops() if o.kind in TARGETS]
    fops = [o for o in f.ops() if o.kind in TARGETS]
    assert [(l.op, l.output, l.bias, l.float_output) for l in layers] == \
        [(o, o.outputs[0], o.inputs[2], fo.outputs[0]) for o, fo in zip(qops, fops)]
    fixed = correct_biases(tiny.int8, tiny.float, tiny.images, seed=5, log=lambda s: None)
    want = _expected(tiny.int8, tiny.float, tiny.images, MAIN_ACTIVATIONS, [l.positions for l in layers])
    assert fixed.model == want.model
    assert fixed.mean_error_steps == pytest.approx(np.mean(want.steps), rel=1e-9)
    assert correct_biases(tiny.int8, tiny.float, tiny.images, seed=5, log=lambda s: None).model == fixed.model
    default, _ = paired_layers(q, f, 6, np.random.default_rng(0))      # the seed is 0 unless given
    assert correct_biases(tiny.int8, tiny.float, tiny.images, log=lambda s: None).model == \
        _expected(tiny.int8, tiny.float, tiny.images, MAIN_ACTIVATIONS, [l.positions for l in default]).model
    monkeypatch.setattr(B, "VALUES_PER_IMAGE", 2)         # fewer values than channels: still one position
    layers, _ = paired_layers(q, f, 3, np.random.default_rng(0))
    assert [l.positions.shape for l in layers] == [(3, 1)] * 4


def test_all_positions_are_compared_when_the_budget_covers_them(tiny):
    from edgecnn.export.graph import TFLiteGraph

    layers, _ = paired_layers(TFLiteGraph(tiny.int8), TFLiteGraph(tiny.float), 2, np.random.default_rng(0))
    assert [l.positions.tolist() for l in layers] == [[list(range(64))] * 2] * 2 + [[[0]] * 2] * 2


def test_graphs_that_do_not_pair_op_for_op_raise_graph_mismatch(tiny):
    with pytest.raises(GraphMismatch) as e:
        correct_biases(tiny.int8, tiny.no_bias_float, tiny.images, log=lambda s: None)
    assert str(e.value) == "4 conv/fc ops in the INT8 model, 5 in the float model"
    assert [op["inputs"][2] for op in _target_ops(tiny.no_bias_float)][-1] == -1
    assert issubclass(GraphMismatch, ValueError)


def test_patch_moves_only_valid_channels_and_saturates_at_the_int32_range(tiny):
    from edgecnn.export.graph import TFLiteGraph

    q, f = TFLiteGraph(tiny.int8), TFLiteGraph(tiny.float)
    layers, _ = paired_layers(q, f, 1, np.random.default_rng(0))
    conv = layers[0]
    bias_t = q.tensor(conv.bias)
    step = bias_t.scale.astype(np.float64)
    old = q.buffer(bias_t).astype(np.int64).copy()
    err = np.array([2.6, -1.4, 2.0 ** 40, -(2.0 ** 40)]) * step
    B._patch(q, conv, err, np.array([3, 1, 1, 1]))
    assert q.buffer(bias_t).tolist() == [old[0] - 3, old[1] + 1, -2 ** 31, 2 ** 31 - 1]
    B._patch(q, conv, np.array([5.0, 5.0, 5.0, 5.0]) * step, np.array([0, 0, 0, 0]))   # no valid sample
    assert q.buffer(bias_t).tolist() == [old[0] - 3, old[1] + 1, -2 ** 31, 2 ** 31 - 1]
    assert len(q.data) == len(tiny.int8)


# ------------------------------------------------- how ops pair, on hand-built graphs (paired_layers' rules)
class _Graph:
    """What paired_layers reads of a TFLiteGraph: ops() and tensor(i)."""

    def __init__(self, ops: list[tuple[str, tuple[int, ...], int]], tensors: dict[int, tuple[str, str, tuple]]):
        self._ops = [Op(k, kind, inputs, (out,), "NONE") for k, (kind, inputs, out) in enumerate(ops)]
        self._tensors = {i: Tensor(i, name, kind, 0, shape, None, None) for i, (name, kind, shape) in tensors.items()}

    def ops(self):
        return self._ops

    def tensor(self, i):
        return self._tensors[i]


def _pair_graphs():
    i32, img, vec = ("b", "INT32", (8,)), (1, 4, 4, 8), (1, 10)
    q = _Graph([("CONV_2D", (0, 1, 2), 10), ("ADD", (10, 10), 11), ("CONV_2D", (11, 1, 2), 12),
                ("FULLY_CONNECTED", (12, 1), 13),               # no bias input
                ("FULLY_CONNECTED", (13, 1, -1), 14),           # bias -1
                ("FULLY_CONNECTED", (14, 1, 3), 15),            # a float bias (a hybrid op)
                ("FULLY_CONNECTED", (15, 1, 2), 16)],
               {0: ("in", "INT8", img), 1: ("w", "INT8", (8,)), 2: i32, 3: ("fb", "FLOAT32", (10,)),
                10: ("x", "INT8", img), 11: ("sum", "INT8", img), 12: ("y", "INT8", (1, 2, 2, 8)),
                13: ("z", "INT8", vec), 14: ("w1", "INT8", vec), 15: ("u", "INT8", vec), 16: ("v", "INT8", vec)})
    # the float graph: its second conv is named like the INT8's first, its first like the INT8's second
    f = _Graph([("CONV_2D", (0,), 20), ("CONV_2D", (20,), 21), ("FULLY_CONNECTED", (21,), 22),
                ("FULLY_CONNECTED", (22,), 23), ("FULLY_CONNECTED", (23,), 24), ("FULLY_CONNECTED", (24,), 25)],
               {0: ("in", "FLOAT32", img), 20: ("y", "FLOAT32", img), 21: ("x", "FLOAT32", img),
                22: ("f2", "FLOAT32", vec), 23: ("f3", "FLOAT32", vec), 24: ("f4", "FLOAT32", vec),
                25: ("v", "FLOAT32", vec)})
    return q, f


def test_ops_pair_by_output_name_of_the_same_kind_else_by_place_and_only_int32_biases_count():
    q, f = _pair_graphs()
    layers, by_name = paired_layers(q, f, 3, np.random.default_rng(0))
    # x and y pair by name (crossed), v by name; z, w1 and u have no int32 bias: left out
    assert [(l.op.position, l.output, l.bias, l.float_output) for l in layers] == \
        [(0, 10, 2, 21), (2, 12, 2, 20), (6, 16, 2, 25)]
    assert by_name == 3
    assert [l.positions.shape for l in layers] == [(3, 16), (3, 4), (3, 1)]     # 16 and 4 positions: all
    assert [l.positions.tolist() for l in layers] == [[list(range(16))] * 3, [list(range(4))] * 3, [[0]] * 3]


def test_only_the_ops_corrected_count_as_matched_by_name():
    q, f = _pair_graphs()
    f._tensors[22] = Tensor(22, "z", "FLOAT32", 0, (1, 10), None, None)     # names q's FC without a bias
    f._tensors[23] = Tensor(23, "w1", "FLOAT32", 0, (1, 10), None, None)    # and q's FC whose bias is -1
    layers, by_name = paired_layers(q, f, 1, np.random.default_rng(0))
    assert [l.op.position for l in layers] == [0, 2, 6] and by_name == 3     # z and w1 matched but not corrected


def test_a_name_on_an_op_of_another_kind_is_no_match():
    q, f = _pair_graphs()
    f._tensors[25] = Tensor(25, "f5", "FLOAT32", 0, (1, 10), None, None)
    f._tensors[20] = Tensor(20, "v", "FLOAT32", 0, (1, 4, 4, 8), None, None)   # a conv named like q's FC v
    layers, by_name = paired_layers(q, f, 1, np.random.default_rng(0))
    assert [(l.output, l.float_output) for l in layers] == [(10, 21), (12, 21), (16, 25)]   # y: by place now
    assert by_name == 1


def test_graphs_pair_on_the_kinds_of_their_conv_fc_ops_in_order():
    q, f = _pair_graphs()
    f._ops[1] = Op(1, "DEPTHWISE_CONV_2D", (20,), (21,), "NONE")      # as many ops, of other kinds
    with pytest.raises(GraphMismatch) as e:
        paired_layers(q, f, 1, np.random.default_rng(0))
    assert str(e.value) == "6 conv/fc ops in the INT8 model, 6 in the float model"
    f._ops[1] = Op(1, "ADD", (20,), (21,), "NONE")                    # one conv/fc op fewer
    with pytest.raises(GraphMismatch) as e:
        paired_layers(q, f, 1, np.random.default_rng(0))
    assert str(e.value) == "6 conv/fc ops in the INT8 model, 5 in the float model"


# ========================================================================== the error rules by hand
def _tensor(scale: float, zp: int, kind: str = "INT8") -> Tensor:
    return Tensor(0, "t", kind, 0, (1, 2), np.array([scale], np.float32), np.array([zp], np.int64))


def test_unclamped_mean_error_is_the_mean_difference_strictly_inside_both_bounds():
    got = np.array([[1.0, 0.0], [2.0, 4.0], [3.0, 4.0], [3.5, 4.5]])
    ref = np.array([[0.5, 0.5], [2.5, 3.0], [2.0, 1.0], [0.5, 4.0]])
    err, count = unclamped_mean_error(got, ref, 0.0, 4.0)
    # channel 0: every row inside (0, 4): (0.5 - 0.5 + 1.0 + 3.0) / 4; channel 1: 0.0, 4.0 (x2), 4.5 are
    # at or beyond a bound in got: none inside
    assert count.tolist() == [4, 0]
    assert err.tolist() == [1.0, 0.0]
    err, count = unclamped_mean_error(got, ref, 0.0, 4.5)   # 4.0 inside now, 4.5 still at the bound
    assert count.tolist() == [4, 2]
    assert err.tolist() == [1.0, (1.0 + 3.0) / 2]
    err, count = unclamped_mean_error(got, ref, 0.5, 4.5)   # ref 0.5 at the lower bound: rows 0 and 3 out
    assert count.tolist() == [2, 2]
    assert err.tolist() == [(-0.5 + 1.0) / 2, (1.0 + 3.0) / 2]
    # the tolerance: within 1e-6 of a bound counts as at it; beyond it, inside
    err, count = unclamped_mean_error(np.array([[1e-7], [2e-6]]), np.array([[1.0], [1.0]]), 0.0, 4.0)
    assert count.tolist() == [1] and err.tolist() == [2e-6 - 1.0]
    err, count = unclamped_mean_error(np.array([[1e-7]]), np.array([[1.0]]), 0.0, 4.0, tolerance=0.0)
    assert count.tolist() == [1] and err.tolist() == [1e-7 - 1.0]


def test_channel_error_bounds_by_the_output_type_zero_point_and_fused_activation():
    # uint8, zero point 0, scale 0.5: the range is [0, 127.5]; 0 and 255 are clamped
    t = _tensor(0.5, 0, "UINT8")
    q = np.array([[0, 4], [255, 6], [3, 13]], np.uint8)              # 0.0, 2.0 | 127.5, 3.0 | 1.5, 6.5
    f = np.array([[0.25, 2.25], [127.0, 2.75], [1.25, 6.25]], np.float32)
    err, count = channel_error(q, t, f, "NONE")
    assert count.tolist() == [1, 3]
    assert err.tolist() == [0.25, (-0.25 + 0.25 + 0.25) / 3]
    err, count = channel_error(q, t, f, "RELU6")                     # 6.5 and 6.25 are beyond 6
    assert count.tolist() == [1, 2] and err.tolist() == [0.25, 0.0]
    # int8, zero point 0, scale 0.125: the range is [-16, 15.875]; RELU_N1_TO_1 keeps (-1, 1)
    t = _tensor(0.125, 0)
    q = np.array([[-8, 4], [-4, 8], [7, 127]], np.int8)              # -1.0, 0.5 | -0.5, 1.0 | 0.875, 15.875
    f = np.array([[-0.75, 0.25], [-0.25, 0.75], [0.5, 15.0]], np.float32)
    err, count = channel_error(q, t, f, "RELU_N1_TO_1")
    assert count.tolist() == [2, 1]
    assert err.tolist() == [(-0.25 + 0.375) / 2, 0.25]
    err, count = channel_error(q, t, f, "RELU")                      # (0, 15.875): negatives out
    assert count.tolist() == [1, 2]
    assert err.tolist() == [0.375, (0.25 + 0.25) / 2]
    err, count = channel_error(q, t, f, "NONE")                      # only 127 (15.875) is clamped
    assert count.tolist() == [3, 2]
    assert err.tolist() == [(-0.25 - 0.25 + 0.375) / 3, (0.25 + 0.25) / 2]


# ============================================================================= route.py: the rules
def test_margin_error_on_hand_computed_scores():
    ref = np.array([[0.5, 0.25, 0.125, 0.125], [0.125, 0.25, 0.5, 0.125], [0.0, 0.75, 0.0, 0.25]])
    got = np.array([[0.25, 0.5, 0.125, 0.125], [0.5, 0.25, 0.25, 0.0], [0.0, 0.5, 0.0, 0.5]])
    # row 0: top classes 0, 1: margin 0.25 -> -0.25 (0.5); row 1: classes 2, 1: 0.25 -> 0.0 (0.25), the
    # new top class 0 plays no part; row 2: classes 1, 3: 0.5 -> 0.0 (0.5)
    assert margin_error(ref, got) == (0.5 + 0.25 + 0.5) / 3
    assert margin_error(ref[1:2], got[1:2]) == 0.25
    assert margin_error(got[:1], ref[:1]) == 0.5       # a margin that grows counts as much as one that shrinks
    assert margin_error(ref, ref + 0.125) == 0.0        # a shift of every class moves no margin
    assert margin_error(np.zeros((0, 4)), np.zeros((0, 4))) == 0.0
    assert isinstance(margin_error(ref, got), float)


def _held(n: int = 4) -> HeldOut:
    ref = np.array([[0.75, 0.25, 0.0], [0.0, 0.75, 0.25], [0.25, 0.0, 0.75], [0.5, 0.375, 0.125]])[:n]
    return HeldOut(np.arange(n * 12, dtype=np.float32).reshape(n, 2, 2, 3), ref, f"{n} validation images")


def test_measure_counts_changed_top1_and_the_margin_error():
    held = _held()
    probs = np.array([[0.5, 0.5, 0.0], [0.5, 0.25, 0.25], [0.25, 0.0, 0.75], [0.25, 0.625, 0.125]])
    c = measure("x", probs, held)
    # argmax of [0.5, 0.5, 0] is 0 (as the reference's): changed are images 1 and 3
    # margins (reference 0.5, 0.5, 0.5, 0.125): 0.0, 0.0, 0.5, -0.375: errors 0.5, 0.5, 0, 0.5
    assert c == Candidate("x", 4, 2, 0.375)
    assert c.facts() == {"images": 4, "changed": 2, "margin_error": 0.375}
    assert measure("x", probs[:0], HeldOut(held.x[:0], held.reference[:0], "none")) == Candidate("x", 0, 0, 0.0)
    assert Candidate("y", 9, 1, 0.0123456).facts() == {"images": 9, "changed": 1, "margin_error": 0.01235}


def test_choose_on_ties_keeps_ptq_unless_the_error_is_strictly_lower():
    ptq = Candidate(PTQ, 200, 3, 0.0150)
    assert choose(ptq, Candidate(CORRECTED, 200, 3, 0.0150)) == (
        PTQ, "bias correction does not help on 200 held-out images: changed 3 vs 3, margin error 0.0150 vs 0.0150")
    assert choose(ptq, Candidate(CORRECTED, 200, 1, 0.0150)) == (      # fewer changes, equal error
        PTQ, "bias correction does not help on 200 held-out images: changed 1 vs 3, margin error 0.0150 vs 0.0150")
    assert choose(ptq, Candidate(CORRECTED, 200, 3, 0.01499)) == (     # equal changes, lower error
        CORRECTED, "bias correction helps on 200 held-out images: changed 3 vs 3, margin error 0.0150 vs 0.0150")
    assert choose(ptq, Candidate(CORRECTED, 200, 4, 0.0010)) == (
        PTQ, "bias correction does not help on 200 held-out images: changed 4 vs 3, margin error 0.0010 vs 0.0150")
    # the count of images said is PTQ's
    assert choose(Candidate(PTQ, 7, 0, 0.5), Candidate(CORRECTED, 9, 0, 0.25))[1] == (
        "bias correction helps on 7 held-out images: changed 0 vs 0, margin error 0.2500 vs 0.5000")


# ----------------------------------------------------------------------------------- int8_route
class Calls:
    """correct() and scores(model, x) as plain callables that record how they are called."""

    def __init__(self, fixed=b"fixed", facts=None, probs=None, raises=None):
        self.fixed, self.facts, self.probs, self.raises = fixed, facts or {"ops": 2}, probs or {}, raises
        self.corrected, self.scored, self.logged = 0, [], []

    def correct(self):
        self.corrected += 1
        if self.raises is not None:
            raise self.raises
        return self.fixed, self.facts

    def scores(self, model, x):
        self.scored.append((model, x))
        return self.probs[model]

    def log(self, line):
        self.logged.append(line)


PTQ_MODEL = b"ptq"


@pytest.fixture
def clock(monkeypatch):
    """route.time.perf_counter advancing 1.5 s a call."""
    ticks = iter(100.0 + 1.5 * k for k in range(100))
    monkeypatch.setattr(R, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))


def _route_facts(chosen, reason, held_out=None, candidates=None, correction=None, route_s=0.0) -> dict:
    return {"chosen": chosen, "reason": reason, "held_out": held_out, "candidates": candidates or {},
            "bias_correction": correction, "route_s": route_s}


@pytest.mark.parametrize("held", [None, _held()])
def test_asked_ptq_is_ptq_untouched_without_correcting_or_scoring(held, clock):
    c = Calls()
    r = int8_route(PTQ_MODEL, c.correct, c.scores, held, "ptq", c.log)
    assert r == Route(PTQ, PTQ_MODEL, "asked for (--int8-route ptq)")
    assert r.model is PTQ_MODEL
    assert r.facts() == _route_facts(PTQ, "asked for (--int8-route ptq)")
    assert (c.corrected, c.scored, c.logged) == (0, [], [])


def test_auto_without_a_held_out_split_keeps_ptq_and_says_how_to_correct(clock):
    c = Calls()
    r = int8_route(PTQ_MODEL, c.correct, c.scores, None, "auto", c.log)
    reason = ("no held-out split to choose on (the run's data is not reachable): "
              "--int8-route bias-correction applies it unmeasured")
    assert r == Route(PTQ, PTQ_MODEL, reason)
    assert r.facts() == _route_facts(PTQ, reason)
    assert (c.corrected, c.scored, c.logged) == (0, [], [])


@pytest.mark.parametrize("asked,held", [("auto", _held()), ("bias-correction", _held()), ("bias-correction", None)])
def test_a_graph_mismatch_keeps_ptq_and_says_why(asked, held, clock):
    c = Calls(raises=GraphMismatch("3 conv/fc ops in the INT8 model, 4 in the float model"))
    r = int8_route(PTQ_MODEL, c.correct, c.scores, held, asked, c.log)
    reason = "bias correction not possible: 3 conv/fc ops in the INT8 model, 4 in the float model"
    assert (r.chosen, r.model, r.reason, r.candidates, r.held_out, r.correction) == (PTQ, PTQ_MODEL, reason, (),
                                                                                      None, None)
    assert {k: v for k, v in r.facts().items() if k != "route_s"} == \
        {k: v for k, v in _route_facts(PTQ, reason).items() if k != "route_s"}
    assert (c.corrected, c.scored, c.logged) == (1, [], [])


def test_another_error_of_the_correction_is_not_taken_for_a_mismatch():
    c = Calls(raises=ValueError("bad calibration"))
    with pytest.raises(ValueError, match="^bad calibration$") as e:
        int8_route(PTQ_MODEL, c.correct, c.scores, _held(), "auto", c.log)
    assert type(e.value) is ValueError


def test_asked_correction_without_held_out_images_is_applied_unmeasured(clock):
    c = Calls(facts={"ops": 52, "images": 100})
    r = int8_route(PTQ_MODEL, c.correct, c.scores, None, "bias-correction", c.log)
    reason = "asked for (--int8-route bias-correction)"
    assert r == Route(CORRECTED, b"fixed", reason, correction={"ops": 52, "images": 100}, seconds=1.5)
    assert r.facts() == _route_facts(CORRECTED, reason, correction={"ops": 52, "images": 100}, route_s=1.5)
    assert (c.corrected, c.scored, c.logged) == (1, [], [])


HELPS = {PTQ_MODEL: np.array([[0.5, 0.5, 0.0], [0.25, 0.5, 0.25], [0.25, 0.0, 0.75], [0.375, 0.5, 0.125]]),
         b"fixed": np.array([[0.625, 0.375, 0.0], [0.0, 0.625, 0.375], [0.25, 0.0, 0.75], [0.5, 0.25, 0.25]])}
# the reference's margins are 0.5, 0.5, 0.5, 0.125. PTQ: image 3 changed (class 1 over 0); margins 0.0, 0.25,
# 0.5, -0.125: error (0.5 + 0.25 + 0 + 0.25) / 4 = 0.25. Corrected: no change; margins 0.25, 0.25, 0.5, 0.25:
# error (0.25 + 0.25 + 0 + 0.125) / 4 = 0.15625
HURTS = {PTQ_MODEL: HELPS[b"fixed"], b"fixed": HELPS[PTQ_MODEL]}


@pytest.mark.parametrize("probs,chosen,verb", [(HELPS, CORRECTED, "helps"), (HURTS, PTQ, "does not help")])
def test_auto_with_held_out_images_measures_both_models_and_keeps_the_better(probs, chosen, verb, clock):
    held = _held()
    c = Calls(facts={"ops": 2}, probs=probs)
    r = int8_route(PTQ_MODEL, c.correct, c.scores, held, "auto", c.log, "INT8 Q/DQ ONNX")
    assert c.corrected == 1
    assert [m for m, _ in c.scored] == [PTQ_MODEL, b"fixed"] and all(x is held.x for _, x in c.scored)
    ptq_c, fix_c = (1, 0.25), (0, 0.15625)
    if probs is HURTS:
        ptq_c, fix_c = fix_c, ptq_c
    reason = (f"bias correction {verb} on 4 held-out images: changed {fix_c[0]} vs {ptq_c[0]}, "
              f"margin error {fix_c[1]:.4f} vs {ptq_c[1]:.4f}")
    assert r == Route(chosen, b"fixed" if chosen == CORRECTED else PTQ_MODEL, reason,
                      (Candidate(PTQ, 4, *ptq_c), Candidate(CORRECTED, 4, *fix_c)), "4 validation images",
                      {"ops": 2}, 1.5)
    assert r.facts() == _route_facts(
        chosen, reason, "4 validation images",
        {PTQ: {"images": 4, "changed": ptq_c[0], "margin_error": ptq_c[1]},
         CORRECTED: {"images": 4, "changed": fix_c[0], "margin_error": fix_c[1]}}, {"ops": 2}, 1.5)
    assert c.logged == [f"INT8 Q/DQ ONNX route: {chosen} ({reason})"]


def test_asked_correction_with_held_out_images_is_kept_even_when_it_measures_worse(clock):
    held = _held()
    c = Calls(probs=HURTS)
    r = int8_route(PTQ_MODEL, c.correct, c.scores, held, "bias-correction", c.log)
    reason = "asked for (--int8-route bias-correction)"
    assert [m for m, _ in c.scored] == [PTQ_MODEL, b"fixed"] and all(x is held.x for _, x in c.scored)
    assert r == Route(CORRECTED, b"fixed", reason, (Candidate(PTQ, 4, 0, 0.15625), Candidate(CORRECTED, 4, 1, 0.25)),
                      "4 validation images", {"ops": 2}, 1.5)
    assert r.facts()["candidates"] == {PTQ: {"images": 4, "changed": 0, "margin_error": 0.15625},
                                       CORRECTED: {"images": 4, "changed": 1, "margin_error": 0.25}}
    assert c.logged == [f"INT8 TFLite route: {CORRECTED} ({reason})"]


def test_route_facts_round_the_seconds_and_margin_errors():
    r = Route(CORRECTED, b"m", "why", (Candidate(PTQ, 3, 1, 0.123456789),), "src", {"ops": 1}, 12.3456)
    assert r.facts() == {"chosen": CORRECTED, "reason": "why", "held_out": "src",
                         "candidates": {PTQ: {"images": 3, "changed": 1, "margin_error": 0.12346}},
                         "bias_correction": {"ops": 1}, "route_s": 12.3}
