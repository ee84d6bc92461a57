"""Keras -> TFLite: float32, FP16 and full-integer INT8 (with optional float fallback ops)."""

from __future__ import annotations

import numpy as np

from ..core.errors import ConversionError
from ..native import captured_output



def _converter(model, calib: np.ndarray | None = None):
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]   # never SELECT_TF_OPS
    if calib is not None:
        def representative():
            for x in calib:
                yield [x[None].astype(np.float32)]
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
    return conv


def converting(fn, what: str):
    """fn() with its library output captured; a failure becomes one ConversionError line."""
    with captured_output() as log:
        try:
            return fn()
        except Exception as e:
            tail = " | ".join(l for l in log().strip().splitlines()[-3:])
            raise ConversionError(f"{what} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
                                  + (f" [{tail[:300]}]" if tail else "")) from None


def convert(model, precision: str, calib: np.ndarray | None = None, input_type: str = "int8") -> bytes:
    """precision: fp32, fp16 or int8 (full integer: int8 weights and activations, integer I/O)."""
    import tensorflow as tf

    def go():
        if precision == "fp32":
            return _converter(model).convert()
        if precision == "fp16":
            conv = _converter(model)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
            return conv.convert()
        if precision == "int8":
            if calib is None or not len(calib):
                raise ValueError("INT8 needs calibration data")
            conv = _converter(model, calib)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = getattr(tf, input_type)
            conv.inference_output_type = getattr(tf, input_type)
            return conv.convert()
        raise ValueError(f"unknown precision {precision}")
    return converting(go, f"TFLite {precision} conversion")


def layer_sensitivity(model, calib: np.ndarray, n: int = 64) -> list[dict]:
    """Per-layer quantisation error (TensorFlow's QuantizationDebugger), most sensitive first.

    The score is the RMSE between the float and the quantised activation divided by the
    activation's quantisation scale: how many quantisation steps of error the layer adds.
    """
    import csv
    import io

    import tensorflow as tf

    def go():
        sub = calib[:n]
        conv = _converter(model, sub)
        dbg = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=lambda: ([x[None]] for x in sub))
        dbg.run()
        buf = io.StringIO()
        dbg.layer_statistics_dump(buf)
        return buf.getvalue()
    return rank_sensitivity(csv.DictReader(io.StringIO(converting(go, "quantisation sensitivity analysis"))))


def rank_sensitivity(rows) -> list[dict]:
    """Rows of the debugger's layer statistics, most sensitive first: RMSE in quantisation steps.
    A row without a scale (an op TensorFlow could not quantise) counts with a tiny scale, so it ranks high."""
    out = []
    for r in rows:
        scale = float(r.get("scale") or 0) or 1e-12
        mse = float(r.get("mean_squared_error") or 0)
        out.append({"tensor": r["tensor_name"], "op": r.get("op_name", ""),
                    "rmse_per_step": float(np.sqrt(mse) / scale)})
    out.sort(key=lambda d: -d["rmse_per_step"])
    return out


def convert_int8_with_float_ops(model, calib: np.ndarray, float_nodes: list[str],
                                input_type: str = "int8") -> bytes:
    """INT8 with the listed ops (by output tensor name) kept in float; integer I/O kept."""
    import tensorflow as tf
    from tensorflow.lite.python import util as tfl_util

    def go():
        conv = _converter(model, calib)
        opts = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_nodes))
        dbg = tf.lite.experimental.QuantizationDebugger(
            converter=conv, debug_dataset=lambda: ([x[None]] for x in calib[:8]), debug_options=opts)
        q = dbg.get_nondebug_quantized_model()
        dt = getattr(tf, input_type)
        return tfl_util.modify_model_io_type(q, dt, dt)
    return converting(go, "TFLite INT8 conversion with float fallback")
