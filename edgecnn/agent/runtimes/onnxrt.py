"""ONNX Runtime: CPU, or the CUDA / TensorRT execution providers where installed."""

from __future__ import annotations

import numpy as np

from .base import ModelLoadError, Runner, RuntimeMissing, TensorSpec, first_line, native_path

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int8)": "int8",
              "tensor(uint8)": "uint8"}


class OnnxRuntimeRunner(Runner):
    formats = ("onnx",)
    name = "onnxruntime"

    def activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeMissing("ONNX Runtime is not installed: pip install onnxruntime") from None
        want = self.options.get("providers") or ["CPUExecutionProvider"]
        missing = [p for p in want if p not in ort.get_available_providers()]
        if missing:
            raise RuntimeMissing(f"ONNX Runtime here lacks {', '.join(missing)} "
                                 f"(available: {', '.join(ort.get_available_providers())})")
        so = ort.SessionOptions()
        if self.threads:
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self._s = ort.InferenceSession(native_path(self.path) or self.path.read_bytes(), so, providers=want)
        except Exception as e:
            raise ModelLoadError(f"{self.path}: not a loadable ONNX model ({first_line(e)})") from None
        i, o = self._s.get_inputs(), self._s.get_outputs()
        if len(i) != 1 or len(o) != 1:
            raise ModelLoadError(f"{self.path}: expected one input and one output, found {len(i)} and {len(o)}")
        shape = lambda s: tuple(v if isinstance(v, int) else None for v in s)  # noqa: E731
        self.input = TensorSpec(i[0].name, shape(i[0].shape), _ORT_TYPES.get(i[0].type, i[0].type))
        self.output = TensorSpec(o[0].name, shape(o[0].shape), _ORT_TYPES.get(o[0].type, o[0].type))
        self._providers = self._s.get_providers()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._s.run([self.output.name], {self.input.name: batch.astype(self.input.dtype, copy=False)})[0]

    def infer_one(self, x: np.ndarray) -> None:
        self._s.run([self.output.name], {self.input.name: x})

    def deactivate(self) -> None:
        self._s = None

    @staticmethod
    def version() -> str:
        try:
            import onnxruntime
            return f"onnxruntime {onnxruntime.__version__}"
        except Exception:
            return "unknown"


class OnnxRuntimeCudaRunner(OnnxRuntimeRunner):
    """ONNX Runtime on an NVIDIA GPU (onnxruntime-gpu): ``--engine onnxruntime-cuda``."""

    name = "onnxruntime-cuda"
    default_for_format = False

    def activate(self) -> None:
        self.options.setdefault("providers", ["CUDAExecutionProvider"])
        super().activate()


class OnnxRuntimeTensorRTRunner(OnnxRuntimeRunner):
    """ONNX Runtime's TensorRT execution provider (builds and caches engines itself):
    ``--engine onnxruntime-tensorrt``."""

    name = "onnxruntime-tensorrt"
    default_for_format = False

    def activate(self) -> None:
        self.options.setdefault("providers", ["TensorrtExecutionProvider"])
        super().activate()
