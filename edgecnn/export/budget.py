"""The INT8 accuracy budget's decisions, apart from the conversions they judge: the text of a verdict,
its exit status, and the search for the fewest ops to keep in float."""

from __future__ import annotations

from typing import Callable

from .. import verdict as V
from ..core.errors import BudgetError, InconclusiveError
from ..results import ExportRecord, ExportReport, Fallback, FallbackStep, Judged, PooledChanges


def decision(judged: Judged, max_drop: float, n: int, unlabeled: PooledChanges | None = None) -> str:
    """One line on the INT8 budget: the drop, its interval, the images, the budget and the verdict."""
    lo, hi = judged.interval
    on = f"{n} images" + (f" + {unlabeled.n} unlabeled photos ({unlabeled.changed} changed)" if unlabeled else "")
    text = f"drop {judged.value:+.2f} pp, 95% interval {lo:+.2f} to {hi:+.2f} pp on {on}, budget {max_drop} pp"
    if judged.verdict == V.PASS:
        return f"{text}: PASS (the whole interval is within the budget)"
    if judged.verdict == V.FAIL:
        return f"{text}: FAIL (the whole interval is beyond the budget)"
    need = [f"about {judged.images_to_decide} labelled images" if judged.images_to_decide else "",
            f"{judged.unlabeled_to_decide} unlabeled photos (--unlabeled)" if judged.unlabeled_to_decide else ""]
    need = [s for s in need if s]
    return (f"{text}: INCONCLUSIVE, no ops kept in float for a drop these images cannot resolve"
            + (f" ({' or '.join(need)} would decide it at the observed rates)" if need else ""))


def check_budget(report: ExportReport) -> None:
    """BudgetError (exit 1) when the INT8 accuracy budget fails, InconclusiveError (exit 3) when the
    evaluation images cannot decide it."""
    b = report.budget
    if b is None or b.verdict == V.PASS:
        return
    kept = f"every artifact and export_report.json were kept in {report.run}/export"
    if b.verdict == V.INCONCLUSIVE:
        raise InconclusiveError(f"INT8 accuracy budget: {b.decision}; {kept}")
    raise BudgetError(f"INT8 accuracy budget: {b.decision}; {kept}")


def fallback_steps(ranked: int, max_steps: int) -> list[int]:
    """How many of the most sensitive ops each fallback step keeps in float: 1, 2, 4, ... up to all."""
    steps, k = [], 1
    while k <= ranked and len(steps) < max_steps:
        steps.append(k)
        k *= 2
    return steps


def search_fallback(ranking: list[dict], steps: list[int], build: Callable[[list[dict]], ExportRecord],
                    judge: Callable[[ExportRecord], Judged]) -> Fallback:
    """The first step whose mixed model passes its budget (judged on the interval, not on a lucky point
    estimate). build(kept ops) writes and evaluates a mixed model; judge(record) is its budget verdict."""
    tried, rec = [], None
    for k in steps:
        rec = build(ranking[:k])
        judged = judge(rec)
        tried.append(FallbackStep(float_ops=k, accuracy_drop_pp=rec.accuracy_drop_pp, interval_pp=judged.interval,
                                  verdict=judged.verdict, size_mb=rec.size_mb))
        if judged.verdict == V.PASS:
            return Fallback(passed=True, verdict=V.PASS, artifact=rec.artifact, float_ops=rec.float_ops or [], steps=tried,
                            ranking=ranking[:32], decision=f"{k} op(s) kept in float: drop "
                            f"{rec.accuracy_drop_pp:+.2f} pp, interval within the budget")
    last = tried[-1].verdict if tried else V.FAIL
    return Fallback(passed=False, verdict=last, artifact=rec.artifact if rec else None,
                    float_ops=(rec.float_ops or []) if rec else [], steps=tried, ranking=ranking[:32],
                    decision=f"{len(tried)} step(s) tried, last {last}" if tried else "no step possible")
