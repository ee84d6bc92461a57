"""Phase 1's activation cache, out of core: sharded .npy files in a work folder beside the run.

The frozen layers' outputs (clean + augmented views of every training photo, and the validation
photos) are written once as shards of at most `shard_bytes` each, then read every epoch a batch
at a time (positional reads, so the process's memory stays flat however many photos there are;
the operating system's page cache keeps what fits). Only the labels (4 bytes a row) stay in memory.

    runs/.NAME.activations/   .edgecnn-cache        the mark that this folder is edgecnn's own
                              KEY-train/  manifest.json  labels.npy  00000.npy  00001.npy ...
                              KEY-val/    ...
                              .partial-*/            a cache being written (never read)

- A cache is trusted only when complete: it is written under a `.partial-` name and renamed to its
  key when its last shard and its manifest (which repeats the key) are on disk; an interrupted
  caching leaves at most a partial folder, which the next run removes.
- The key is a hash of everything the activations depend on: the data (each photo's path, label,
  size and modification time, in order), the resolved recipe, the seed, the backbone weights, the
  cache point and the library versions. A re-run with `keep` finds its cache by that key.
- Before the first row is written, the bytes needed (known exactly from the activation shape) are
  compared with the disk's free space: a cache that cannot fit is one error line, not a failure an
  hour later.
- The work folder is removed when the run is written, unless kept; only a folder carrying the mark
  is ever removed (nothing the user wrote).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .core.errors import EdgecnnError, InputError
from .core.io import atomic_write_text

SCHEMA = "edgecnn.activations/1"
MARK_FILE = ".edgecnn-cache"
MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.npy"
PARTIAL_PREFIX = ".partial-"
DEFAULT_SHARD_BYTES = 128 << 20   # what caching holds in memory at most; 16 GB of rows: 125 files
SPACE_MARGIN = 1.05    # ask for 5% more than the rows need (headers, labels, the file system's own)


class CacheSpaceError(EdgecnnError):
    """The disk cannot hold the activation cache: said before caching starts, exit 1."""


def disk_free(folder: Path) -> int:
    """Bytes free for this user on the disk holding folder (the default free-space source)."""
    return shutil.disk_usage(folder).free


def work_folder(out_dir: Path, worker: int | None = None) -> Path:
    """The work folder of the run written to out_dir: beside it, hidden; one per worker when several
    train (their --out may be one folder on a shared disk)."""
    out = Path(out_dir).absolute()
    return out.parent / (f".{out.name}.activations" if worker is None else f".{out.name}.worker{worker}.activations")


def cache_key(parts: dict) -> str:
    """The hash of everything a cache's rows depend on (any JSON-able description)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Manifest:
    """A complete cache: its key, the shape and dtype of a row, and the rows of each shard in order."""

    key: str
    row_shape: tuple[int, ...]
    dtype: str
    shard_rows: tuple[int, ...]
    schema: str = SCHEMA

    @property
    def rows(self) -> int:
        return sum(self.shard_rows)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, folder: Path) -> "Manifest | None":
        try:
            d = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
            m = cls(d["key"], tuple(d["row_shape"]), d["dtype"], tuple(d["shard_rows"]), d["schema"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return m if m.schema == SCHEMA else None


def row_bytes(row_shape: tuple[int, ...], dtype) -> int:
    return int(np.prod(row_shape)) * np.dtype(dtype).itemsize


# ------------------------------------------------------------------------------------ reading
class CachedRows:
    """A complete cache opened for reading: `take(indices)` reads those rows (any order) from the
    shards with positional reads; `labels` is in memory."""

    def __init__(self, folder: Path, manifest: Manifest):
        self.folder, self.manifest = folder, manifest
        self.labels = np.load(folder / LABELS_FILE)
        self.dtype = np.dtype(manifest.dtype)
        self._row = row_bytes(manifest.row_shape, self.dtype)
        self._starts = np.cumsum((0,) + manifest.shard_rows)
        self._files, self._offsets = [], []
        for k in range(len(manifest.shard_rows)):
            path = folder / _shard_name(k)
            with open(path, "rb") as f:
                np.lib.format.read_magic(f)
                np.lib.format.read_array_header_1_0(f)
                self._offsets.append(f.tell())
            if path.stat().st_size != self._offsets[-1] + manifest.shard_rows[k] * self._row:
                raise OSError(f"{path} does not hold the rows its manifest lists")
            self._files.append(os.open(path, os.O_RDONLY))

    def __len__(self) -> int:
        return self.manifest.rows

    def take(self, indices) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        out = np.empty((len(indices), *self.manifest.row_shape), self.dtype)
        shards = np.searchsorted(self._starts, indices, side="right") - 1
        flat = out.reshape(len(indices), -1).view(np.uint8)
        for k, (i, s) in enumerate(zip(indices, shards)):
            at = self._offsets[s] + (int(i) - int(self._starts[s])) * self._row
            if os.preadv(self._files[s], [flat[k]], at) != self._row:
                raise EdgecnnError(f"the activation cache {self.folder} is shorter than its manifest says: "
                                   f"was it changed while training? train again")
        return out

    def close(self) -> None:
        for fd in self._files:
            os.close(fd)
        self._files = []


# ------------------------------------------------------------------------------------ writing
class _ShardWriter:
    """Rows appended in batches, flushed as one .npy shard whenever `rows_per_shard` are held."""

    def __init__(self, folder: Path, row_shape: tuple[int, ...], dtype, rows_per_shard: int):
        self.folder, self.row_shape, self.dtype = folder, row_shape, np.dtype(dtype)
        self.rows_per_shard = rows_per_shard
        self._held: list[np.ndarray] = []
        self._held_rows = 0
        self.shard_rows: list[int] = []
        self.labels: list[np.ndarray] = []

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        x = np.asarray(x, self.dtype)
        self.labels.append(np.asarray(y, np.int32))
        while len(x):
            take = self.rows_per_shard - self._held_rows
            self._held.append(x[:take])
            self._held_rows += len(x[:take])
            x = x[take:]
            if self._held_rows == self.rows_per_shard:
                self._flush()

    def _flush(self) -> None:
        """The held rows as one .npy file, written piece by piece (no second copy of the shard)."""
        if self._held_rows:
            with open(self.folder / _shard_name(len(self.shard_rows)), "wb") as f:
                np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                         "fortran_order": False,
                                                         "shape": (self._held_rows, *self.row_shape)})
                for part in self._held:
                    np.ascontiguousarray(part).tofile(f)
            self.shard_rows.append(self._held_rows)
            self._held, self._held_rows = [], 0

    def finish(self) -> np.ndarray:
        self._flush()
        return np.concatenate(self.labels) if self.labels else np.zeros((0,), np.int32)


def _shard_name(k: int) -> str:
    return f"{k:05d}.npy"


@dataclass(frozen=True)
class CacheRequest:
    """One cache to find or write: its name in the work folder, key, row shape and dtype, and the rows
    that will be written (to check the disk's room before the first)."""

    name: str                      # "train" or "val"
    key: str
    row_shape: tuple[int, ...]
    dtype: str
    rows: int

    @property
    def bytes(self) -> int:
        return self.rows * row_bytes(self.row_shape, self.dtype) + self.rows * 4

    @property
    def folder_name(self) -> str:
        return f"{self.key}-{self.name}"


class WorkFolder:
    """The run's work folder: complete caches found by key, new ones written whole, the folder
    removed at the end unless kept. Use as a context manager."""

    def __init__(self, folder: Path, *, keep: bool = False, shard_bytes: int = DEFAULT_SHARD_BYTES,
                 free_space: Callable[[Path], int] = disk_free):
        self.folder, self.keep, self.shard_bytes, self.free_space = Path(folder), keep, shard_bytes, free_space
        self._open: list[CachedRows] = []

    def __enter__(self) -> "WorkFolder":
        self._claim()
        return self

    def __exit__(self, *exc) -> bool:
        for rows in self._open:
            rows.close()
        if self.keep and exc[0] is None:
            self._remove_partials()
        else:
            remove_work_folder(self.folder)
        return False

    def _claim(self) -> None:
        """Create the folder with its mark, or take over one that carries the mark (a previous run's)."""
        if self.folder.exists() and not (self.folder / MARK_FILE).is_file():
            raise InputError(f"{self.folder} exists and is not an edgecnn work folder (no {MARK_FILE}): edgecnn "
                             f"keeps phase 1's activation cache there; move that folder away")
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / MARK_FILE).is_file():
            atomic_write_text(self.folder / MARK_FILE, json.dumps({"schema": SCHEMA, "what": "activation cache"}) + "\n")
        self._remove_partials()

    def _remove_partials(self) -> None:
        for p in self.folder.glob(f"{PARTIAL_PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Remove complete caches of other keys (other data, recipe or seed): they would only take room."""
        keep = set(keys)
        for p in self.folder.iterdir():
            if p.is_dir() and not p.name.startswith(".") and p.name.rsplit("-", 1)[0] not in keep:
                shutil.rmtree(p, ignore_errors=True)

    def find(self, req: CacheRequest) -> CachedRows | None:
        """The complete cache for this request, or None."""
        folder = self.folder / req.folder_name
        m = Manifest.read(folder)
        if m is None or (m.key, m.row_shape, m.dtype) != (req.key, req.row_shape, req.dtype) or m.rows != req.rows:
            return None
        try:
            return self._opened(CachedRows(folder, m))
        except (OSError, ValueError):    # a shard or the labels missing or cut short since: caching again
            return None

    def check_room(self, requests: list[CacheRequest]) -> None:
        """One error before any caching when the disk cannot hold the caches still to write."""
        needed = int(sum(r.bytes for r in requests) * SPACE_MARGIN)
        free = self.free_space(self.folder)
        if needed > free:
            raise CacheSpaceError(
                f"phase 1's activation cache needs {_size(needed)} in {self.folder} ({sum(r.rows for r in requests):,} "
                f"rows of {_size(row_bytes(requests[0].row_shape, requests[0].dtype))}) but that disk has "
                f"{_size(free)} free: free space there, or write the run (--out) on a disk with room")

    def write(self, req: CacheRequest, batches: Iterator[tuple[np.ndarray, np.ndarray]]) -> CachedRows:
        """Write the cache from (rows, labels) batches under a partial name, rename it complete."""
        per_shard = max(1, self.shard_bytes // row_bytes(req.row_shape, req.dtype))
        stage = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=self.folder))
        try:
            writer = _ShardWriter(stage, req.row_shape, req.dtype, per_shard)
            for x, y in batches:
                writer.add(x, y)
            np.save(stage / LABELS_FILE, writer.finish())
            manifest = Manifest(req.key, req.row_shape, req.dtype, tuple(writer.shard_rows))
            if manifest.rows != req.rows:
                raise EdgecnnError(f"phase 1 cached {manifest.rows} rows where {req.rows} were expected")
            atomic_write_text(stage / MANIFEST_FILE, manifest.to_json())
            final = self.folder / req.folder_name
            shutil.rmtree(final, ignore_errors=True)
            os.replace(stage, final)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return self._opened(CachedRows(final, manifest))

    def _opened(self, rows: CachedRows) -> CachedRows:
        self._open.append(rows)
        return rows


def remove_work_folder(folder: Path) -> None:
    """Remove a work folder, only when it carries edgecnn's mark."""
    if (Path(folder) / MARK_FILE).is_file():
        shutil.rmtree(folder, ignore_errors=True)


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
