"""Minimal read/patch access to a .tflite flatbuffer (schema classes shipped in ai_edge_litert)."""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as S

OPNAMES = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
TYPES = {v: k for k, v in vars(S.TensorType).items() if not k.startswith("_")}
ACT = {v: k for k, v in vars(S.ActivationFunctionType).items() if not k.startswith("_")}
NP = {"INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32, "INT16": np.int16, "FLOAT32": np.float32, "INT64": np.int64}


class Model:
    def __init__(self, data: bytes):
        self.buf = bytearray(data)
        self.m = S.Model.GetRootAs(self.buf, 0)
        self.sg = self.m.Subgraphs(0)

    def opname(self, op) -> str:
        oc = self.m.OperatorCodes(op.OpcodeIndex())
        return OPNAMES[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]

    def tensor(self, i):
        t = self.sg.Tensors(i)
        q = t.Quantization()
        scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
        zp = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else None
        return {"index": i, "name": t.Name().decode(), "type": TYPES[t.Type()], "buffer": t.Buffer(),
                "shape": t.ShapeAsNumpy() if t.ShapeLength() else np.zeros(0, int), "scale": scale, "zp": zp}

    def fused_act(self, op) -> str:
        name = self.opname(op)
        cls = {"CONV_2D": S.Conv2DOptions, "DEPTHWISE_CONV_2D": S.DepthwiseConv2DOptions,
               "FULLY_CONNECTED": S.FullyConnectedOptions, "ADD": S.AddOptions}.get(name)
        if cls is None or op.BuiltinOptions() is None:
            return "NONE"
        o = cls()
        o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
        return ACT[o.FusedActivationFunction()]

    def ops(self):
        out = []
        for k in range(self.sg.OperatorsLength()):
            op = self.sg.Operators(k)
            out.append({"k": k, "op": self.opname(op), "inputs": list(op.InputsAsNumpy()),
                        "outputs": list(op.OutputsAsNumpy()), "act": self.fused_act(op)})
        return out

    def buffer_view(self, bi: int, dtype) -> np.ndarray:
        """A writable numpy view of buffer bi's bytes inside self.buf."""
        b = self.m.Buffers(bi)
        o = b._tab.Offset(4)          # field 'data'
        if o:
            start, n = b._tab.Vector(o), b.DataLength()
        else:                         # data stored outside the flatbuffer (offset/size)
            start, n = b.Offset(), b.Size()
        assert n > 0, f"buffer {bi} is empty"
        return np.frombuffer(self.buf, dtype=dtype, count=n // np.dtype(dtype).itemsize, offset=start)
