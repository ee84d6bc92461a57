"""Accuracy of a model's predictions against the labels and against a float reference (numpy only)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def compare(y_true: np.ndarray, probs: np.ndarray, ref_probs: np.ndarray | None,
            labels: Sequence[str], paths: Sequence[str]) -> dict:
    """Top-1 accuracy, and with a reference: drop in pp, per-class drop, agreement and flips."""
    y_true = np.asarray(y_true)
    pred = probs.argmax(1)
    out: dict = {"n": int(len(y_true)), "accuracy": float((pred == y_true).mean())}
    per_class = {}
    for i, name in enumerate(labels):
        m = y_true == i
        if not m.any():
            continue
        per_class[name] = {"n": int(m.sum()), "accuracy": float((pred[m] == i).mean())}
    if ref_probs is not None:
        ref = ref_probs.argmax(1)
        ref_acc = float((ref == y_true).mean())
        out.update(reference_accuracy=ref_acc,
                   accuracy_drop_pp=round((ref_acc - out["accuracy"]) * 100, 4),
                   top1_agreement=float((pred == ref).mean()),
                   max_abs_prob_diff=float(np.abs(probs - ref_probs).max()) if len(probs) else 0.0)
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
