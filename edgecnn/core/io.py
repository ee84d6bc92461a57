"""Atomic file writes: a temp file in the same folder, fsync, then rename. Readers never see half
a model, and an interrupted write leaves the previous file in place."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it vanishes."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # keep the real suffix last: some writers (Keras: ".keras") insist on it
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{dest.name}", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _mode_for(dest))
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def staged(dest: str | Path) -> Iterator[Path]:
    """A staging folder beside dest (the user's permissions); on success it replaces dest whole (two
    renames, the first undone if the second fails), else it vanishes and dest stays as it was."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    user_mode_dir(stage)
    try:
        yield stage
        if not dest.exists():
            os.replace(stage, dest)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
        try:
            os.replace(stage, dest)
        except OSError:
            os.replace(old / dest.name, dest)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def check_writable(path: str | Path) -> None:
    """Refuse, before a long run, an output path whose folder is missing or not writable."""
    from .errors import InputError
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if dest.is_dir():
        raise InputError(f"{dest} is a folder, not a file to write")
    if not folder.is_dir():
        raise InputError(f"cannot write {dest}: no folder {folder}")
    _probe_writable(folder, dest)


def check_can_create_folder(path: str | Path) -> None:
    """Refuse, before a long run, a folder that could not be written where staged() writes it: the
    nearest existing folder above it must take a new folder."""
    dest = Path(path).absolute()
    folder = dest.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    from .errors import InputError
    if not folder.is_dir():
        raise InputError(f"cannot write {path}: {folder} is not a folder")
    _probe_writable(folder, path)


def _probe_writable(folder: Path, dest: str | Path) -> None:
    from .errors import InputError
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {dest}: the folder {folder} is not writable")
    try:   # /proc, /sys and read-only mounts pass the access check: try a temporary file there
        fd, tmp = tempfile.mkstemp(prefix=".tmp-check-", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise InputError(f"cannot write {dest}: {e.strerror} (in {folder})") from None


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def user_mode_dir(path: str | Path) -> None:
    """mkdtemp makes 0700 folders: give one the user's normal permissions (0777 less the umask)."""
    os.chmod(path, 0o777 & ~_umask())


def _mode_for(dest: Path) -> int:
    """The permissions a plain write would give: the replaced file's, else 0666 less the umask
    (mkstemp's 0600 must not leak into results the user shares)."""
    try:
        return dest.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path):
    """The JSON value in a file; a file that cannot be read or parsed is one InputError naming it."""
    from .errors import InputError
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot be read as JSON ({str(e).splitlines()[0][:120]})") from None


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json_text(obj))


def json_text(obj) -> str:
    """Indented JSON of plain data, numpy scalars and arrays and paths included, with a final newline."""
    return json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_file(path: str | Path) -> str:
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
