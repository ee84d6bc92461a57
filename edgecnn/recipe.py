"""Task recipes: YAML files validated into typed objects, with errors that name the bad key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .core.errors import InputError
from .paths import builtin



NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"     # a recipe's name: also a file name and a key of the built-in lists


class RecipeError(InputError):
    pass


class _Strict(BaseModel):
    # no unknown keys, no coercion ("yes" is not a boolean, "3" not a number), no inf/NaN
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ModelSpec(_Strict):
    arch: Literal["mobilenet_v2"] = "mobilenet_v2"
    alpha: Literal[0.35, 0.5, 0.75, 1.0, 1.3, 1.4] = 1.0
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


class Augmentation(_Strict):
    """Random transforms applied to training images only (never to val/test/calibration)."""
    horizontal_flip: bool = False
    vertical_flip: bool = False
    rotation_degrees: float = Field(0.0, ge=0.0, le=180.0)
    zoom: float = Field(0.0, ge=0.0, le=0.5)          # +- fraction
    translate: float = Field(0.0, ge=0.0, le=0.5)     # +- fraction of the side
    brightness: float = Field(0.0, ge=0.0, le=0.5)    # +- fraction of the value range
    contrast: float = Field(0.0, ge=0.0, le=0.9)
    saturation: float = Field(0.0, ge=0.0, le=0.9)
    hue: float = Field(0.0, ge=0.0, le=0.5)

    @property
    def enabled(self) -> bool:
        return any(v not in (False, 0, 0.0) for v in self.model_dump().values())


Schedule = Literal["plateau", "cosine"]
# "plateau": a constant rate, cut by reduce_lr when the monitored value stalls. "cosine": a linear
# warm-up over the first 10% of the phase's steps, then cosine decay to zero at its last (capped)
# epoch; reduce_lr is not used. The warm-up keeps a random new head from wrecking pretrained layers.


class HeadPhase(_Strict):
    """Phase 1 on cached activations of the frozen part of the backbone (BatchNorm in inference mode):
    the new head, and the backbone's last `top_blocks` inverted-residual blocks when that is > 0."""
    epochs: int = Field(30, ge=1, le=1000)
    learning_rate: float = Field(1e-3, gt=0, le=1.0)
    # The frozen layers run once per image and augmented view and their output is cached; phase 1
    # then trains for many epochs without decoding, augmenting or recomputing them.
    augmented_views: int = Field(4, ge=0, le=50)
    # 0: cache the pooled features and train the head alone (cheapest). N > 0: cache the activations
    # below the last N of MobileNetV2's 16 numbered blocks and train those blocks (with the final 1x1
    # conv) and the head: most of what fine-tuning gains, at a fraction of its cost per epoch.
    top_blocks: int = Field(0, ge=0, le=16)
    schedule: Schedule = "plateau"


class FineTunePhase(_Strict):
    """Phase 2: unfreeze the last N backbone layers and fine-tune with a small learning rate."""
    epochs: int = Field(5, ge=0, le=1000)
    learning_rate: float = Field(1e-5, gt=0, le=1.0)
    unfreeze_layers: int = Field(30, ge=0, le=200)
    # BatchNorm layers normally stay frozen (inference mode) while fine-tuning; for a domain far
    # from ImageNet, re-estimating their statistics can help.
    train_batchnorm: bool = False
    schedule: Schedule = "plateau"


class EarlyStopping(_Strict):
    monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    patience: int = Field(5, ge=1, le=1000)


class ReduceLR(_Strict):
    factor: float = Field(0.3, gt=0, lt=1)
    patience: int = Field(2, ge=1, le=1000)
    min_lr: float = Field(1e-7, ge=0, le=1.0)


class Training(_Strict):
    batch_size: int = Field(32, ge=1, le=1024)
    validation_split: float = Field(0.15, gt=0.0, lt=0.5)
    class_weight: Literal["balanced", "none"] = "balanced"
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    head: HeadPhase = HeadPhase()
    fine_tune: FineTunePhase = FineTunePhase()
    early_stopping: EarlyStopping = EarlyStopping()
    reduce_lr: ReduceLR = ReduceLR()


class Budgets(_Strict):
    size_mb: float = Field(20.0, gt=0)
    max_int8_drop_pp: float = Field(1.0, ge=0)          # overall top-1 drop vs float
    max_int8_class_drop_pp: float | None = Field(None, ge=0)  # worst class; None: not enforced
    max_p90_ms: float | None = Field(None, gt=0)
    # share of test images whose top-1 must not change vs float (judged on its 95% interval); None: off
    min_agreement_pct: float | None = Field(None, ge=0, le=100)


class Recipe(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    image_size: int = Field(160, ge=32, le=512)
    model: ModelSpec = ModelSpec()
    augmentation: Augmentation = Augmentation()
    training: Training = Training()
    calibration_size: int = Field(200, ge=1, le=10000)
    budgets: Budgets = Budgets()

    @model_validator(mode="after")
    def _check(self):
        if self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 (MobileNetV2 strides), got {self.image_size}")
        return self

    def with_overrides(self, **kw) -> "Recipe":
        return self.model_copy(update={k: v for k, v in kw.items() if v is not None})


def available() -> dict[str, Path]:
    return {p.stem: p for p in sorted(builtin("recipes").glob("*.yaml"))}


def resolve_path(name_or_file: str | Path) -> Path:
    """A bare name (no folder, no .yaml/.yml) is a built-in recipe, never a file; anything else is a file."""
    text = str(name_or_file)
    p = Path(text)
    if p.suffix in (".yaml", ".yml") or "/" in text or os.sep in text:
        if not p.is_file():
            raise RecipeError(f"recipe file not found: {p}")
        return p
    known = available()
    if text not in known:
        raise RecipeError(f"unknown recipe {text!r}; built-in recipes: "
                          f"{', '.join(known) or 'none'} (or pass a path to a .yaml file)")
    return known[text]


def _format_error(src: str, e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    more = f" (+{len(e.errors()) - 3} more)" if len(e.errors()) > 3 else ""
    return f"recipe {src}: " + "; ".join(parts) + more


class _RecipeKeyError(yaml.constructor.ConstructorError):
    """Valid YAML that a recipe cannot hold (a key given twice, a key that is not a plain name)."""


MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last silently)
    and a key that is not a plain scalar. Merge keys (<<: *anchor) work as in YAML: the mapping's own
    keys override merged ones."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _RecipeKeyError(None, None, "a key must be a plain name, not a list or mapping",
                                      key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _RecipeKeyError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(name_or_file: str | Path) -> Recipe:
    path = resolve_path(name_or_file)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError as e:
        raise RecipeError(f"recipe {path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise RecipeError(f"recipe {path}: cannot be read ({e.strerror})") from None
    except _RecipeKeyError as e:
        raise RecipeError(f"recipe {path}: {e.problem} (line {e.problem_mark.line + 1})") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"recipe {path}: not valid YAML ({' '.join(str(e).split())[:200]})") from None
    if isinstance(data, dict) and "name" not in data:
        if not re.fullmatch(NAME_PATTERN, path.stem):
            raise RecipeError(f"recipe {path}: it has no 'name:' and its file name {path.stem!r} cannot stand in "
                              f"for one (letters, digits, _ . - only): add a line 'name: my_task'")
        data["name"] = path.stem
    return from_dict(data, str(path))


def from_dict(data, source: str) -> Recipe:
    """A recipe from parsed YAML/JSON (a run's recipe.json, a recipe file), validated."""
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {source}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise RecipeError(_format_error(source, e)) from None


def to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
