"""Keras (TensorFlow): the float reference, straight from the run's model.keras."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from .base import ModelLoadError, Runner, RuntimeMissing, TensorSpec, first_line


def _zip_damage(path) -> str | None:
    """Why a .keras file (a zip archive) cannot be read whole, or None when every member checks out."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        return f"not a whole .keras zip archive: {first_line(e)}"
    return f"its member {bad} fails its checksum" if bad else None


class KerasRunner(Runner):
    formats = ("keras",)
    name = "keras"

    def activate(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import keras
        except ImportError:
            raise RuntimeMissing("TensorFlow/Keras is not installed: pip install tensorflow-cpu") from None
        damage = _zip_damage(self.path)
        if damage:     # Keras says "File not found" of a .keras file that exists but is not a whole zip
            raise ModelLoadError(f"{self.path}: not a loadable Keras model ({damage}; truncated or damaged?)")
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
