"""LiteRT (TensorFlow Lite) on the CPU with XNNPACK."""

from __future__ import annotations

import numpy as np

from ...core.contract import Quantization
from .base import ModelLoadError, Runner, RuntimeMissing, TensorSpec, first_line, native_path


def _spec(d: dict) -> TensorSpec:
    scale, zp = d.get("quantization", (0.0, 0))
    q = Quantization(float(scale), int(zp)) if scale else None
    return TensorSpec(d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name, q)


class LiteRTRunner(Runner):
    formats = ("tflite",)
    name = "litert"

    def activate(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise RuntimeMissing("LiteRT is not installed: pip install ai-edge-litert") from None
        try:
            where = native_path(self.path)
            source = {"model_path": where} if where else {"model_content": self.path.read_bytes()}
            self._it = Interpreter(**source, num_threads=self.threads)
            self._it.allocate_tensors()
        except Exception as e:
            raise ModelLoadError(f"{self.path}: not a loadable TFLite model ({first_line(e)})") from None
        ins, outs = self._it.get_input_details(), self._it.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelLoadError(f"{self.path}: expected one input and one output, found {len(ins)} and {len(outs)}")
        self.input, self.output = _spec(ins[0]), _spec(outs[0])
        self._in, self._out = ins[0]["index"], outs[0]["index"]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        out = []
        for x in batch:
            self._it.set_tensor(self._in, x[None].astype(self.input.dtype, copy=False))
            self._it.invoke()
            out.append(self._it.get_tensor(self._out)[0].copy())
        return np.stack(out)

    def infer_one(self, x: np.ndarray) -> None:
        """Latency path: set, invoke, no copy-out."""
        self._it.set_tensor(self._in, x)
        self._it.invoke()

    def deactivate(self) -> None:
        self._it = None

    @staticmethod
    def version() -> str:
        try:
            import ai_edge_litert
            return f"ai-edge-litert {ai_edge_litert.__version__}"
        except Exception:
            return "unknown"
