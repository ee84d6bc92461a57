"""Accuracy of a model's predictions against the labels and against a float reference (numpy only)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def compare(y_true, pred, ref_pred, labels: Sequence[str], paths: Sequence[str]) -> dict:
    """Top-1 accuracy of predicted class ids, and with a reference's predictions: the drop in
    percentage points, per-class drop, top-1 agreement and the images whose prediction flipped."""
    y_true, pred = np.asarray(y_true), np.asarray(pred)
    out: dict = {"n": int(len(y_true)), "accuracy": float((pred == y_true).mean())}
    per_class = {}
    for i, name in enumerate(labels):
        m = y_true == i
        if not m.any():
            continue
        per_class[name] = {"n": int(m.sum()), "accuracy": float((pred[m] == i).mean())}
    if ref_pred is not None:
        ref = np.asarray(ref_pred)
        ref_acc = float((ref == y_true).mean())
        out.update(reference_accuracy=ref_acc,
                   accuracy_drop_pp=round((ref_acc - out["accuracy"]) * 100, 4),
                   top1_agreement=float((pred == ref).mean()))
        for i, name in enumerate(labels):
            if name in per_class:
                m = y_true == i
                r = float((ref[m] == i).mean())
                per_class[name].update(reference_accuracy=r,
                                       drop_pp=round((r - per_class[name]["accuracy"]) * 100, 4))
        drops = [(v["drop_pp"], k) for k, v in per_class.items()]
        worst = max(drops) if drops else (0.0, None)
        out["worst_class"] = {"label": worst[1], "drop_pp": worst[0]}
        out["flips"] = [{"path": str(paths[i]), "label": labels[y_true[i]], "reference": labels[ref[i]],
                         "prediction": labels[pred[i]]} for i in np.flatnonzero(pred != ref)]
    out["per_class"] = per_class
    return out


def changes_without_labels(pred, ref_pred, labels: Sequence[str], paths: Sequence[str]) -> dict:
    """Changed top-1 predictions on photos without labels: how many of how many, and which (no label to
    say which side is right)."""
    pred, ref = np.asarray(pred), np.asarray(ref_pred)
    flips = [{"path": str(paths[i]), "reference": labels[ref[i]], "prediction": labels[pred[i]]}
             for i in np.flatnonzero(pred != ref)]
    return {"n": int(len(pred)), "changed": len(flips), "flips": flips}


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
