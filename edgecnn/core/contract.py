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
MAX_INPUT_SIDE = 4096      # px: well above any MobileNet input; refuses absurd sizes before allocating
MAX_LABELS = 10_000        # ImageNet has 1,001; a phone classifier far fewer
MAX_LABEL_CHARS = 200

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
        """A contract from parsed JSON, every field's type checked (nothing coerced), then validated."""
        if not isinstance(d, dict):
            raise ContractError(f"{source}: not a JSON object")
        if d.get("schema") != SCHEMA:
            raise ContractError(f"{source}: schema is {str(d.get('schema'))[:40]!r}, expected {SCHEMA!r}")
        known = {f for f in cls.__dataclass_fields__} | {"schema"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ContractError(f"{source}: unknown field(s) {', '.join(u[:40] for u in unknown[:5])}")
        if "input_size" not in d or "labels" not in d:
            raise ContractError(f"{source}: input_size and labels are required")
        f = _Fields(source)
        c = cls(
            input_size=tuple(f.ints("input_size", d["input_size"], 2)),
            labels=tuple(f.strings("labels", d["labels"])),
            color_order=f.string("color_order", d.get("color_order", "RGB")),
            layout=f.string("layout", d.get("layout", "NHWC")),
            resize=f.string("resize", d.get("resize", "bilinear")),
            mean=tuple(f.numbers("mean", d.get("mean", [127.5] * 3), 3)),
            std=tuple(f.numbers("std", d.get("std", [127.5] * 3), 3)),
            input_dtype=f.string("input_dtype", d.get("input_dtype", "float32")),
            input_quantization=f.quantization("input_quantization", d.get("input_quantization")),
            output_quantization=f.quantization("output_quantization", d.get("output_quantization")),
            model=f.info("model", {} if d.get("model") is None else d["model"]),
            provenance=None if d.get("provenance") is None else Provenance.from_dict(d["provenance"], source),
        )
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
        if len(self.input_size) != 2 or not all(8 <= v <= MAX_INPUT_SIDE for v in self.input_size):
            bad(f"input_size must be [height, width] of 8 to {MAX_INPUT_SIDE} px, got {list(self.input_size)}")
        if not 2 <= len(self.labels) <= MAX_LABELS:
            bad(f"needs 2 to {MAX_LABELS} labels, got {len(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            bad("labels are not unique")
        for label in self.labels:
            why = label_problem(label)
            if why:
                bad(f"label {label[:40]!r} {why}")
        if self.color_order != "RGB":
            bad(f"color_order must be RGB, got {self.color_order[:20]!r}")
        if self.layout != "NHWC":
            bad(f"layout must be NHWC, got {self.layout[:20]!r}")
        if self.resize not in RESIZE_METHODS:
            bad(f"resize must be one of {RESIZE_METHODS}, got {self.resize[:20]!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            bad("mean and std need 3 values each")
        if not all(math.isfinite(v) and abs(v) <= 65535 for v in self.mean):
            bad(f"mean must be finite numbers within +-65535 (pixel units), got {list(self.mean)}")
        if not all(math.isfinite(v) and 1e-3 <= v <= 65535 for v in self.std):
            bad(f"std must be finite numbers from 0.001 to 65535 (pixel units), got {list(self.std)}")
        if self.input_dtype not in INPUT_DTYPES:
            bad(f"input_dtype must be one of {INPUT_DTYPES}, got {self.input_dtype[:20]!r}")
        if self.input_dtype != "float32" and self.input_quantization is None:
            bad(f"input_dtype {self.input_dtype} needs input_quantization (scale, zero_point)")
        for name, qv in (("input", self.input_quantization), ("output", self.output_quantization)):
            if qv is not None and not (qv.scale > 0 and math.isfinite(qv.scale)):
                bad(f"{name}_quantization.scale must be a positive number")
            if qv is not None and not -(2 ** 31) <= qv.zero_point < 2 ** 31:
                bad(f"{name}_quantization.zero_point is out of range")


def label_problem(label: str) -> str | None:
    """Why a label cannot name a class folder, a file or a line of labels.txt (None when it can)."""
    if not label or label != label.strip():
        return "is empty or has leading/trailing spaces"
    if len(label) > MAX_LABEL_CHARS:
        return f"is longer than {MAX_LABEL_CHARS} characters"
    if label in (".", "..") or "/" in label or "\\" in label:
        return "contains a path separator or is . or .."
    if has_control_char(label):
        return "contains a control character"
    return None


def has_control_char(text: str) -> bool:
    """A tab, newline or other control character: what no line of a list file or labels.txt can hold."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


class _Fields:
    """Type checks for the fields of a contract read from JSON: one ContractError naming the field."""

    def __init__(self, source: str):
        self.source = source

    def bad(self, name: str, expected: str, value) -> None:
        raise ContractError(f"{self.source}: {name} must be {expected}, got {type(value).__name__} "
                            f"{str(value)[:40]!r}")

    def string(self, name: str, v) -> str:
        return v if isinstance(v, str) else self.bad(name, "a string", v)

    def strings(self, name: str, v) -> list[str]:
        if not isinstance(v, list):
            self.bad(name, "a list of strings", v)
        if len(v) > MAX_LABELS:
            raise ContractError(f"{self.source}: {name} has {len(v)} entries, more than {MAX_LABELS}")
        return [self.string(f"{name}[{i}]", x) for i, x in enumerate(v)]

    def ints(self, name: str, v, n: int) -> list[int]:
        if not (isinstance(v, list) and len(v) == n and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
            self.bad(name, f"a list of {n} integers", v)
        return v

    def numbers(self, name: str, v, n: int) -> list[float]:
        if not (isinstance(v, list) and len(v) == n and
                all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            self.bad(name, f"a list of {n} numbers", v)
        return [float(x) for x in v]

    def quantization(self, name: str, v) -> Quantization | None:
        if v is None:
            return None
        if not (isinstance(v, dict) and set(v) == {"scale", "zero_point"}):
            self.bad(name, "an object with scale and zero_point", v)
        scale, zp = v["scale"], v["zero_point"]
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            self.bad(f"{name}.scale", "a number", scale)
        if isinstance(zp, bool) or not isinstance(zp, int):
            self.bad(f"{name}.zero_point", "an integer", zp)
        return Quantization(float(scale), zp)

    def info(self, name: str, v) -> dict:
        """The informational `model` object: flat, string keys, scalar values."""
        if not isinstance(v, dict):
            self.bad(name, "an object", v)
        for k, x in v.items():
            if not (isinstance(x, (str, int, float, bool)) or x is None) or isinstance(x, float) and not math.isfinite(x):
                self.bad(f"{name}.{k}", "a string, number or boolean", x)
            if k in ("arch", "recipe") and not isinstance(x, str):
                self.bad(f"{name}.{k}", "a string", x)
        return dict(v)


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
            return _to_rgb8(im, p)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file") from None
    except UnidentifiedImageError:
        raise ImageError(f"{p}: not a recognised image") from None
    except Image.DecompressionBombError as e:     # refused by Pillow as it opens, before any reduced decode
        raise ImageError(f"{p}: too large to decode safely ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{p}: corrupt or truncated image ({e})") from None


# Pillow modes converted to 8-bit RGB by Pillow itself (alpha dropped, palette expanded, CMYK inverted)
CONVERTIBLE_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"}
SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def _to_rgb8(im, p: Path) -> np.ndarray:
    """8-bit RGB by the file's own bit depth: 16-bit grey scales 0..65535 to 0..255 (never guessed from
    the pixel values); modes without a defined 8-bit meaning are refused by name."""
    if im.mode in SIXTEEN_BIT_MODES:
        arr = np.asarray(im, dtype=np.uint32)
        arr = ((arr * 255 + 32767) // 65535).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[..., None], 3, axis=2))
    if im.mode not in CONVERTIBLE_MODES:
        raise ImageError(f"{p}: pixel mode {im.mode} ({'32-bit integer' if im.mode == 'I' else 'float' if im.mode == 'F' else 'unsupported'}) "
                         f"has no defined 8-bit RGB meaning: save it as 8-bit RGB or 16-bit greyscale")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8).copy()


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
