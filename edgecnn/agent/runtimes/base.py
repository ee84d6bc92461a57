"""One small interface for every inference engine: activate, describe, infer, deactivate.

Runners import their framework lazily (in activate), so choosing one never pulls in another, and
the on-device agent imports only the runtime it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.contract import Quantization, dequantize
from ...core.errors import EdgecnnError, InputError



def native_path(path: Path) -> str | None:
    """The path as a runtime's native code takes it (UTF-8), or None where it has no UTF-8 spelling: a
    name the locale could not decode (C locale with UTF-8 mode off) holds surrogates, and a runtime
    then fails as if the model were broken. Runners load the file's bytes instead."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return None
    return str(path)

class RuntimeMissing(EdgecnnError):
    """The engine a model needs is not installed here (exit 1 with the alternative named)."""


class ModelLoadError(InputError):
    """The model file is corrupt, truncated or not the format its name says."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | None, ...]
    dtype: str                           # numpy dtype name: float32, int8, uint8, float16
    quantization: Quantization | None = None


class Runner:
    """Base class. Subclasses set ``formats`` and ``name`` and implement the four methods."""

    formats: tuple[str, ...] = ()
    name = "base"

    def __init__(self, path: str | Path, threads: int | None = None, **options):
        self.path = Path(path)
        self.threads = threads
        self.options = options
        self.input: TensorSpec | None = None
        self.output: TensorSpec | None = None

    # -- to implement
    def activate(self) -> None:
        raise NotImplementedError

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run a batch (N, H, W, C) of the input dtype; return the raw output (N, classes)."""
        raise NotImplementedError

    def deactivate(self) -> None:
        pass

    @staticmethod
    def version() -> str:
        return "unknown"

    # -- shared
    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """Outputs dequantised to float (class scores) for a batch."""
        return dequantize(self.infer(batch), self.output.quantization)

    def __enter__(self):
        if not self.path.is_file():
            raise ModelLoadError(f"model file not found: {self.path}")
        self.activate()
        return self

    def __exit__(self, *exc):
        self.deactivate()
        return False

    def describe(self) -> dict:
        def spec(t):
            return None if t is None else {
                "name": t.name, "shape": list(t.shape), "dtype": t.dtype,
                "quantization": t.quantization.to_dict() if t.quantization else None}
        return {"runtime": self.name, "version": self.version(), "threads": self.threads,
                "input": spec(self.input), "output": spec(self.output)}


def first_line(e: BaseException, limit: int = 200) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:limit]


def reconcile(runner: Runner, contract, source):
    """The contract as it applies to this loaded model, or a ContractError if they disagree.

    Size and class count must match the model's tensors. The input/output types and quantisation
    are the model's own (the file is the truth), so a float contract lying beside a foreign INT8
    model still feeds it correctly.
    """
    from ...core.contract import ContractError

    shape = runner.input.shape
    if len(shape) != 4 or shape[3] not in (3, None):
        raise ContractError(f"{source}: model input {list(shape)} is not NHWC RGB as the contract requires")
    h, w = shape[1], shape[2]
    if (h, w) != (None, None) and (h, w) != tuple(contract.input_size):
        raise ContractError(f"{source}: model input is {h}x{w} but its contract says "
                            f"{contract.input_size[0]}x{contract.input_size[1]}")
    n_out = runner.output.shape[-1]
    if n_out is not None and n_out != contract.num_classes:
        raise ContractError(f"{source}: model has {n_out} outputs but its contract lists "
                            f"{contract.num_classes} labels")
    if runner.input.dtype not in ("float32", "int8", "uint8"):
        raise ContractError(f"{source}: model input type {runner.input.dtype} is not float32, int8 or uint8")
    if runner.input.dtype != "float32" and runner.input.quantization is None:
        raise ContractError(f"{source}: integer model input without quantisation parameters")
    return contract.with_quantization(runner.input.dtype, runner.input.quantization, runner.output.quantization)
