"""MobileNetV2 backbone (ImageNet weights from a local file or Keras' download) + a new head."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from .core.errors import InputError
from .paths import REPO_ROOT, shared_data

BACKBONE_END = "out_relu"   # last backbone activation (Grad-CAM target)
BLOCKS = 16                 # MobileNetV2's numbered inverted-residual blocks, block_1 .. block_16
POOL, DROPOUT, HEAD = "pool", "head_dropout", "predictions"


@dataclass(frozen=True)
class WeightsChoice:
    source: str            # "file", "found", "imagenet-download", "none"
    path: Path | None
    message: str


def weights_filename(alpha: float) -> str:
    return f"mobilenet_v2_{float(alpha)}_no_top_imagenet.weights.h5"


def resolve_weights(option: str | None, alpha: float = 1.0) -> WeightsChoice:
    """--weights PATH | none, else a local file found, else Keras' own ImageNet download."""
    if option is not None and option.lower() == "none":
        return WeightsChoice("none", None, "weights: none (random initialisation, --weights none)")
    if option:
        p = Path(option).expanduser()
        if not p.is_file():
            raise InputError(f"weights file not found: {p}")
        return WeightsChoice("file", p, f"weights: {p} (--weights)")
    name = weights_filename(alpha)
    candidates = []
    env = os.environ.get("EDGECNN_WEIGHTS")
    if env:
        candidates.append(Path(env) / name if Path(env).is_dir() else Path(env))
    candidates += [Path.cwd() / "weights" / name, REPO_ROOT / "weights" / name, shared_data() / "weights" / name]
    for c in candidates:
        if c.is_file():
            return WeightsChoice("found", c, f"weights: {c} (found locally)")
    return WeightsChoice("imagenet-download", None,
                         "weights: Keras ImageNet download (no local file found; pass --weights PATH "
                         "to use a local one)")


def build(num_classes: int, image_size: int, *, alpha: float = 1.0, dropout: float = 0.2,
          weights: WeightsChoice | None = None):
    import keras
    from keras import layers

    weights = weights or WeightsChoice("none", None, "")
    inputs = keras.Input((image_size, image_size, 3), name="image")
    try:
        with warnings.catch_warnings():
            # Sizes outside Keras' list load the 224 px weights, which is right without the top: the
            # convolutions do not depend on the input size. Keras warns about it every time.
            warnings.filterwarnings("ignore", message=".*Weights for input shape .* will be loaded as the default")
            base = keras.applications.MobileNetV2(
                input_tensor=inputs, input_shape=(image_size, image_size, 3), include_top=False, alpha=alpha,
                weights="imagenet" if weights.source == "imagenet-download" else None)
    except Exception as e:  # network failure of Keras' download
        raise InputError(f"could not get ImageNet weights from Keras' download ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160]}); pass --weights PATH or --weights none") from None
    if weights.path is not None:
        stored = _stored_variable_count(weights.path)
        if stored is not None and stored != len(base.weights):
            raise InputError(f"weights file {weights.path} does not fit MobileNetV2 alpha={alpha} without top: "
                             f"it holds {stored} variables, the backbone has {len(base.weights)} "
                             f"(a file with the classifier head, or another architecture?)")
        try:
            base.load_weights(str(weights.path))
        except Exception as e:
            raise InputError(f"weights file {weights.path} does not fit MobileNetV2 alpha={alpha} without "
                             f"top ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
    x = layers.GlobalAveragePooling2D(name=POOL)(base.output)
    x = layers.Dropout(dropout, name=DROPOUT)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name=HEAD)(x)
    return keras.Model(inputs, outputs, name=f"mobilenetv2_{alpha}_{image_size}")


def _stored_variable_count(path: Path) -> int | None:
    """Variables in a Keras 3 .weights.h5 file (None if it is another format)."""
    try:
        import h5py
        with h5py.File(path, "r") as f:
            if "layers" not in f:
                return None
            n = 0

            def visit(name, obj):
                nonlocal n
                if isinstance(obj, h5py.Dataset) and "/vars/" in f"/{name}":
                    n += 1
            f["layers"].visititems(visit)
            return n
    except (OSError, ImportError):
        return None


def backbone_layers(model) -> list:
    names = [l.name for l in model.layers]
    return model.layers[1:names.index(POOL)]


def set_trainable(model, unfreeze_last: int, train_batchnorm: bool = False) -> int:
    """Freeze the backbone except its last N layers; BatchNorm stays frozen (inference mode)
    unless train_batchnorm.

    Returns the number of trainable backbone layers that have weights.
    """
    import keras

    bb = backbone_layers(model)
    start = max(0, len(bb) - unfreeze_last)
    n = 0
    for i, layer in enumerate(bb):
        train = i >= start and (train_batchnorm or not isinstance(layer, keras.layers.BatchNormalization))
        layer.trainable = train
        n += int(train and bool(layer.weights))
    for name in (DROPOUT, HEAD):
        model.get_layer(name).trainable = True
    return n


def cache_point(model, top_blocks: int) -> str:
    """The layer whose output phase 1 caches: the pooled features (top_blocks=0), or the output of the
    block below the last `top_blocks` of block_1 .. block_16 (expanded_conv's for all 16); everything
    above it (those blocks, the final 1x1 conv Conv_1 and the head) trains in phase 1."""
    if top_blocks <= 0:
        return POOL
    below = BLOCKS - top_blocks
    prefix = f"block_{below}_" if below > 0 else "expanded_conv_"
    return [l.name for l in backbone_layers(model) if l.name.startswith(prefix)][-1]


def layers_above(model, name: str) -> int:
    """How many backbone layers come after layer `name` (what set_trainable unfreezes to train them)."""
    bb = [l.name for l in backbone_layers(model)]
    return len(bb) - bb.index(name) - 1 if name in bb else 0


def feature_extractor(model, name: str = POOL):
    """Input image -> the output of layer `name` (what phase 1 caches)."""
    import keras
    return keras.Model(model.input, model.get_layer(name).output, name="features")


def top_model(model, name: str = POOL):
    """The output of layer `name` -> class probabilities, sharing layers (and weights) with model."""
    import keras
    return keras.Model(model.get_layer(name).output, model.output, name="top")
