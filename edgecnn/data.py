"""ImageFolder scanning and checks (no TensorFlow), and the tf.data training pipeline.

Layouts accepted for ``--data DIR``:
  DIR/train/<class>/*  (+ optional DIR/val/<class>/*, DIR/test/<class>/*)
  DIR/<class>/*        (a single folder of classes: all of it is training data)
Without ``val/`` a stratified validation split is held out of train.

Every image is opened and fully decoded once while scanning: corrupt, truncated, zero-byte or
unreadable files are skipped and listed (path and reason), never a crash. With a check cache
(:mod:`edgecnn.checks`) a photo unchanged since an earlier check is not decoded again. Images TensorFlow's
decoders would read differently from :func:`edgecnn.core.contract.load_image` (CMYK, 16-bit, EXIF
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

from .core import contract as C
from .core.io import sha256_file
from .checks import CheckReport, check_all
from .core.images import (IMAGE_EXTENSIONS, DataError, Sample, class_dirs, hidden, images_under,
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
    classes = _classes(per_split_classes, split_dirs)
    files = [(split, ci, p) for split, dirs in per_split_classes.items()
             for ci, name in enumerate(classes) for p in images_under(dirs[name])]

    from tqdm.auto import tqdm
    report = check_all([f[2] for f in files], checks, lambda it, n: tqdm(
        it, total=n, desc="checking images", unit="img", disable=not progress, leave=False))
    by_split, skipped, normalized = _readable(files, report, root, Path(cache_dir) if cache_dir else None)
    for split in split_dirs:
        _refuse_empty_classes(by_split[split], classes, split_dirs[split] if layout == "splits" else root,
                              per_split_classes[split])

    val_source = "val/"
    train, val = by_split["train"], by_split["val"]
    if "val" not in split_dirs:
        train, val = stratified_split(train, val_fraction, seed)
        val_source = f"held out of train ({val_fraction:.0%}, stratified)"
    held_out = "val" not in split_dirs      # then train/ holds both the train and the val images
    overlap = _overlap(train + val if held_out else train, {"val": [] if held_out else val, "test": by_split["test"]})
    return Dataset(root, layout, classes, train, val, by_split["test"], val_source, skipped, normalized, overlap,
                   report)


def _classes(per_split_classes: dict[str, dict[str, Path]], split_dirs: dict[str, Path]) -> list[str]:
    """The class names: train/'s folders, each a usable label, the same in every split, at least two."""
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
    return classes


def _readable(files: list[tuple[str, int, Path]], report, root: Path, cache: Path | None):
    """({split: samples}, skipped, normalised): each file by its check, a photo that needs normalising
    read through a normalised copy in the cache folder."""
    skipped, normalized = [], []
    by_split: dict[str, list[Sample]] = {s: [] for s in SPLITS}
    for (split, ci, p), c in zip(files, report.checks):
        err = c.error
        if not err and C.has_control_char(p.relative_to(root).as_posix()):
            err = "its name contains a control character (a tab or newline): rename the file to use it"
        if err:
            skipped.append({"path": str(p), "reason": err})
            continue
        load_path = p
        if c.needs_normalising:
            if cache is None:
                raise DataError(f"{p} needs normalising but no cache folder was given")
            cache.mkdir(parents=True, exist_ok=True)
            load_path = _normalized_copy(p, cache)
            normalized.append(str(p))
        by_split[split].append(Sample(p, ci, load_path))
    return by_split, skipped, normalized


def _refuse_empty_classes(samples: list[Sample], classes: list[str], where: Path, dirs: dict[str, Path]) -> None:
    counts = Counter(s.label for s in samples)
    empty = [classes[i] for i in range(len(classes)) if counts.get(i, 0) == 0]
    if empty:
        raise DataError(f"empty class(es) in {where}: {', '.join(empty)} (no readable images"
                        f"{_unread_files(dirs[empty[0]])})")


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
def augmenter(aug, seed: int) -> "Augmenter | None":
    """The recipe's augmentation (on float pixels 0..255), or None when it is off."""
    return Augmenter(aug, seed) if aug.enabled else None


# luma weights (ITU-R BT.601) and the RGB <-> YIQ matrices: saturation scales chroma around luma,
# hue rotates the I-Q plane; both are 3x3 colour matrices, so they compose with contrast.
_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.595716, -0.274453, -0.321263), (0.211456, -0.522591, 0.311135))


class Augmenter:
    """Random augmentation of a batch as two fused steps per image, instead of a chain of Keras
    random layers that each resample or rescan the batch:

    - geometry: one affine matrix per image (flips, rotation, zoom, translation composed about the
      image centre) and ONE bilinear resampling with reflected borders
      (tf.raw_ops.ImageProjectiveTransformV3, the op Keras' own random layers run once each);
    - colour: one 3x3 matrix and offset per image (saturation and hue as linear colour matrices,
      contrast about the image's mean, brightness as an offset), applied in one product, then
      clipped to 0..255.

    The ranges are the recipe's, as the Keras layers read them: rotation +-rotation_degrees, zoom
    factor 1 +- zoom (isotropic), translation +-translate of each side, brightness +-brightness of
    255, contrast 1 +- contrast, saturation 1 +- saturation, hue +-hue/2 of a turn. Seeded: the same
    seed gives the same sequence of batches. Call it like a Keras layer: aug(x, training=True)."""

    def __init__(self, aug, seed: int):
        import keras

        self.aug = aug
        self.seed = keras.random.SeedGenerator(seed)

    def __call__(self, x, training: bool = True):
        if not training:
            return x
        import tensorflow as tf

        x = tf.convert_to_tensor(x, tf.float32)
        n, a = tf.shape(x)[0], self.aug
        u = lambda bound: self._uniform(n, bound)  # noqa: E731
        flip = lambda on: (tf.where(self._uniform(n, 1.0) < 0, -1.0, 1.0) if on else tf.ones((n,)))  # noqa: E731
        if a.horizontal_flip or a.vertical_flip or a.rotation_degrees or a.zoom or a.translate:
            x = affine_warp(x, flip(a.horizontal_flip), flip(a.vertical_flip), u(a.rotation_degrees) * (np.pi / 180),
                            1.0 + u(a.zoom), u(a.translate), u(a.translate))
        if a.brightness or a.contrast or a.saturation or a.hue:
            x = colour_jitter(x, u(a.brightness) * 255.0, 1.0 + u(a.contrast), 1.0 + u(a.saturation),
                              u(a.hue / 2) * (2 * np.pi))
        return x

    def _uniform(self, n, bound: float):
        import keras
        import tensorflow as tf

        if not bound:
            return tf.zeros((n,))
        return keras.random.uniform((n,), -bound, bound, seed=self.seed)


def affine_matrices(flip_x, flip_y, angle, scale, shift_x, shift_y, height: int, width: int):
    """Per image, the 8 numbers of ImageProjectiveTransformV3 mapping an output pixel to the input
    pixel it samples: p_in = c + scale * R(angle) * diag(flip_x, flip_y) * (p_out - c) + shift * side,
    c the image centre (flip: -1 mirrors the axis; shift: a fraction of the side)."""
    import tensorflow as tf

    cos, sin = tf.cos(angle) * scale, tf.sin(angle) * scale
    a00, a01, a10, a11 = cos * flip_x, -sin * flip_y, sin * flip_x, cos * flip_y
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    a2 = cx + shift_x * width - a00 * cx - a01 * cy
    b2 = cy + shift_y * height - a10 * cx - a11 * cy
    zero = tf.zeros_like(a00)
    return tf.stack([a00, a01, a2, a10, a11, b2, zero, zero], axis=1)


def affine_warp(x, flip_x, flip_y, angle, scale, shift_x, shift_y):
    """One bilinear resampling of the batch x (N, H, W, C) by each image's composed affine matrix,
    borders reflected."""
    import tensorflow as tf

    h, w = int(x.shape[1]), int(x.shape[2])
    m = affine_matrices(flip_x, flip_y, angle, scale, shift_x, shift_y, h, w)
    return tf.raw_ops.ImageProjectiveTransformV3(images=x, transforms=m, output_shape=[h, w], fill_value=0.0,
                                                 interpolation="BILINEAR", fill_mode="REFLECT")


def colour_matrices(saturation, hue):
    """(N, 3, 3) colour matrices acting on RGB column vectors: chroma scaled around luma by
    `saturation`, then the hue rotated by `hue` radians in the YIQ chroma plane."""
    import tensorflow as tf

    luma = tf.constant([_LUMA] * 3, tf.float32)                    # every row the luma weights
    sat = saturation[:, None, None] * tf.eye(3) + (1.0 - saturation)[:, None, None] * luma
    to_yiq = tf.constant(_RGB_TO_YIQ, tf.float32)
    cos, sin, one, zero = tf.cos(hue), tf.sin(hue), tf.ones_like(hue), tf.zeros_like(hue)
    rot = tf.reshape(tf.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], axis=1), (-1, 3, 3))
    return tf.linalg.inv(to_yiq) @ rot @ to_yiq @ sat


def colour_jitter(x, brightness, contrast, saturation, hue):
    """Saturation, hue, contrast (about each image's mean colour) and brightness (an offset in pixel
    units) as one per-image affine colour map, then clipped to 0..255."""
    import tensorflow as tf

    c = colour_matrices(saturation, hue)                                    # (N, 3, 3)
    mean = tf.reduce_mean(x, axis=(1, 2))                                   # (N, 3)
    # contrast * (C x - C mean) + C mean + brightness, as one matrix and one offset
    offset = (1.0 - contrast)[:, None] * tf.einsum("nij,nj->ni", c, mean) + brightness[:, None]
    return tf.clip_by_value(tf.einsum("nhwj,nij->nhwi", x, contrast[:, None, None] * c) + offset[:, None, None, :],
                            0.0, 255.0)


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
                  augment=None, shuffle: bool = False, seed: int = 0, normalize: bool = True,
                  keep_decoded: bool = True):
    """tf.data: decode -> resize -> (cache) -> (shuffle) -> batch -> (augment) -> normalise -> prefetch.
    keep_decoded: the decoded photos stay in memory after the first pass (tf.data's cache: later
    epochs skip decoding, at 4 bytes a pixel for every photo); a pass that must keep memory flat
    (phase 1's caching) decodes each time instead."""
    import tensorflow as tf

    paths = [str(s.load_path) for s in samples]
    labels = np.array([s.label for s in samples], dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(lambda p, y: (tf_decode_resize(p, contract.input_size), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if keep_decoded:
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
