"""Calibration sets: a recorded, class-stratified sample of training images.

A list file (``calibration/<recipe>.txt``) names each image relative to the data root with its
SHA-256, so the same INT8 model can be rebuilt later and a changed image is noticed. It is reused
when it matches the run's data; ``--calibration`` accepts such a list or a folder of images.
Images are preprocessed by the contract, exactly like inference.
"""

from __future__ import annotations


from pathlib import Path

import numpy as np

from ..core import contract as C
from ..core.images import Sample, images_under
from ..core.errors import InputError
from ..core.io import atomic_write_text, sha256_file

HEADER = "# edgecnn calibration set"



def stratified_sample(samples: list[Sample], n: int, seed: int) -> list[Sample]:
    """Up to n images, spread evenly over classes (round-robin over shuffled classes)."""
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[Sample]] = {}
    for s in samples:
        by_label.setdefault(s.label, []).append(s)
    queues = {k: [v[i] for i in rng.permutation(len(v))] for k, v in sorted(by_label.items())}
    out: list[Sample] = []
    while len(out) < n and any(queues.values()):
        for k in sorted(queues):
            if queues[k] and len(out) < n:
                out.append(queues[k].pop())
    return sorted(out, key=lambda s: (s.label, str(s.path)))


def write_list(path: Path, root: Path, samples: list[Sample], recipe: str, seed: int) -> None:
    lines = [f"{HEADER}: recipe={recipe} n={len(samples)} seed={seed}",
             "# class-stratified sample of the training split; paths relative to the data root",
             "# path\tsha256"]
    for s in samples:
        name = s.path.relative_to(root).as_posix()
        if C.has_control_char(name):      # the list could not be read back: never write one so
            raise InputError(f"{s.path}: a calibration image whose name holds a tab or newline cannot be "
                             f"recorded in {path.name}; rename it")
        lines.append(f"{name}\t{sha256_file(s.path)}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_list(path: Path, root: Path) -> list[Path]:
    """Paths of a list file, checked against their recorded checksums."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise InputError(f"{path}:{i}: expected 'path<TAB>sha256'")
        p = root / parts[0]
        if not p.is_file():
            raise InputError(f"{path}:{i}: {parts[0]} is not under the data root {root}")
        if sha256_file(p) != parts[1]:
            raise InputError(f"{path}:{i}: {parts[0]} changed since the calibration set was recorded "
                             f"(checksum differs); delete {path.name} to record a new one")
        out.append(p)
    if not out:
        raise InputError(f"{path}: lists no images")
    return out


def list_matches(path: Path, root: Path) -> bool:
    """True when every listed image exists under root (checksums are verified on read)."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                if not (root / line.split("\t")[0]).is_file():
                    return False
        return True
    except OSError:
        return False


def resolve(option: Path | None, *, default_list: Path, data_root: Path | None,
            train_samples: list[Sample] | None, size: int, recipe: str, seed: int,
            run_list: Path, log=print) -> tuple[list[Path], str, Path | None]:
    """Calibration image paths, where they came from, and the list file recording them (if any).

    A recorded list is reused when it matches the data: `default_list` (the package's list for a
    built-in recipe), else the run's own `run_list`; a new sample is recorded in `run_list`, never
    in the package."""
    if option is not None:
        option = Path(option)
        if option.is_dir():
            paths = images_under(option)
            if not paths:
                raise InputError(f"calibration folder {option} holds no images")
            return paths[:size], f"folder {option} ({min(size, len(paths))} images)", None
        if option.is_file():
            if data_root is None:
                raise InputError("a calibration list needs the run's data root (metrics.json)")
            return read_list(option, data_root)[:size], f"list {option}", option
        raise InputError(f"--calibration {option}: no such file or folder")
    for recorded in (default_list, run_list):    # the built-in recipe's list, then the run's own
        if recorded.is_file() and data_root is not None and list_matches(recorded, data_root):
            paths = read_list(recorded, data_root)
            if len(paths) >= min(size, len(train_samples or paths)):
                return paths[:size], f"recorded list {recorded} (reused)", recorded
    if not train_samples:
        raise InputError("no calibration data: the run's training images are not reachable; "
                         "pass --calibration FILE|DIR")
    chosen = stratified_sample(train_samples, size, seed)
    if default_list.is_file():
        log(f"calibration: the recorded list {default_list.name} is for other data; sampling anew")
    write_list(run_list, data_root, chosen, recipe, seed)
    log(f"calibration: recorded {len(chosen)} class-stratified training images in {run_list}")
    return [s.path for s in chosen], f"new list {run_list}", run_list


def load_batch(paths: list[Path], contract: C.Contract) -> np.ndarray:
    """Float32 inputs (N, H, W, 3) by the contract; unreadable images are an error here."""
    return C.preprocess_batch(paths, contract)
