"""Verdicts that state their uncertainty: paired statistics of an artifact against its reference on
the same images, and a three-way verdict (PASS / FAIL / INCONCLUSIVE) for accuracy budgets.

Paired, because both models saw the same images: only the images where exactly one of the two is
right move the accuracy drop. With b = images the reference gets right and the artifact wrong,
c = the reverse, and n images, the drop is (b - c) / n. Its 95% interval is the exact conditional
(McNemar) one: given the b + c discordant images, b is binomial, and scipy's Clopper-Pearson
interval for that proportion p maps to the drop as (b + c) / n * (2p - 1). Top-1 agreement (the share
of images whose prediction did not change) gets scipy's Clopper-Pearson interval directly.

A budget is judged on the interval: PASS when all of it is within the budget, FAIL when all of it is
beyond, INCONCLUSIVE otherwise, with how many images (at the observed rates) would decide it.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)
MAX_SCALE = 1000          # images needed are searched up to 1000x the current count


def _binom_ci(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def drop_interval(b: int, c: int, n: int) -> tuple[float, float]:
    """95% interval of the paired accuracy drop, in percentage points."""
    if n == 0:
        return -100.0, 100.0
    d = b + c
    if d == 0:
        return 0.0, 0.0
    lo, hi = _binom_ci(b, d)
    return 100.0 * d / n * (2 * lo - 1), 100.0 * d / n * (2 * hi - 1)


def agreement_interval(changed: int, n: int) -> tuple[float, float]:
    """95% interval of top-1 agreement (a fraction)."""
    return _binom_ci(n - changed, n)


def paired(y_true, pred, ref_pred) -> dict:
    """Paired counts, the drop and agreement with their intervals, for one set of images."""
    y, p, r = (np.asarray(v) for v in (y_true, pred, ref_pred))
    n = int(len(y))
    b = int(((r == y) & (p != y)).sum())
    c = int(((p == y) & (r != y)).sum())
    changed = int((p != r).sum())
    lo, hi = drop_interval(b, c, n)
    alo, ahi = agreement_interval(changed, n)
    return {"n": n, "ref_only_right": b, "artifact_only_right": c, "changed": changed,
            "drop_pp": 100.0 * (b - c) / n if n else 0.0, "drop_ci_pp": [round(lo, 4), round(hi, 4)],
            "agreement": (n - changed) / n if n else 1.0, "agreement_ci": [round(alo, 6), round(ahi, 6)],
            "confidence": CONFIDENCE}


def judge_upper(interval: Sequence[float], limit: float) -> str:
    """A 'no more than limit' budget (the drop) judged on an interval."""
    lo, hi = interval
    return PASS if hi <= limit else FAIL if lo > limit else INCONCLUSIVE


def judge_lower(interval: Sequence[float], limit: float) -> str:
    """An 'at least limit' budget (agreement) judged on an interval."""
    lo, hi = interval
    return PASS if lo >= limit else FAIL if hi < limit else INCONCLUSIVE


def images_to_decide_drop(stats: dict, limit: float) -> int | None:
    """Images that would decide an INCONCLUSIVE drop budget if the observed rates held; None when the
    point estimate sits on the limit (no number of images decides it)."""
    n, b, c = stats["n"], stats["ref_only_right"], stats["artifact_only_right"]
    point = stats["drop_pp"]
    if n == 0 or math.isclose(point, limit, abs_tol=1e-9) or b + c == 0:
        return None
    for k in _scales():
        lo, hi = drop_interval(round(b * k), round(c * k), round(n * k))
        if judge_upper((lo, hi), limit) != INCONCLUSIVE:
            return int(math.ceil(n * k))
    return None


def images_to_decide_agreement(stats: dict, limit: float) -> int | None:
    n, changed = stats["n"], stats["changed"]
    if n == 0 or math.isclose(stats["agreement"], limit, abs_tol=1e-12):
        return None
    for k in _scales():
        if judge_lower(agreement_interval(round(changed * k), round(n * k)), limit) != INCONCLUSIVE:
            return int(math.ceil(n * k))
    return None


def _scales():
    k = 1.0
    while k <= MAX_SCALE:
        k *= 1.25
        yield k


def drop_budget(stats: dict, limit: float, point_estimate: bool = False) -> dict:
    """The drop budget's verdict with its interval (or on the point estimate alone, when asked)."""
    if point_estimate:
        verdict = PASS if stats["drop_pp"] <= limit else FAIL
    else:
        verdict = judge_upper(stats["drop_ci_pp"], limit)
    out = {"limit": limit, "value": round(stats["drop_pp"], 4), "interval": stats["drop_ci_pp"],
           "verdict": verdict, "pass": verdict == PASS, "judged_on": "point estimate" if point_estimate else
           f"{int(CONFIDENCE * 100)}% interval"}
    if verdict == INCONCLUSIVE:
        out["images_to_decide"] = images_to_decide_drop(stats, limit)
    return out


def agreement_budget(stats: dict, min_pct: float, point_estimate: bool = False) -> dict:
    limit = min_pct / 100.0
    if point_estimate:
        verdict = PASS if stats["agreement"] >= limit else FAIL
    else:
        verdict = judge_lower(stats["agreement_ci"], limit)
    out = {"limit": min_pct, "value": round(100 * stats["agreement"], 4),
           "interval": [round(100 * v, 4) for v in stats["agreement_ci"]], "verdict": verdict,
           "pass": verdict == PASS, "judged_on": "point estimate" if point_estimate else
           f"{int(CONFIDENCE * 100)}% interval"}
    if verdict == INCONCLUSIVE:
        out["images_to_decide"] = images_to_decide_agreement(stats, limit)
    return out


def overall(verdicts: Sequence[str]) -> str:
    """FAIL if any fails, else INCONCLUSIVE if any is, else PASS."""
    return FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS
