"""Image folders for evaluation, and the check that an image can be read (numpy + Pillow only).

Part of the agent: the same scan runs on the host and on a device, so both evaluate the same files.
Hidden files and folders (a leading dot) are never images.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import contract as C
from .errors import InputError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
_TF_NATIVE = {"JPEG": {"RGB", "L"}, "PNG": {"RGB", "RGBA", "L", "LA", "P"}, "BMP": {"RGB"}}


class DataError(InputError):
    pass


@dataclass(frozen=True)
class Sample:
    path: Path        # the user's file
    label: int
    load_path: Path   # what the training pipeline decodes (the file itself, or its normalised copy)


def hidden(name: str) -> bool:
    """Dot-files and dot-folders (.ipynb_checkpoints, .DS_Store) and macOS archive debris (__MACOSX)."""
    return name.startswith(".") or name == "__MACOSX"


def is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not hidden(p.name)


def images_under(folder: Path) -> list[Path]:
    """Every image file below folder, sorted, never descending into hidden folders."""
    out = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not hidden(d)]
        out += [p for f in files if is_image(p := Path(root) / f)]
    return sorted(out)


def subdirs(p: Path) -> list[Path]:
    return sorted(d for d in p.iterdir() if d.is_dir() and not hidden(d.name))


def class_dirs(split_dir: Path) -> dict[str, Path]:
    dirs = {d.name: d for d in subdirs(split_dir)}
    if not dirs:
        raise DataError(f"{split_dir} has no class subfolders")
    return dirs


def check_image(path: Path) -> tuple[str | None, bool]:
    """(error reason or None, needs normalising) after fully decoding the file once."""
    from PIL import Image, UnidentifiedImageError

    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)", False
        with Image.open(path) as im:
            fmt, mode, (w, h) = im.format, im.mode, im.size
            orientation = im.getexif().get(0x0112, 1)
            large = max(w, h) > C.LARGE_IMAGE_SIDE
            if large and fmt == "JPEG":
                im.draft("RGB", (max(1, w // 8), max(1, h // 8)))
            elif w * h > C.MAX_DECODE_PIXELS:
                return f"{w}x{h} is too large to decode safely", False
            im.load()
    except UnidentifiedImageError:
        return "not a recognised image", False
    except Image.DecompressionBombError as e:     # refused by Pillow as it opens, before any reduced decode
        return f"too large to decode safely ({str(e).splitlines()[0][:120]})", False
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... on bad files
        return f"corrupt or truncated ({str(e).splitlines()[0][:120]})", False
    if mode not in C.CONVERTIBLE_MODES | C.SIXTEEN_BIT_MODES:
        return f"pixel mode {mode} has no defined 8-bit RGB meaning", False
    native = mode in _TF_NATIVE.get(fmt, set())
    return None, (not native) or large or orientation not in (1, None)


def unlabeled_paths(root: str | Path) -> list[Path]:
    """The image files under a folder of photos without labels (any layout), not yet decoded."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--unlabeled {root}: no such folder")
    paths = images_under(root)
    if not paths:
        raise DataError(f"--unlabeled {root}: no images in it")
    return paths


def scan_unlabeled(root: str | Path) -> tuple[list[Path], list[dict]]:
    """Every readable image under a folder of photos without labels (any layout), and those skipped."""
    paths = unlabeled_paths(root)
    with ThreadPoolExecutor(max_workers=4) as pool:
        errors = list(pool.map(lambda p: check_image(p)[0], paths))
    good = [p for p, err in zip(paths, errors) if err is None]
    if not good:
        raise DataError(f"--unlabeled {root}: none of its {len(paths)} images could be read")
    return good, [{"path": str(p), "reason": err} for p, err in zip(paths, errors) if err]


def scan_eval_folder(root: str | Path, labels: list[str] | tuple[str, ...]) -> tuple[list[Sample], list[dict]]:
    """A folder of class subfolders (or a root whose test/ holds them) for evaluation.

    Folders are matched to the model's labels by name; an unknown folder is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"evaluation folder not found: {root}")
    if (root / "test").is_dir() and not (set(d.name for d in subdirs(root)) & set(labels)):
        root = root / "test"
    dirs = class_dirs(root)
    unknown = sorted(set(dirs) - set(labels))
    if unknown:
        raise DataError(f"{root}: folder(s) {', '.join(unknown)} match no label of the model "
                        f"(labels: {', '.join(labels[:6])}{'...' if len(labels) > 6 else ''})")
    samples, skipped = [], []
    paths = [(labels.index(name), p) for name, d in dirs.items() for p in images_under(d)]
    if not paths:
        raise DataError(f"{root}: no images in its class folders")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda lp: check_image(lp[1]), paths))
    for (label, p), (err, _) in zip(paths, results):
        if err:
            skipped.append({"path": str(p), "reason": err})
        else:
            samples.append(Sample(p, label, p))
    if not samples:
        raise DataError(f"{root}: none of its {len(paths)} images could be read")
    return samples, skipped
