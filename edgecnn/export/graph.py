"""Read a .tflite flatbuffer's graph (ops, tensors, quantization) and patch a constant buffer in place,
through the schema classes LiteRT ships (``ai_edge_litert.schema_py_generated``). The interpreter's
public API lists neither the ops with their fused activations nor the bias buffers, and rewriting a
model through the converter would requantize it, so this small reader is ours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the tensor types an integer-only accelerator runs; int16 is integer too (16x8 kernels), reported apart
INTEGER_TYPES = ("INT8", "UINT8", "INT32", "INT16")
_NUMPY = {"INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32, "INT16": np.int16, "FLOAT32": np.float32,
          "FLOAT16": np.float16, "INT64": np.int64, "BOOL": np.bool_}


def _schema():
    from ai_edge_litert import schema_py_generated as S
    return S


def _names(enum) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    type: str                 # schema name: INT8, UINT8, INT32, FLOAT32, ...
    buffer: int
    shape: tuple[int, ...]
    scale: np.ndarray | None  # per tensor (1 value) or per channel
    zero_point: np.ndarray | None


@dataclass(frozen=True)
class Op:
    position: int
    kind: str                 # builtin name: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, ...
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    activation: str           # the fused activation: NONE, RELU, RELU6, ...


class TFLiteGraph:
    """The first subgraph of a .tflite model held as a mutable byte buffer."""

    def __init__(self, model: bytes):
        S = _schema()
        self.data = bytearray(model)
        self._m = S.Model.GetRootAs(self.data, 0)
        self._sg = self._m.Subgraphs(0)
        self._ops, self._types, self._acts = _names(S.BuiltinOperator), _names(S.TensorType), \
            _names(S.ActivationFunctionType)
        self._options = {"CONV_2D": S.Conv2DOptions, "DEPTHWISE_CONV_2D": S.DepthwiseConv2DOptions,
                         "FULLY_CONNECTED": S.FullyConnectedOptions, "ADD": S.AddOptions}

    def tensor(self, i: int) -> Tensor:
        t = self._sg.Tensors(i)
        q = t.Quantization()
        has = q is not None and q.ScaleLength() > 0
        return Tensor(i, t.Name().decode(), self._types[t.Type()], t.Buffer(),
                      tuple(int(v) for v in t.ShapeAsNumpy()) if t.ShapeLength() else (),
                      q.ScaleAsNumpy() if has else None, q.ZeroPointAsNumpy() if has else None)

    def ops(self) -> list[Op]:
        out = []
        for k in range(self._sg.OperatorsLength()):
            op = self._sg.Operators(k)
            code = self._m.OperatorCodes(op.OpcodeIndex())
            kind = self._ops[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            out.append(Op(k, kind, tuple(int(i) for i in op.InputsAsNumpy()),
                          tuple(int(i) for i in op.OutputsAsNumpy()), self._activation(kind, op)))
        return out

    def _activation(self, kind: str, op) -> str:
        cls = self._options.get(kind)
        if cls is None or op.BuiltinOptions() is None:
            return "NONE"
        o = cls()
        o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        return self._acts[o.FusedActivationFunction()]

    def buffer(self, tensor: Tensor) -> np.ndarray:
        """A writable view of a constant tensor's values inside this graph's bytes."""
        b = self._m.Buffers(tensor.buffer)
        field = b._tab.Offset(4)                    # the buffer's inline 'data' vector
        if field:
            start, size = b._tab.Vector(field), b.DataLength()
        else:                                       # stored after the flatbuffer (offset/size)
            start, size = b.Offset(), b.Size()
        if size <= 0:
            raise ValueError(f"tensor {tensor.name!r} has no constant data")
        dtype = np.dtype(_NUMPY[tensor.type])
        return np.frombuffer(self.data, dtype=dtype, count=size // dtype.itemsize, offset=start)

    def tensor_types(self) -> dict[str, int]:
        """How many tensors used by ops have each type (every op input and output, constants included)."""
        used = {i for op in self.ops() for i in op.inputs + op.outputs if i >= 0}
        counts: dict[str, int] = {}
        for i in used:
            t = self.tensor(i).type
            counts[t] = counts.get(t, 0) + 1
        return dict(sorted(counts.items()))

    def op_kinds(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops():
            counts[op.kind] = counts.get(op.kind, 0) + 1
        return dict(sorted(counts.items()))


def integer_only(model: bytes) -> dict:
    """Whether an accelerator without float kernels runs every op: no tensor an op uses is floating
    point. Returns {"integer_only", "tensor_types", "ops", "float_tensors" (first names)}."""
    g = TFLiteGraph(model)
    floats = sorted({g.tensor(i).name for op in g.ops() for i in op.inputs + op.outputs
                     if i >= 0 and g.tensor(i).type not in INTEGER_TYPES})
    return {"integer_only": not floats, "tensor_types": g.tensor_types(), "ops": g.op_kinds(),
            "float_tensors": floats[:5]}
