"""Accuracy of a model's predictions against the labels and against a float reference (numpy only)."""

from __future__ import annotations

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
