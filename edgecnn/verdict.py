"""Verdicts that state their uncertainty: paired statistics of an artifact against its reference on
the same images, unlabeled photos as evidence, and a three-way verdict (PASS / FAIL / INCONCLUSIVE).

**Labelled evidence.** Both models saw the same images, so only the images where exactly one of the
two is right move the accuracy drop: with b = images the reference gets right and the artifact wrong,
c = the reverse, and n images, the drop is (b - c) / n. Its interval is Tango's asymptotic score
interval for a difference of paired proportions (Tango 1998, Stat Med 17:891): the set of drops d
that the score test of "p_b - p_c = d" does not reject, with the nuisance rate of discordant images
estimated under that constraint (its maximum-likelihood value). Unlike the exact conditional
(McNemar-type) interval it replaces, it does not treat the observed number of changed images as
known: with no change on n images it is [-z^2/(n+z^2), +z^2/(n+z^2)], not [0, 0]. Chosen over
Bonett-Price and Newcombe's method 10 by the coverage it keeps at the budget's side (computed exactly,
``benchmarks/verdict_coverage.py``; checked by simulation in tests/test_verdict_coverage.py). The
released statsmodels and scipy have no paired-difference interval, so it is written here (a root
search on a closed-form score).

**Unlabeled evidence.** A model can only lose accuracy on an image whose prediction changed, so the
drop is at most the share of changed predictions, and counting changes needs no labels. Changes on
unlabeled photos of the deployment domain (pooled with the labelled images' changes) give a one-sided
Clopper-Pearson upper bound on the drop. Both bounds are combined without losing the stated
confidence by splitting the upper tail's error (alpha/2) between them (Bonferroni): the labelled
interval is then computed at 1 - alpha/2 and the changed-share bound at 1 - alpha/4, one-sided.

Top-1 agreement (the share of images whose prediction did not change) gets scipy's Clopper-Pearson
interval, on the labelled and unlabeled images together.

A budget is judged on the interval: PASS when all of it is within the budget, FAIL when all of it is
beyond, INCONCLUSIVE otherwise, with how many images (at the observed rates) would decide it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .core.errors import BudgetError, InconclusiveError
from .results import BenchRecord, DeviceEntry, Judged, Paired, PooledChanges, UnlabeledChanges

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)
UNREACHABLE, ERROR = "UNREACHABLE", "ERROR"      # a device that could not be reached; one that refused the request
SEVERITY = (PASS, INCONCLUSIVE, ERROR, UNREACHABLE, FAIL)   # a bench's verdict: the worst of its devices'
MAX_SCALE = 1000          # images needed are searched up to 1000x the current count


def _binom_ci(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest
    if n == 0:
        return 0.0, 1.0
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return float(ci.low), float(ci.high)


def _z(confidence: float) -> float:
    from scipy.stats import norm
    return float(norm.ppf(1 - (1 - confidence) / 2))


def tango_score(b: int, c: int, n: int, d: float) -> float:
    """Tango's score statistic for "p_b - p_c = d": (b - c - n d) / sqrt(n (2 q + d (1 - d))), with q
    the maximum-likelihood estimate of p_c under that constraint (a root of 2n q^2 + W q - c d (1 - d))."""
    w = -b - c + (2 * n - b + c) * d
    q = (math.sqrt(max(w * w + 8.0 * n * c * d * (1 - d), 0.0)) - w) / (4.0 * n)
    num = b - c - n * d
    var = n * (2.0 * q + d * (1 - d))
    if var <= 0.0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


@functools.lru_cache(maxsize=65536)
def drop_interval(b: int, c: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Tango's score interval of the paired accuracy drop (b - c) / n, in percentage points."""
    from scipy.optimize import brentq
    if n == 0:
        return -100.0, 100.0
    b, c, n = int(b), int(c), int(n)
    z, point, edge = _z(confidence), (b - c) / n, 1 - 1e-12
    lo = -1.0 if tango_score(b, c, n, -edge) <= z else \
        brentq(lambda d: tango_score(b, c, n, d) - z, -edge, point, xtol=1e-12)
    hi = 1.0 if tango_score(b, c, n, edge) >= -z else \
        brentq(lambda d: tango_score(b, c, n, d) + z, point, edge, xtol=1e-12)
    return 100.0 * lo, 100.0 * hi


@functools.lru_cache(maxsize=65536)
def changed_upper(changed: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound of the share of changed predictions, in percentage points:
    an upper bound of the accuracy drop that needs no labels."""
    from scipy.stats import beta
    if n == 0 or changed >= n:
        return 100.0
    return 100.0 * float(beta.ppf(confidence, changed + 1, n - changed))


def agreement_interval(changed: int, n: int) -> tuple[float, float]:
    """95% interval of top-1 agreement (a fraction)."""
    return _binom_ci(n - changed, n)


def combined_drop_interval(b: int, c: int, n: int, changed: int, unlabeled: UnlabeledChanges | None) -> dict:
    """The drop's interval from labelled pairs alone, or combined with the changed share on labelled +
    unlabeled photos (upper-tail error split between the two bounds). `changed`: labelled images whose
    prediction changed (b + c, and those that changed between two wrong classes)."""
    if not unlabeled:
        lo, hi = drop_interval(b, c, n)
        return {"interval": (lo, hi), "labelled": (lo, hi)}
    lo, hi = drop_interval(b, c, n, 1 - ALPHA / 2)
    bound = changed_upper(changed + unlabeled.changed, n + unlabeled.n, 1 - ALPHA / 4)
    # the drop lies within +-(share of changed predictions), labels or not
    return {"interval": (max(lo, -bound), min(hi, bound)), "labelled": (lo, hi), "changed_bound": bound}


def paired(y_true, pred, ref_pred, unlabeled: UnlabeledChanges | None = None) -> Paired:
    """Paired counts, the drop and agreement with their intervals, for one set of labelled images and,
    when given, the changed predictions on unlabeled photos."""
    y, p, r = (np.asarray(v) for v in (y_true, pred, ref_pred))
    n = int(len(y))
    b = int(((r == y) & (p != y)).sum())
    c = int(((p == y) & (r != y)).sum())
    changed = int((p != r).sum())
    ev = combined_drop_interval(b, c, n, changed, unlabeled)
    lo, hi = ev["interval"]
    total = n + (unlabeled.n if unlabeled else 0)
    total_changed = changed + (unlabeled.changed if unlabeled else 0)
    alo, ahi = agreement_interval(total_changed, total)
    pooled = None if not unlabeled else PooledChanges(
        n=unlabeled.n, changed=unlabeled.changed, changed_bound_pp=round(ev["changed_bound"], 4),
        labelled_ci_pp=tuple(round(v, 4) for v in ev["labelled"]), pooled_changed=total_changed,
        pooled_images=total)
    return Paired(n=n, ref_only_right=b, artifact_only_right=c, changed=changed,
                  drop_pp=100.0 * (b - c) / n if n else (None if unlabeled else 0.0),
                  drop_ci_pp=(round(lo, 4), round(hi, 4)),
                  agreement=(total - total_changed) / total if total else 1.0,
                  agreement_ci=(round(alo, 6), round(ahi, 6)), confidence=CONFIDENCE, unlabeled=pooled)


def judge_upper(interval: Sequence[float], limit: float) -> str:
    """A 'no more than limit' budget (the drop) judged on an interval."""
    lo, hi = interval
    return PASS if hi <= limit else FAIL if lo > limit else INCONCLUSIVE


def judge_lower(interval: Sequence[float], limit: float) -> str:
    """An 'at least limit' budget (agreement) judged on an interval."""
    lo, hi = interval
    return PASS if lo >= limit else FAIL if hi < limit else INCONCLUSIVE


def images_to_decide_drop(stats: Paired, limit: float) -> int | None:
    """Labelled images that would decide an INCONCLUSIVE drop budget if the observed rates held; None
    when the point estimate sits on the limit (no number of images decides it)."""
    n, b, c, point = stats.n, stats.ref_only_right, stats.artifact_only_right, stats.drop_pp
    if n == 0 or point is None or math.isclose(point, limit, abs_tol=1e-9):
        return None
    return _fewest(n, lambda size: judge_upper(
        drop_interval(round(b * size / n), round(c * size / n), size), limit) != INCONCLUSIVE)


def unlabeled_to_decide(stats: Paired, limit: float) -> int | None:
    """Unlabeled photos (beside the labelled ones) that would let the changed share confirm the drop
    budget if changes kept their observed rate; None when that rate is not below the budget."""
    u = stats.unlabeled
    m, k = stats.n + (u.n if u else 0), stats.changed + (u.changed if u else 0)
    if m == 0 or 100.0 * k / m >= limit:
        return None
    total = _fewest(m, lambda size: changed_upper(round(k * size / m), size, 1 - ALPHA / 4) <= limit)
    return None if total is None else max(total - stats.n, 0)


def images_to_decide_agreement(stats: Paired, limit: float) -> int | None:
    n = stats.n + (stats.unlabeled.n if stats.unlabeled else 0)
    changed = round(n * (1 - stats.agreement))
    if n == 0 or math.isclose(stats.agreement, limit, abs_tol=1e-12):
        return None
    return _fewest(n, lambda size: judge_lower(
        agreement_interval(round(changed * size / n), size), limit) != INCONCLUSIVE)


def _fewest(n: int, decides) -> int | None:
    """The fewest images (more than n, up to MAX_SCALE x n) at which decides(size) holds: sizes grow by
    a quarter until one decides, then a bisection between the last two finds the first."""
    below, size = n, n
    while size <= MAX_SCALE * n:
        size = max(size + 1, math.ceil(size * 1.25))
        if decides(size):
            while size - below > 1:
                mid = (below + size) // 2
                below, size = (below, mid) if decides(mid) else (mid, size)
            return size
        below = size
    return None


def _judged_on(stats: Paired, point_estimate: bool) -> str:
    if point_estimate:
        return "point estimate"
    return f"{int(CONFIDENCE * 100)}% interval" + (" (labelled + unlabeled)" if stats.unlabeled else "")


def drop_budget(stats: Paired, limit: float, point_estimate: bool = False) -> Judged:
    """The drop budget's verdict with its interval (or on the point estimate alone, when asked)."""
    if point_estimate:
        if stats.drop_pp is None:
            raise ValueError("a point estimate of the drop needs labelled images")
        verdict = PASS if stats.drop_pp <= limit else FAIL
    else:
        verdict = judge_upper(stats.drop_ci_pp, limit)
    undecided = verdict == INCONCLUSIVE
    return Judged.of(limit, None if stats.drop_pp is None else round(stats.drop_pp, 4), verdict,
                     interval=stats.drop_ci_pp, judged_on=_judged_on(stats, point_estimate),
                     images_to_decide=images_to_decide_drop(stats, limit) if undecided else None,
                     unlabeled_to_decide=unlabeled_to_decide(stats, limit) if undecided else None)


def agreement_budget(stats: Paired, min_pct: float, point_estimate: bool = False) -> Judged:
    limit = min_pct / 100.0
    if point_estimate:
        verdict = PASS if stats.agreement >= limit else FAIL
    else:
        verdict = judge_lower(stats.agreement_ci, limit)
    return Judged.of(min_pct, round(100 * stats.agreement, 4), verdict,
                     interval=tuple(round(100 * v, 4) for v in stats.agreement_ci),
                     judged_on=_judged_on(stats, point_estimate),
                     images_to_decide=images_to_decide_agreement(stats, limit) if verdict == INCONCLUSIVE else None)


def overall(verdicts: Sequence[str]) -> str:
    """FAIL if any fails, else INCONCLUSIVE if any is, else PASS."""
    return FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS


def worst(verdicts: Sequence[str]) -> str:
    """The devices' verdicts combined: the worst in the order of SEVERITY (PASS when there are none)."""
    return max(verdicts, key=SEVERITY.index) if verdicts else PASS


# ------------------------------------------------------------------------------ what a flow ships
@dataclass
class Deployable:
    """The INT8 artifact a flow would ship, and the one verdict about it."""

    record: BenchRecord | None
    verdict: str
    rejected: list[str]

    @property
    def exit_code(self) -> int:
        return {PASS: 0, FAIL: BudgetError.exit_code, INCONCLUSIVE: InconclusiveError.exit_code}[self.verdict]

    def line(self, run_dir: Path) -> str:
        r = self.record
        if r is None:
            return "verdict: FAIL: no INT8 model meets the budgets (see the tables above and bench.json)"
        what = (f"{r.artifact} ({r.size_mb:.2f} MB, accuracy {r.accuracy:.2%}, drop "
                f"{r.accuracy_drop_pp:+.2f} pp vs float, p50 {r.latency_ms.p50:.2f} ms on this host)")
        if self.verdict == PASS:
            return (f"verdict: PASS: deploy {what}; every budget holds\n"
                    f"next:    edgecnn bundle {run_dir / 'export' / r.artifact} --android android_demo")
        return f"verdict: INCONCLUSIVE: {what}; the images (labelled and unlabeled) cannot decide its accuracy budget (exit 3)"

    def summary(self, run_dir: Path) -> list[str]:
        """What a flow that ships a model prints last: each rejected candidate, then the one verdict."""
        return [f"rejected: {r}" for r in self.rejected] + self.line(run_dir).splitlines()


def choose_deployable(device: DeviceEntry) -> Deployable:
    """Of one device's bench records, the smallest INT8 artifact that passes every budget; else the best
    undecided one; else none."""
    int8 = [r for r in device.records if r.precision.startswith("int8")]
    by = {v: sorted((r for r in int8 if r.verdict == v), key=lambda r: r.size_mb) for v in VERDICTS}
    chosen = (by[PASS] or by[INCONCLUSIVE] or [None])[0]
    verdict = chosen.verdict if chosen else FAIL
    rejected = [f"{r.artifact}: " + ", ".join(f"{k} {b.verdict}" for k, b in r.budgets.items() if b.verdict != PASS)
                for r in int8 if r is not chosen and r.verdict != PASS]
    return Deployable(chosen, verdict, rejected)
