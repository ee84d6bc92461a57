"""Keras -> float ONNX (tf2onnx, opset 17) and the TensorRT-ready INT8 Q/DQ ONNX (ONNX Runtime
static quantisation: per-channel, symmetric, every zero point 0 as TensorRT's explicit quantisation
wants). The contract travels in ``metadata_props``, with the model card of the TFLite exports'
standard metadata: the description as the model's ``doc_string`` (what ONNX Runtime reports as
its description), name, version, author and license as ``metadata_props``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..core.artifact import ONNX_CONTRACT_KEY, ONNX_LABELS_KEY
from ..core.metadata import ModelCard
from ..core.contract import Contract
from ..core.io import atomic_path
from ..core.errors import ConversionError
from .tflite import converting

OPSET = 17


def _set_metadata(model_proto, contract: Contract, card: ModelCard) -> None:
    model_proto.doc_string = card.description
    props = {p.key: p for p in model_proto.metadata_props}
    facts = [(ONNX_CONTRACT_KEY, contract.to_json()), (ONNX_LABELS_KEY, "\n".join(contract.labels)),
             ("name", card.name), ("version", card.version), ("author", card.author), ("license", card.license)]
    for key, value in ((k, v) for k, v in facts if v):
        if key in props:
            props[key].value = value
        else:
            entry = model_proto.metadata_props.add()
            entry.key, entry.value = key, value


def export_float(model, contract: Contract, dest: Path, card: ModelCard) -> None:
    import onnx
    import tensorflow as tf
    import tf2onnx

    h, w = contract.input_size

    def go():
        fn = tf.function(lambda x: model(x, training=False))
        spec = [tf.TensorSpec((None, h, w, 3), tf.float32, name="image")]
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET)
        return proto
    proto = converting(go, "ONNX float conversion")
    _set_metadata(proto, contract, card)
    with atomic_path(dest) as tmp:
        onnx.save(proto, str(tmp))


class _Reader:
    def __init__(self, name: str, calib: np.ndarray):
        self._it = iter([{name: x[None].astype(np.float32)} for x in calib])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - ORT may not call it
        pass


def export_qdq(float_onnx: Path, contract: Contract, calib: np.ndarray, dest: Path, card: ModelCard,
               route: Callable | None = None) -> dict:
    """INT8 Q/DQ ONNX from the float ONNX and the calibration set. route(qdq, float_read_by_the_quantizer)
    returns the model to write and the facts of its INT8 route. Returns zero-point (and route) facts."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Reader, CalibrationDataReader):
        pass

    input_name = onnx.load(str(float_onnx), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="edgecnn-qdq-") as tmpdir:
        pre = Path(tmpdir) / "pre.onnx"
        out = Path(tmpdir) / "qdq.onnx"

        def go():
            quant_pre_process(str(float_onnx), str(pre), skip_symbolic_shape=False)
            quantize_static(str(pre), str(out), Reader(input_name, calib), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        converting(go, "ONNX Runtime static quantisation")
        proto = onnx.load(str(out))
        proto, route_facts = route(proto, onnx.load(str(pre))) if route else (proto, None)
    zps = zero_points(proto)
    if any(zps.values()):
        raise ConversionError(f"Q/DQ ONNX has non-zero zero points in {sum(1 for v in zps.values() if v)} "
                              f"tensors: TensorRT needs symmetric quantisation")
    _set_metadata(proto, contract, card)
    with atomic_path(dest) as tmp:
        onnx.save(proto, str(tmp))
    return {"quantize_nodes": sum(1 for n in proto.graph.node if n.op_type == "QuantizeLinear"),
            "dequantize_nodes": sum(1 for n in proto.graph.node if n.op_type == "DequantizeLinear"),
            "zero_points_all_zero": not any(zps.values()), "zero_point_tensors": len(zps), "route": route_facts}


def zero_points(proto) -> dict[str, int]:
    """{zero-point initializer: number of non-zero entries} for every Q/DQ node."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    out = {}
    for n in proto.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits:
            out[n.input[2]] = int(np.count_nonzero(numpy_helper.to_array(inits[n.input[2]])))
    return out
