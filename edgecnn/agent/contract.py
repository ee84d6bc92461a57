"""The preprocessing contract: the one definition of how pixels become a model input.

It is written once at train time (``contract.json``) and carried into every artifact (TFLite
associated file, ONNX ``metadata_props``, a JSON beside an engine, the Android assets). Everything
outside the TensorFlow training graph applies it through :func:`preprocess` below: evaluation,
calibration, every runtime, the on-device agent. The Android app ports the same few lines to
Kotlin and is checked against this file bit for bit.

This module needs numpy and Pillow only (never TensorFlow), so it runs on a device.

The steps, in order:
1. decode with Pillow, apply the EXIF orientation, convert to RGB (grayscale, palette, RGBA,
   CMYK, 16-bit all become 8-bit RGB; alpha is dropped);
2. resize to ``input_size`` (height, width) by stretching, bilinear with half-pixel centres and no
   antialiasing, computed in float32 in the order TensorFlow's ``tf.image.resize`` uses
   (horizontal interpolation of the two source rows, then vertical);
3. normalise: ``x = (pixel - mean) / std`` per channel, in float32 (MobileNetV2: mean = std = 127.5,
   i.e. x / 127.5 - 1);
4. for an integer input, quantise: ``q = clip(rint(x / scale) + zero_point)`` (round half to even).

The resize is written out here rather than delegated to OpenCV on purpose: its arithmetic is fully
specified, so the Kotlin port and TensorFlow's training-time resize can be held to it exactly,
whereas OpenCV's fixed-point and SIMD paths are not a documented contract.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import InputError

SCHEMA = "edgecnn.contract/1"
RESIZE_METHODS = ("bilinear",)
INPUT_DTYPES = ("float32", "int8", "uint8")
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}

# Images whose longest side exceeds this are decoded at a reduced scale (JPEG DCT scaling) so a
# huge photo never has to be held in memory at full resolution. Both training (through the
# normalised-image cache) and inference use this same rule.
LARGE_IMAGE_SIDE = 4096
# Non-JPEG images larger than this are refused rather than risking memory exhaustion.
MAX_DECODE_PIXELS = 100_000_000


class ContractError(InputError):
    """A contract file that is missing, malformed, or that a model does not honour."""


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "zero_point": int(self.zero_point)}


@dataclass(frozen=True)
class Provenance:
    """What an artifact was made from: the sha256 of the run's model.keras and of its resolved recipe."""

    model_sha256: str
    recipe_sha256: str

    def to_dict(self) -> dict:
        return {"model_sha256": self.model_sha256, "recipe_sha256": self.recipe_sha256}

    @classmethod
    def from_dict(cls, d: Any, source: str) -> "Provenance":
        if not isinstance(d, dict) or set(d) != {"model_sha256", "recipe_sha256"}:
            raise ContractError(f"{source}: provenance must hold exactly model_sha256 and recipe_sha256")
        for k, v in d.items():
            if not (isinstance(v, str) and len(v) == 64 and all(ch in "0123456789abcdef" for ch in v)):
                raise ContractError(f"{source}: provenance.{k} is not a sha256 hex digest")
        return cls(d["model_sha256"], d["recipe_sha256"])


@dataclass(frozen=True)
class Contract:
    input_size: tuple[int, int]  # (height, width)
    labels: tuple[str, ...]
    color_order: str = "RGB"
    layout: str = "NHWC"
    resize: str = "bilinear"
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    input_dtype: str = "float32"
    input_quantization: Quantization | None = None
    output_quantization: Quantization | None = None
    model: dict = field(default_factory=dict)  # arch, alpha, recipe... (informational)
    provenance: Provenance | None = None       # set at train time: what every artifact came from

    # ------------------------------------------------------------------ derived
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        h, w = self.input_size
        return (1, h, w, 3)

    def with_quantization(self, input_dtype: str, input_q: Quantization | None,
                          output_q: Quantization | None) -> "Contract":
        """The same preprocessing for an artifact with another input type (e.g. INT8)."""
        c = replace(self, input_dtype=input_dtype, input_quantization=input_q,
                    output_quantization=output_q)
        c.validate()
        return c

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["labels"] = list(self.labels)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["input_quantization"] = self.input_quantization.to_dict() if self.input_quantization else None
        d["output_quantization"] = self.output_quantization.to_dict() if self.output_quantization else None
        d["provenance"] = self.provenance.to_dict() if self.provenance else None
        return {"schema": SCHEMA, **d}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, d: Any, source: str = "contract") -> "Contract":
        if not isinstance(d, dict):
            raise ContractError(f"{source}: not a JSON object")
        if d.get("schema") != SCHEMA:
            raise ContractError(f"{source}: schema is {d.get('schema')!r}, expected {SCHEMA!r}")
        known = {f for f in cls.__dataclass_fields__} | {"schema"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ContractError(f"{source}: unknown field(s) {', '.join(unknown)}")
        try:
            def q(v):
                return None if v is None else Quantization(float(v["scale"]), int(v["zero_point"]))
            c = cls(
                input_size=tuple(int(v) for v in d["input_size"]),
                labels=tuple(str(v) for v in d["labels"]),
                color_order=d.get("color_order", "RGB"),
                layout=d.get("layout", "NHWC"),
                resize=d.get("resize", "bilinear"),
                mean=tuple(float(v) for v in d.get("mean", (127.5,) * 3)),
                std=tuple(float(v) for v in d.get("std", (127.5,) * 3)),
                input_dtype=d.get("input_dtype", "float32"),
                input_quantization=q(d.get("input_quantization")),
                output_quantization=q(d.get("output_quantization")),
                model=dict(d.get("model") or {}),
                provenance=None if d.get("provenance") is None else Provenance.from_dict(d["provenance"], source),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ContractError(f"{source}: malformed field ({type(e).__name__}: {e})") from None
        c.validate(source)
        return c

    @classmethod
    def from_json(cls, text: str | bytes, source: str = "contract") -> "Contract":
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ContractError(f"{source}: not valid JSON ({e})") from None
        return cls.from_dict(d, source)

    def validate(self, source: str = "contract") -> None:
        def bad(msg):
            raise ContractError(f"{source}: {msg}")
        if len(self.input_size) != 2 or min(self.input_size) < 8:
            bad(f"input_size must be [height, width] of at least 8 px, got {list(self.input_size)}")
        if len(self.labels) < 2:
            bad(f"needs at least 2 labels, got {len(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            bad("labels are not unique")
        if self.color_order != "RGB":
            bad(f"color_order must be RGB, got {self.color_order!r}")
        if self.layout != "NHWC":
            bad(f"layout must be NHWC, got {self.layout!r}")
        if self.resize not in RESIZE_METHODS:
            bad(f"resize must be one of {RESIZE_METHODS}, got {self.resize!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            bad("mean and std need 3 values each, std > 0")
        if self.input_dtype not in INPUT_DTYPES:
            bad(f"input_dtype must be one of {INPUT_DTYPES}, got {self.input_dtype!r}")
        if self.input_dtype != "float32" and self.input_quantization is None:
            bad(f"input_dtype {self.input_dtype} needs input_quantization (scale, zero_point)")
        for name, qv in (("input", self.input_quantization), ("output", self.output_quantization)):
            if qv is not None and not (qv.scale > 0 and math.isfinite(qv.scale)):
                bad(f"{name}_quantization.scale must be a positive number")


def save(contract: Contract, path: str | Path) -> None:
    from .io import atomic_write_text
    atomic_write_text(path, contract.to_json())


def load(path: str | Path) -> Contract:
    p = Path(path)
    if not p.is_file():
        raise ContractError(f"no preprocessing contract at {p} (expected contract.json written by 'edgecnn train')")
    return Contract.from_json(p.read_bytes(), source=str(p))


# ---------------------------------------------------------------------------------- apply
class ImageError(InputError):
    """An image that cannot be decoded (corrupt, truncated, empty, unsupported, too large)."""


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array, as every non-training path does."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    try:
        if p.stat().st_size == 0:
            raise ImageError(f"{p}: empty file (0 bytes)")
        with Image.open(p) as im:
            w, h = im.size
            if im.format == "JPEG" and max(w, h) > LARGE_IMAGE_SIDE:
                # DCT-domain downscale by 1/2, 1/4 or 1/8: never materialise the full image.
                im.draft("RGB", (max(1, w * LARGE_IMAGE_SIDE // max(w, h)),
                                 max(1, h * LARGE_IMAGE_SIDE // max(w, h))))
            elif w * h > MAX_DECODE_PIXELS:
                raise ImageError(f"{p}: {w}x{h} is too large to decode safely "
                                 f"(over {MAX_DECODE_PIXELS // 1_000_000} MP)")
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.uint32)
                arr = (arr * 255 + 32767) // 65535 if arr.max() > 255 else arr
                arr = np.repeat(arr.astype(np.uint8)[..., None], 3, axis=2)
                return np.ascontiguousarray(arr)
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not a recognised image") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"{p}: corrupt or truncated image ({e})") from None


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of half-pixel bilinear sampling along one axis (float32)."""
    scale = np.float32(n_in) / np.float32(n_out)
    pos = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    pos = np.minimum(np.maximum(pos, np.float32(0.0)), np.float32(n_in - 1))
    lo = np.floor(pos)
    frac = (pos - lo).astype(np.float32)
    lo = lo.astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, frac


def resize_bilinear(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize HxWxC to size=(height, width): float32, half-pixel centres, no antialiasing."""
    out_h, out_w = size
    src = img.astype(np.float32, copy=False)
    y0, y1, fy = _axis(src.shape[0], out_h)
    x0, x1, fx = _axis(src.shape[1], out_w)
    fx = fx[None, :, None]
    top, bottom = src[y0], src[y1]
    top = top[:, x0] + (top[:, x1] - top[:, x0]) * fx
    bottom = bottom[:, x0] + (bottom[:, x1] - bottom[:, x0]) * fx
    return top + (bottom - top) * fy[:, None, None]


def normalize(resized: np.ndarray, contract: Contract) -> np.ndarray:
    mean = np.asarray(contract.mean, dtype=np.float32)
    std = np.asarray(contract.std, dtype=np.float32)
    return (resized.astype(np.float32, copy=False) - mean) / std


def quantize(x: np.ndarray, dtype: str, q: Quantization) -> np.ndarray:
    lo, hi = INT_RANGES[dtype]
    v = np.rint(x / np.float32(q.scale)) + np.float32(q.zero_point)
    return np.clip(v, lo, hi).astype(dtype)


def dequantize(v: np.ndarray, q: Quantization | None) -> np.ndarray:
    if q is None:
        return v.astype(np.float32, copy=False)
    return (v.astype(np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)


def preprocess_array(rgb: np.ndarray, contract: Contract) -> np.ndarray:
    """An HxWx3 uint8 RGB image -> one model input (H, W, 3) of the contract's dtype."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    x = normalize(resize_bilinear(rgb, contract.input_size), contract)
    if contract.input_dtype == "float32":
        return x
    return quantize(x, contract.input_dtype, contract.input_quantization)


def preprocess(path: str | Path, contract: Contract) -> np.ndarray:
    return preprocess_array(load_image(path), contract)


def preprocess_batch(paths: Sequence[str | Path], contract: Contract) -> np.ndarray:
    if not paths:
        return np.zeros((0, *contract.input_shape[1:]), dtype=contract.input_dtype)
    return np.stack([preprocess(p, contract) for p in paths])


def topk(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Top-k (index, score) of one output vector, highest first; ties go to the lower index."""
    s = np.asarray(scores, dtype=np.float32).ravel()
    order = np.argsort(-s, kind="stable")[:k]
    return [(int(i), float(s[i])) for i in order]
