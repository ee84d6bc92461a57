"""The one evaluation of a model's predictions: against the labels, and against its float reference's
predictions on the same images (numpy only). Export (the runtime in this process), bench (the agent on a
device) and every report read its :class:`~edgecnn.results.Comparison`; the paired statistics and their
intervals come from verdict.py."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from . import verdict as V
from .results import ClassResult, Comparison, Flip, UnlabeledChanges, Change, WorstClass


def accuracy(y_true, pred) -> float | None:
    """Top-1 accuracy of predicted class ids (None without images)."""
    y_true, pred = np.asarray(y_true), np.asarray(pred)
    return float((pred == y_true).mean()) if len(y_true) else None


def versus(y_true, pred, ref_pred, labels: Sequence[str], paths: Sequence[str],
           unlabeled: UnlabeledChanges | None = None) -> Comparison:
    """A model's top-1 predictions against the labels and its reference's on the same images: accuracy, the
    drop in percentage points with its paired interval (overall and per class), top-1 agreement, the worst
    class and the images whose prediction flipped; with unlabeled photos' changes, the interval uses them
    too. No labelled images (only unlabeled photos): the paired figures alone."""
    y, pred, ref = (np.asarray(v, dtype=np.int64) for v in (y_true, pred, ref_pred))
    paired = V.paired(y, pred, ref, unlabeled)
    if not len(y):
        return Comparison(n=0, accuracy=None, paired=paired, unlabeled=unlabeled)
    ref_acc, acc = accuracy(y, ref), accuracy(y, pred)
    per_class = {name: _class_result(y, pred, ref, i) for i, name in enumerate(labels) if (y == i).any()}
    drop, worst = max(((c.drop_pp, name) for name, c in per_class.items()), default=(0.0, None))
    flips = [Flip(path=str(paths[i]), label=labels[y[i]], reference=labels[ref[i]], prediction=labels[pred[i]])
             for i in np.flatnonzero(pred != ref)]
    return Comparison(n=int(len(y)), accuracy=acc, reference_accuracy=ref_acc,
                      accuracy_drop_pp=round((ref_acc - acc) * 100, 4), per_class=per_class, flips=flips,
                      top1_agreement=float((pred == ref).mean()), worst_class=WorstClass(label=worst, drop_pp=drop),
                      paired=paired, unlabeled=unlabeled)


def _class_result(y, pred, ref, i: int) -> ClassResult:
    m = y == i
    acc, ref_acc = float((pred[m] == i).mean()), float((ref[m] == i).mean())
    st = V.paired(y[m], pred[m], ref[m])
    return ClassResult(n=int(m.sum()), accuracy=acc, reference_accuracy=ref_acc,
                       drop_pp=round((ref_acc - acc) * 100, 4), drop_ci_pp=st.drop_ci_pp, agreement=st.agreement,
                       agreement_ci=st.agreement_ci)


def changes_without_labels(pred, ref_pred, labels: Sequence[str], paths: Sequence[str]) -> UnlabeledChanges:
    """Changed top-1 predictions on photos without labels: how many of how many, and which (no label to
    say which side is right)."""
    pred, ref = np.asarray(pred), np.asarray(ref_pred)
    flips = [Change(path=str(paths[i]), reference=labels[ref[i]], prediction=labels[pred[i]])
             for i in np.flatnonzero(pred != ref)]
    return UnlabeledChanges(n=int(len(pred)), changed=len(flips), flips=flips)


def seen_by_the_model(run) -> dict[str, str]:
    """sha256 -> what it is, for every photo a run's model was fitted to or calibrated on that can be
    found: its training split and the calibration list recorded in its export/ (hashes read as listed)."""
    from .core.images import images_under
    from .core.io import sha256_file
    seen: dict[str, str] = {}
    listed = run.export_dir / "calibration.txt"
    if listed.is_file():
        for line in listed.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if line.strip() and not line.startswith("#") and len(parts) == 2:
                seen[parts[1].strip()] = f"calibration image {parts[0]}"
    if run.data_root is not None and (run.data_root / "train").is_dir():
        for p in images_under(run.data_root / "train"):
            seen.setdefault(sha256_file(p), f"training image {p.relative_to(run.data_root).as_posix()}")
    return seen


def refuse_seen_photos(unlabeled: Sequence[str | Path], seen: dict[str, str]) -> None:
    """Unlabeled photos are evidence only when the model has not seen them: a photo that is also a
    calibration or training image (same content) is refused with one line."""
    from .core.errors import InputError
    from .core.io import sha256_file
    hits = [(p, seen[h]) for p in unlabeled if (h := sha256_file(Path(p))) in seen]
    if hits:
        p, what = hits[0]
        raise InputError(f"--unlabeled: {len(hits)} photo(s) are images the model was fitted to or calibrated on, "
                         f"e.g. {Path(p).name} is {what}; unlabeled evidence must be new photos of the domain")
