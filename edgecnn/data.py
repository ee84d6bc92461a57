"""ImageFolder scanning and checks (no TensorFlow), and the tf.data training pipeline.

Layouts accepted for ``--data DIR``:
  DIR/train/<class>/*  (+ optional DIR/val/<class>/*, DIR/test/<class>/*)
  DIR/<class>/*        (a single folder of classes: all of it is training data)
Without ``val/`` a stratified validation split is held out of train.

Every image is opened and fully decoded once while scanning: corrupt, truncated, zero-byte or
unreadable files are skipped and listed (path and reason), never a crash. With a check cache
(:mod:`edgecnn.checks`) a photo unchanged since an earlier check is not decoded again. Images TensorFlow's
decoders would read differently from :func:`edgecnn.agent.contract.load_image` (CMYK, 16-bit, EXIF
rotation, TIFF/WebP, huge photos) are normalised once into a cache through that same function,
so training sees exactly the pixels every other path sees.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .agent import contract as C
from .agent.io import sha256_file
from .checks import CheckReport, check_all
from .agent.images import (IMAGE_EXTENSIONS, DataError, Sample, class_dirs, hidden, images_under,
                           is_image, subdirs)

SPLITS = ("train", "val", "test")
UNLABELED = "unlabeled"   # beside the splits: photos without labels, evidence for `--unlabeled`, never trained on


@dataclass
class Dataset:
    root: Path
    layout: str                      # "splits" or "flat"
    classes: list[str]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    val_source: str                  # "val/" or "held out of train (15%)"
    skipped: list[dict] = field(default_factory=list)
    normalized: list[str] = field(default_factory=list)
    overlap: dict[str, int] = field(default_factory=dict)   # split -> its images whose content is in train/
    checked: CheckReport | None = None                      # how many photos were decoded anew this time

    def warnings(self) -> list[str]:
        """What the user must hear before trusting the numbers: val/test images that are training images."""
        out = []
        for split, n in self.overlap.items():
            total = len(getattr(self, split))
            out.append(f"warning: {n} of {total} {split} images are also in train/ (same content): the {split} "
                       f"accuracy {'is' if n == total else 'is inflated toward'} training accuracy; keep "
                       f"{split}/ photos apart from train/")
        return out

    def counts(self) -> dict:
        out = {}
        for split in SPLITS:
            samples = getattr(self, split)
            c = Counter(s.label for s in samples)
            out[split] = {"total": len(samples), "per_class": {self.classes[i]: c.get(i, 0) for i in range(len(self.classes))}}
        return out


def find_layout(root: Path) -> tuple[str, dict[str, Path]]:
    """Return ("splits"|"flat", {split: folder}) or raise DataError saying what is wrong."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"--data must be a folder, got a file: {root}")
    subs = subdirs(root)
    names = {d.name for d in subs}
    if names & set(SPLITS):
        if "train" not in names:
            present = ", ".join(sorted(names & set(SPLITS)))
            raise DataError(f"{root} has {present}/ but no train/ split (expected {root}/train/<class>/...)")
        extra = sorted(names - set(SPLITS) - {UNLABELED})
        if extra:
            raise DataError(f"{root}: unexpected folder(s) {', '.join(extra)} beside train/ "
                            f"(split folders must be train/, val/, test/)")
        return "splits", {s: root / s for s in SPLITS if s in names}
    if not subs:
        loose = [p.name for p in root.iterdir() if is_image(p)][:1]
        hint = " (images lie directly in it)" if loose else ""
        raise DataError(f"{root} has no class subfolders{hint}: expected {root}/train/<class>/<image> "
                        f"or {root}/<class>/<image>")
    return "flat", {"train": root}


def _normalized_copy(path: Path, cache_dir: Path) -> Path:
    """Write load_image(path) losslessly so TensorFlow decodes exactly the contract's pixels."""
    from PIL import Image

    key = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    out = cache_dir / f"{key}.png"
    if not out.exists():
        Image.fromarray(C.load_image(path)).save(out, format="PNG")
    return out


def scan(root: str | Path, *, val_fraction: float = 0.15, seed: int = 0,
         cache_dir: str | Path | None = None, progress: bool = True, checks: Path | None = None) -> Dataset:
    """The dataset under root, every photo checked (decoded, or its verdict remembered in the check
    cache file `checks` when unchanged since; None: decode every photo)."""
    root = Path(root)
    layout, split_dirs = find_layout(root)

    per_split_classes = {s: class_dirs(d) for s, d in split_dirs.items()}
    classes = sorted(per_split_classes["train"])
    for name in classes:
        why = C.label_problem(name)
        if why:
            raise DataError(f"class folder {name!r} in {split_dirs['train']} {why}: a class name becomes a "
                            f"line of labels.txt and a label in the app; rename the folder")
    for split, dirs in per_split_classes.items():
        if split == "train":
            continue
        missing, extra = sorted(set(classes) - set(dirs)), sorted(set(dirs) - set(classes))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing in {split}/: {', '.join(missing)}")
            if extra:
                parts.append(f"only in {split}/: {', '.join(extra)}")
            raise DataError(f"class folders differ between train/ and {split}/ ({'; '.join(parts)})")
    if len(classes) < 2:
        raise DataError(f"{split_dirs['train']} has a single class ({classes[0]}): a classifier needs at least 2")

    files: list[tuple[str, int, Path]] = []
    for split, dirs in per_split_classes.items():
        for ci, name in enumerate(classes):
            files += [(split, ci, p) for p in images_under(dirs[name])]

    from tqdm.auto import tqdm
    report = check_all([f[2] for f in files], checks, lambda it, n: tqdm(
        it, total=n, desc="checking images", unit="img", disable=not progress, leave=False))

    skipped, normalized = [], []
    cache = Path(cache_dir) if cache_dir else None
    by_split: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for (split, ci, p), (err, needs_norm) in zip(files, ((c.error, c.needs_normalising) for c in report.checks)):
        if not err and C.has_control_char(p.relative_to(root).as_posix()):
            err = "its name contains a control character (a tab or newline): rename the file to use it"
        if err:
            skipped.append({"path": str(p), "reason": err})
            continue
        load_path = p
        if needs_norm:
            if cache is None:
                raise DataError(f"{p} needs normalising but no cache folder was given")
            cache.mkdir(parents=True, exist_ok=True)
            load_path = _normalized_copy(p, cache)
            normalized.append(str(p))
        by_split[split].append(Sample(p, ci, load_path))

    for split in split_dirs:
        counts = Counter(s.label for s in by_split[split])
        empty = [classes[i] for i in range(len(classes)) if counts.get(i, 0) == 0]
        if empty:
            where = split_dirs[split] if layout == "splits" else root
            raise DataError(f"empty class(es) in {where}: {', '.join(empty)} (no readable images"
                            f"{_unread_files(per_split_classes[split][empty[0]])})")

    val_source = "val/"
    train, val = by_split["train"], by_split["val"]
    if "val" not in split_dirs:
        train, val = stratified_split(train, val_fraction, seed)
        val_source = f"held out of train ({val_fraction:.0%}, stratified)"
    held_out = "val" not in split_dirs      # then train/ holds both the train and the val images
    overlap = _overlap(train + val if held_out else train, {"val": [] if held_out else val, "test": by_split["test"]})
    return Dataset(root, layout, classes, train, val, by_split["test"], val_source, skipped, normalized, overlap,
                   report)


def _unread_files(folder: Path) -> str:
    """'; it holds 3 .heic file(s), not a format edgecnn reads ...' for such files in folder, else ''."""
    kinds = Counter(p.suffix.lower() or p.name for p in folder.rglob("*")
                    if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS
                    and not any(hidden(part) for part in p.relative_to(folder).parts))
    if not kinds:
        return ""
    listed = ", ".join(f"{n} {k}" for k, n in kinds.most_common(3))
    return (f"; it holds {listed} file(s), not a format edgecnn reads ({', '.join(sorted(IMAGE_EXTENSIONS))}): "
            f"convert them, e.g. to JPEG")


def _overlap(train: list[Sample], others: dict[str, list[Sample]]) -> dict[str, int]:
    """For each split, how many of its images have the same bytes as one of `train`."""
    if not any(others.values()):
        return {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        seen = set(pool.map(lambda s: sha256_file(s.path), train))
        counts = {k: sum(d in seen for d in pool.map(lambda s: sha256_file(s.path), v)) for k, v in others.items()}
    return {k: n for k, n in counts.items() if n}


def stratified_split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``fraction`` of each class (at least one image, never all of a class)."""
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[Sample]] = {}
    for s in samples:
        by_label.setdefault(s.label, []).append(s)
    train, val = [], []
    for label, group in sorted(by_label.items()):
        if len(group) < 2:
            raise DataError(f"class {label} has {len(group)} image: need at least 2 to hold out a "
                            f"validation image (or provide a val/ folder)")
        idx = rng.permutation(len(group))
        n_val = min(len(group) - 1, max(1, round(len(group) * fraction)))
        val += [group[i] for i in idx[:n_val]]
        train += [group[i] for i in idx[n_val:]]
    return train, val


# ----------------------------------------------------------------------------- TensorFlow side
def augmenter(aug, seed: int):
    """A Keras preprocessing stack for the recipe's augmentation (on float pixels 0..255)."""
    import keras
    from keras import layers

    if not aug.enabled:
        return None
    stack = []
    mode = {(True, True): "horizontal_and_vertical", (True, False): "horizontal",
            (False, True): "vertical"}.get((aug.horizontal_flip, aug.vertical_flip))
    if mode:
        stack.append(layers.RandomFlip(mode, seed=seed))
    if aug.rotation_degrees:
        stack.append(layers.RandomRotation(aug.rotation_degrees / 360.0, fill_mode="reflect", seed=seed + 1))
    if aug.zoom:
        stack.append(layers.RandomZoom((-aug.zoom, aug.zoom), fill_mode="reflect", seed=seed + 2))
    if aug.translate:
        stack.append(layers.RandomTranslation(aug.translate, aug.translate, fill_mode="reflect", seed=seed + 3))
    if aug.brightness:
        stack.append(layers.RandomBrightness(aug.brightness, value_range=(0, 255), seed=seed + 4))
    if aug.contrast:
        stack.append(layers.RandomContrast(aug.contrast, value_range=(0, 255), seed=seed + 5))
    if aug.saturation:
        stack.append(layers.RandomSaturation((0.5 - aug.saturation / 2, 0.5 + aug.saturation / 2),
                                             value_range=(0, 255), seed=seed + 6))
    if aug.hue:
        stack.append(layers.RandomHue(aug.hue, value_range=(0, 255), seed=seed + 7))
    return keras.Sequential(stack, name="augmentation")


def tf_decode_resize(path, size: tuple[int, int]):
    """Training-time decode + resize: float32 pixels 0..255 (the contract's steps 1-2)."""
    import tensorflow as tf

    raw = tf.io.read_file(path)
    # JPEG with the accurate integer IDCT: the same pixels as Pillow's decoder (TF's default
    # fast IDCT differs by up to 5 levels, a silent train/serve skew).
    img = tf.cond(tf.io.is_jpeg(raw),
                  lambda: tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE"),
                  lambda: tf.io.decode_image(raw, channels=3, expand_animations=False, dtype=tf.uint8))
    img.set_shape((None, None, 3))
    img = tf.image.resize(img, size, method="bilinear", antialias=False)
    img.set_shape((size[0], size[1], 3))
    return img


def tf_normalize(img, contract: C.Contract):
    import tensorflow as tf

    mean = tf.constant(contract.mean, dtype=tf.float32)
    std = tf.constant(contract.std, dtype=tf.float32)
    return (img - mean) / std


def image_dataset(samples: list[Sample], contract: C.Contract, *, batch_size: int,
                  augment=None, shuffle: bool = False, seed: int = 0, normalize: bool = True):
    """tf.data: decode -> resize -> cache -> (shuffle) -> batch -> (augment) -> normalise -> prefetch."""
    import tensorflow as tf

    paths = [str(s.load_path) for s in samples]
    labels = np.array([s.label for s in samples], dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(lambda p, y: (tf_decode_resize(p, contract.input_size), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    if normalize:
        ds = ds.map(lambda x, y: (tf_normalize(x, contract), y), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
