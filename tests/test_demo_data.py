"""The demo's embedded subset: small enough to ship, every file sourced, and held-out photos that let a
model which changes no prediction PASS a 1 pp budget honestly."""

from __future__ import annotations

import csv
import hashlib

from edgecnn import verdict as V
from edgecnn.core.images import images_under
from edgecnn.data import UNLABELED, scan
from edgecnn.paths import DEMO_DATA
from edgecnn.results import UnlabeledChanges

CAP_BYTES = 6_000_000


def test_the_subset_fits_its_cap_and_every_file_is_sourced():
    files = [p for p in DEMO_DATA.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= CAP_BYTES
    with (DEMO_DATA / "SOURCE.csv").open(encoding="utf-8") as f:
        listed = {row["file"] for row in csv.DictReader(f)}
    photos = {p.relative_to(DEMO_DATA).as_posix() for p in images_under(DEMO_DATA)}
    assert photos == listed and len(photos) == 700


def test_unlabeled_photos_are_new_to_the_model_and_decide_a_one_point_budget():
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    held_out = images_under(DEMO_DATA / UNLABELED)
    labelled = images_under(DEMO_DATA / "train") + images_under(DEMO_DATA / "test")
    assert not {digest(p) for p in held_out} & {digest(p) for p in labelled}
    splits = scan(DEMO_DATA, progress=False)             # the folder beside the splits is never trained on
    assert not any(UNLABELED in s.path.parts for s in splits.train + splits.val + splits.test)
    n_test = len(images_under(DEMO_DATA / "test"))
    none_of_the_held_out = UnlabeledChanges(n=len(held_out), changed=0, flips=[])
    nothing_changed = V.paired([0] * n_test, [0] * n_test, [0] * n_test, none_of_the_held_out)
    assert V.drop_budget(nothing_changed, 1.0).verdict == V.PASS
    alone = V.paired([0] * n_test, [0] * n_test, [0] * n_test)
    assert V.drop_budget(alone, 1.0).verdict == V.INCONCLUSIVE
