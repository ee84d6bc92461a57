"""A tiny real INT8 classifier for tests that need a model but not MobileNetV2's cost.

32x32 RGB in, 3 classes out; conv, depthwise conv and dense layers like MobileNetV2's, converted
by the project's own full-integer path (edgecnn.export.tflite.convert: int8 in and out).
"""

from __future__ import annotations

import functools
import os

import numpy as np

LABELS = ("healthy", "rust", "blight")


def _network(labels: tuple[str, ...]):
    import keras
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(labels)),
        keras.layers.Softmax(),
    ])


@functools.lru_cache(maxsize=None)
def tiny_int8_tflite(with_contract: bool = True, labels: tuple[str, ...] = LABELS) -> bytes:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgecnn.core.artifact import tflite_with_contract
    from edgecnn.core.contract import Contract, Quantization
    from edgecnn.export.tflite import convert

    model = _network(labels)
    calib = np.random.default_rng(0).uniform(-1, 1, size=(16, 32, 32, 3)).astype(np.float32)
    flat = convert(model, "int8", calib)
    if not with_contract:
        return flat
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=flat)
    q = lambda d: Quantization(float(d["quantization"][0]), int(d["quantization"][1]))  # noqa: E731
    contract = Contract(input_size=(32, 32), labels=tuple(labels), model={"arch": "tiny-test-cnn"})
    contract = contract.with_quantization("int8", q(it.get_input_details()[0]), q(it.get_output_details()[0]))
    return tflite_with_contract(flat, contract)


@functools.lru_cache(maxsize=None)
def tiny_float_tflite(labels: tuple[str, ...] = LABELS) -> bytes:
    """The same network as float32 TFLite, with its contract (float kernels differ between x86 and Arm)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgecnn.core.artifact import tflite_with_contract
    from edgecnn.core.contract import Contract
    from edgecnn.export.tflite import convert

    return tflite_with_contract(convert(_network(labels), "fp32"), Contract(input_size=(32, 32), labels=tuple(labels)))


def tiny_keras_model(labels: tuple[str, ...] = LABELS):
    """The same network as a Keras model (what a run's model.keras holds, at a fraction of the size)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return _network(labels)
