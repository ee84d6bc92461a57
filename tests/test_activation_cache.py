"""Phase 1's out-of-core activation cache on a small real run (4 classes of crop_disease_34, 96 px):
tiny shards train exactly as one shard does, a kept cache is found again, an interrupted caching is
never trusted, and a disk without room is one error line before caching."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn import activations as A
from edgecnn.core.errors import InputError
from edgecnn.cli import main
from tests.conftest import make_subset

TINY_SHARD = 20_000     # bytes: about 3 rows of 6x6x96 float16 a shard


@pytest.fixture(scope="module")
def leaves(tmp_path_factory) -> Path:
    return make_subset(tmp_path_factory.mktemp("leaves"), "crop_disease_34", (0, 9, 17, 29), 30, 10)


def _train(data: Path, out: Path, log: list[str] | None = None, **options):
    from edgecnn import recipe as R
    from edgecnn.train import TrainOptions, train

    lines = [] if log is None else log
    train(R.load("crop_disease"), TrainOptions(data, out, image_size=96, epochs=1, progress=False, **options),
          log=lines.append)
    return lines


def _weights_digest(run: Path) -> str:
    import keras

    h = hashlib.sha256()
    for w in keras.models.load_model(run / "model.keras").get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def _complete_caches(work: Path) -> list[Path]:
    return sorted(p for p in work.iterdir() if A.Manifest.read(p) is not None) if work.is_dir() else []


def test_tiny_shards_train_exactly_as_one_shard_and_a_kept_cache_is_found(leaves, tmp_path):
    tiny_log = _train(leaves, tmp_path / "tiny", cache_shard_bytes=TINY_SHARD)
    assert not A.work_folder(tmp_path / "tiny").exists()          # removed when the run was written
    kept_log = _train(leaves, tmp_path / "kept", keep_cache=True)
    again_log = _train(leaves, tmp_path / "kept", overwrite=True)

    cached = lambda log: next(line for line in log if line.startswith("phase 1: cached"))  # noqa: E731
    rows = 4 * 26 * (1 + 3)               # 26 train photos a class after the 15% hold-out, clean + 3 views
    shards = -(-rows // (TINY_SHARD // (6 * 6 * 96 * 2))) + -(-16 // (TINY_SHARD // (6 * 6 * 96 * 2)))
    assert f"of {rows} train images/views and 16 val images" in cached(tiny_log)
    assert f"{shards} shards" in cached(tiny_log) and "2 shards" in cached(kept_log)
    assert "found (kept by an earlier run)" in cached(again_log)
    assert _weights_digest(tmp_path / "tiny") == _weights_digest(tmp_path / "kept")
    assert not A.work_folder(tmp_path / "kept").exists()          # the re-run did not keep it


def test_an_interrupted_caching_leaves_nothing_a_later_run_trusts(leaves, tmp_path):
    """A real SIGKILL while shards are being written: only a partial folder remains; the next run
    (even one that keeps its cache) caches anew and removes the partial."""
    out = tmp_path / "run"
    work = A.work_folder(out)
    script = textwrap.dedent(f"""
        from pathlib import Path
        from edgecnn import recipe as R
        from edgecnn.train import TrainOptions, train
        train(R.load("crop_disease"), TrainOptions(Path({str(leaves)!r}), Path({str(out)!r}), image_size=96,
              epochs=1, progress=False, keep_cache=True, cache_shard_bytes={TINY_SHARD}))
    """)
    p = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parent.parent,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    deadline = time.monotonic() + 300
    while p.poll() is None and time.monotonic() < deadline and \
            not any(len(list(d.glob("*.npy"))) >= 5 for d in work.glob(f"{A.PARTIAL_PREFIX}*")):
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    partials = list(work.glob(f"{A.PARTIAL_PREFIX}*"))
    assert partials and _complete_caches(work) == [], sorted(q.name for q in work.iterdir())
    assert not out.exists()

    log = _train(leaves, out, keep_cache=True, cache_shard_bytes=TINY_SHARD)
    line = next(line for line in log if line.startswith("phase 1: cached"))
    assert "found" not in line and " in " in line, line
    assert not any(q.exists() for q in partials)
    assert [q.name.rsplit("-", 1)[1] for q in _complete_caches(work)] == ["train", "val"]
    A.remove_work_folder(work)


def test_a_disk_without_room_is_one_error_before_caching(leaves, tmp_path):
    """The free space comes from one injectable function (here: 1 MB free); the room is checked from
    the activation shape before the first photo goes through the backbone."""
    from edgecnn.activations import CacheSpaceError

    log: list[str] = []
    seen: list[Path] = []

    def one_megabyte(folder: Path) -> int:
        seen.append(folder)
        return 1_000_000

    with pytest.raises(CacheSpaceError) as e:
        _train(leaves, tmp_path / "run", log, free_space=one_megabyte)
    needed = int((416 + 16) * (6 * 6 * 96 * 2 + 4) * A.SPACE_MARGIN)
    assert str(e.value).startswith(f"phase 1's activation cache needs {needed / 1e6:.1f} MB in ")
    assert "but that disk has 1.0 MB free" in str(e.value)
    assert seen == [A.work_folder(tmp_path / "run")]
    assert not any(line.startswith("phase 1: cached") for line in log)
    assert sorted(p.name for p in tmp_path.iterdir()) == []       # no run, no work folder left


def test_a_full_small_disk_is_one_error_line(leaves, tmp_path):
    """The same on a real 1 MB tmpfs holding --out (needs the right to mount: root here)."""
    disk = tmp_path / "small"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root): the injectable free-space test covers the check")
    try:
        r = CliRunner().invoke(main, ["train", "--recipe", "crop_disease", "--data", str(leaves), "--out",
                                      str(disk / "run"), "--image-size", "96", "--epochs", "1", "--quiet"])
        errors = [line for line in r.output.splitlines() if line.startswith("Error:")]
        assert r.exit_code == 1 and len(errors) == 1 and "Traceback" not in r.output, r.output
        assert errors[0].startswith("Error: phase 1's activation cache needs") and "phase 1: cached" not in r.output
        assert sorted(p.name for p in disk.iterdir()) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_cached_rows_read_back_exactly_and_a_damaged_cache_is_not_found(tmp_path):
    """Rows written in batches across many shards come back exactly, in any order; a kept cache with a
    shard gone or cut short is not found (the run caches again), and only a marked folder is removed."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3, 2, 4)).astype(np.float16)
    y = rng.integers(0, 5, 50).astype(np.int32)
    req = A.CacheRequest("train", "k" * 32, (3, 2, 4), "float16", 50)
    with A.WorkFolder(tmp_path / "w", keep=True, shard_bytes=7 * 3 * 2 * 4 * 2) as work:
        rows = work.write(req, ((x[i:i + 8], y[i:i + 8]) for i in range(0, 50, 8)))
        order = rng.permutation(50)
        assert rows.manifest.shard_rows == (7,) * 7 + (1,)
        assert np.array_equal(rows.take(order), x[order]) and np.array_equal(rows.labels, y)
    with A.WorkFolder(tmp_path / "w", keep=True) as work:
        assert np.array_equal(work.find(req).take(np.arange(50)), x)
        shard = tmp_path / "w" / req.folder_name / "00003.npy"
        shard.write_bytes(shard.read_bytes()[:-2])
        assert work.find(req) is None
    (tmp_path / "mine").mkdir()
    A.remove_work_folder(tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()
    with pytest.raises(InputError, match="is not an edgecnn work folder"):
        A.WorkFolder(tmp_path / "mine").__enter__()
