"""TensorRT engines (NVIDIA GPUs, Jetson). Written against TensorRT 10's Python API
(tensor-name I/O, ``execute_async_v3``) with cuda-python for device memory.

An engine is tied to the GPU, TensorRT and CUDA versions it was built with: it is built on the
target from the INT8 Q/DQ ONNX (see edgecnn.export.tensorrt) and is never copied between devices.
"""

from __future__ import annotations

import numpy as np

from .base import ModelLoadError, Runner, RuntimeMissing, TensorSpec, first_line

MISSING = ("TensorRT is not installed here (it needs an NVIDIA GPU and NVIDIA's tensorrt package); "
           "bench the INT8 Q/DQ ONNX with ONNX Runtime instead, or build the engine on the target "
           "with 'edgecnn bench MODEL_int8_qdq.onnx --device jetson --engine tensorrt'")


def import_tensorrt():
    try:
        import tensorrt as trt  # noqa: F401
        return trt
    except Exception:
        raise RuntimeMissing(MISSING) from None


class TensorRTRunner(Runner):
    formats = ("tensorrt",)
    name = "tensorrt"

    def activate(self) -> None:
        trt = import_tensorrt()
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart  # older cuda-python layout
            except ImportError:
                raise RuntimeMissing("cuda-python is not installed: pip install cuda-python") from None
        self._cudart = cudart
        logger = trt.Logger(trt.Logger.WARNING)
        self._engine = trt.Runtime(logger).deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ModelLoadError(f"{self.path}: TensorRT could not deserialize the engine (built for another "
                                 f"GPU or TensorRT version?)")
        self._ctx = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        ins = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(ins) != 1 or len(outs) != 1:
            raise ModelLoadError(f"{self.path}: expected one input and one output tensor")

        def spec(n):
            return TensorSpec(n, tuple(self._engine.get_tensor_shape(n)),
                              np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))).name)
        self.input, self.output = spec(ins[0]), spec(outs[0])
        _, self._stream = cudart.cudaStreamCreate()
        self._buffers: dict[str, tuple[int, int]] = {}

    def _device(self, name: str, nbytes: int) -> int:
        ptr, size = self._buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                self._cudart.cudaFree(ptr)
            _, ptr = self._cudart.cudaMalloc(nbytes)
            self._buffers[name] = (ptr, nbytes)
            self._ctx.set_tensor_address(name, ptr)
        return ptr

    def infer(self, batch: np.ndarray) -> np.ndarray:
        cud = self._cudart
        x = np.ascontiguousarray(batch.astype(self.input.dtype, copy=False))
        self._ctx.set_input_shape(self.input.name, x.shape)
        out_shape = tuple(self._ctx.get_tensor_shape(self.output.name))
        y = np.empty(out_shape, dtype=self.output.dtype)
        d_in = self._device(self.input.name, x.nbytes)
        d_out = self._device(self.output.name, y.nbytes)
        H2D, D2H = cud.cudaMemcpyKind.cudaMemcpyHostToDevice, cud.cudaMemcpyKind.cudaMemcpyDeviceToHost
        cud.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, H2D, self._stream)
        if not self._ctx.execute_async_v3(self._stream):
            raise ModelLoadError(f"{self.path}: TensorRT execution failed")
        cud.cudaMemcpyAsync(y.ctypes.data, d_out, y.nbytes, D2H, self._stream)
        cud.cudaStreamSynchronize(self._stream)
        return y

    def infer_one(self, x: np.ndarray) -> None:
        self.infer(x)

    def deactivate(self) -> None:
        for ptr, _ in getattr(self, "_buffers", {}).values():
            self._cudart.cudaFree(ptr)
        self._buffers = {}
        self._ctx = self._engine = None

    @staticmethod
    def version() -> str:
        try:
            return f"tensorrt {import_tensorrt().__version__}"
        except Exception as e:
            return f"unavailable ({first_line(e, 60)})"
