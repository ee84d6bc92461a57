"""Keras (TensorFlow): the float reference, straight from the run's model.keras."""

from __future__ import annotations

import os

import numpy as np

from .base import ModelLoadError, Runner, RuntimeMissing, TensorSpec, first_line


class KerasRunner(Runner):
    formats = ("keras",)
    name = "keras"

    def activate(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import keras
        except ImportError:
            raise RuntimeMissing("TensorFlow/Keras is not installed: pip install tensorflow-cpu") from None
        try:
            self._m = keras.saving.load_model(str(self.path), compile=False)
        except Exception as e:
            raise ModelLoadError(f"{self.path}: not a loadable Keras model ({first_line(e)})") from None
        self.input = TensorSpec("image", tuple(self._m.input_shape), "float32")
        self.output = TensorSpec("predictions", tuple(self._m.output_shape), "float32")

    @property
    def model(self):
        """The loaded Keras model (export's converters take it)."""
        return self._m

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._m.predict_on_batch(batch.astype(np.float32, copy=False)))

    def infer_one(self, x: np.ndarray) -> None:
        self._m.predict_on_batch(x)

    def deactivate(self) -> None:
        self._m = None

    @staticmethod
    def version() -> str:
        try:
            import keras
            return f"keras {keras.__version__}"
        except Exception:
            return "unknown"
