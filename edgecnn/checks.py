"""Remembered image checks: a re-run decodes only the photos that are new or changed.

Checking a photo means decoding it whole (:func:`edgecnn.core.images.check_image`), which for a
catalogue of 200,000 photos takes longer than the training it guards. The verdict of each check is
kept in a SQLite file in the user's cache, keyed by the file's resolved path and identified by its
size, modification time and status-change time (a rewritten file changes at least one of them, and
the status-change time cannot be set back by copying tools). A verdict is reused only when all three
match and the check itself has not changed since (CHECK_VERSION). A cache that cannot be opened or
written is never an error: every photo is then checked anew, as before.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .core.images import check_image

CHECKS_FILE = "image-checks.sqlite3"   # in the user's cache folder (edgecnn.paths.user_cache)
CHECK_VERSION = 1                      # raise it whenever check_image's verdicts change
CHECK_THREADS = 4


@dataclass(frozen=True)
class Check:
    """One photo's verdict: why it cannot be used (None: it can), and whether training must decode a
    normalised copy of it instead (CMYK, 16-bit, EXIF-rotated, large...)."""

    error: str | None
    needs_normalising: bool


@dataclass(frozen=True)
class CheckReport:
    checks: list[Check]        # one per path, in the order given
    checked_anew: int          # decoded this time
    remembered: int            # taken from the cache, unchanged since their check
    note: str | None = None    # why the cache could not be used, when it could not

    def summary(self) -> str:
        line = f"checked {self.checked_anew} photos anew, {self.remembered} unchanged since their last check"
        return f"{line} ({self.note})" if self.note else line


@dataclass(frozen=True)
class _Identity:
    key: str
    size: int
    mtime_ns: int
    ctime_ns: int


def _identity(path: Path) -> _Identity | None:
    try:
        st = path.stat()
        return _Identity(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except OSError:
        return None   # checked anew: check_image says what is wrong with it


class _Store:
    """The SQLite table of verdicts: one row per resolved path."""

    def __init__(self, file: Path):
        file.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(file, timeout=30)   # several workers of one machine may share it
        self.db.execute("CREATE TABLE IF NOT EXISTS checks (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                        " ctime_ns INTEGER, version INTEGER, error TEXT, normalise INTEGER)")

    def known(self, ids: list[_Identity | None]) -> dict[str, Check]:
        out: dict[str, Check] = {}
        wanted = {i.key: i for i in ids if i is not None}
        keys = list(wanted)
        for start in range(0, len(keys), 500):      # SQLite's limit on bound parameters
            part = keys[start:start + 500]
            rows = self.db.execute(f"SELECT path, size, mtime_ns, ctime_ns, version, error, normalise FROM checks "
                                   f"WHERE path IN ({','.join('?' * len(part))})", part)
            for path, size, mtime, ctime, version, error, normalise in rows:
                i = wanted[path]
                if (size, mtime, ctime, version) == (i.size, i.mtime_ns, i.ctime_ns, CHECK_VERSION):
                    out[path] = Check(error, bool(normalise))
        return out

    def remember(self, pairs: Iterable[tuple[_Identity, Check]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO checks VALUES (?, ?, ?, ?, ?, ?, ?)",
                                [(i.key, i.size, i.mtime_ns, i.ctime_ns, CHECK_VERSION, c.error,
                                  int(c.needs_normalising)) for i, c in pairs])

    def close(self) -> None:
        self.db.close()


def _open_store(file: Path | None) -> tuple[_Store | None, str | None]:
    if file is None:
        return None, None
    try:
        return _Store(file), None
    except (OSError, sqlite3.Error) as e:
        return None, f"the check cache {file} could not be opened: {e}"


def check_all(paths: list[Path], store_file: Path | None,
              progress: Callable[[Iterable, int], Iterable] = lambda it, n: it) -> CheckReport:
    """Every photo's Check: remembered where the file is unchanged, else decoded now (and remembered).
    `progress(iterable, total)` wraps the decoding of the photos checked anew (a progress bar)."""
    store, note = _open_store(store_file)
    ids = [_identity(p) for p in paths]
    try:
        known = store.known(ids) if store else {}
    except sqlite3.Error as e:
        known, note = {}, f"the check cache {store_file} could not be read: {e}"
    todo = [k for k, i in enumerate(ids) if i is None or i.key not in known]
    with ThreadPoolExecutor(max_workers=CHECK_THREADS) as pool:
        fresh = list(progress(pool.map(lambda k: Check(*check_image(paths[k])), todo), len(todo)))
    if store:
        try:
            store.remember((ids[k], c) for k, c in zip(todo, fresh) if ids[k] is not None)
        except sqlite3.Error as e:
            note = f"the check cache {store_file} could not be written: {e}"
        finally:
            store.close()
    by_index = dict(zip(todo, fresh))
    checks = [by_index[k] if k in by_index else known[ids[k].key] for k in range(len(paths))]
    return CheckReport(checks, len(todo), len(paths) - len(todo), note)


def default_store() -> Path:
    from .paths import user_cache
    return user_cache() / CHECKS_FILE


