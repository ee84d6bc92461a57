"""The verdict's "how many images would decide it" on exact values: the number reported with an
INCONCLUSIVE budget is the first size at which the observed rates decide it (one fewer does not), the
agreement budget is given in percent and judged as a fraction, and the unlabeled photos asked for are
those beyond the labelled ones."""

from __future__ import annotations

import pytest

from edgecnn import verdict as V
from edgecnn.results import Paired, UnlabeledChanges


def _stats(n: int, b: int, c: int, unlabeled: UnlabeledChanges | None = None) -> Paired:
    """Paired statistics of n labelled images: b only the reference gets right, c only the artifact (and,
    when given, the changed predictions on unlabeled photos)."""
    y = [0] * n
    ref = [0] * b + [1] * c + [0] * (n - b - c)
    art = [1] * b + [0] * c + [0] * (n - b - c)
    return V.paired(y, art, ref, unlabeled)


def _drop_decides(st: Paired, limit: float, size: int) -> bool:
    n, b, c = st.n, st.ref_only_right, st.artifact_only_right
    return V.judge_upper(V.drop_interval(round(b * size / n), round(c * size / n), size), limit) != V.INCONCLUSIVE


def _agreement_decides(st: Paired, fraction: float, size: int) -> bool:
    changed = round(st.n * (1 - st.agreement))
    return V.judge_lower(V.agreement_interval(round(changed * size / st.n), size), fraction) != V.INCONCLUSIVE


@pytest.mark.parametrize("n,b,c,limit", [(200, 3, 1, 0.5), (200, 2, 2, 0.25), (120, 4, 0, 5.0), (60, 0, 0, 1.0)])
def test_images_to_decide_a_drop_is_the_first_size_that_decides(n, b, c, limit):
    st = _stats(n, b, c)
    d = V.drop_budget(st, limit)
    assert d.verdict == V.INCONCLUSIVE
    s = d.images_to_decide
    assert s == V.images_to_decide_drop(st, limit) and s > n
    assert _drop_decides(st, limit, s) and not _drop_decides(st, limit, s - 1)


@pytest.mark.parametrize("n,changed,min_pct", [(100, 1, 97.0), (150, 3, 96.0), (80, 0, 98.0), (300, 2, 98.5)])
def test_images_to_decide_an_agreement_is_the_first_size_that_decides_in_percent(n, changed, min_pct):
    st = _stats(n, changed, 0)
    a = V.agreement_budget(st, min_pct)
    assert a.verdict == V.INCONCLUSIVE and a.limit == min_pct
    s = a.images_to_decide
    assert s == V.images_to_decide_agreement(st, min_pct / 100) and s > n
    assert _agreement_decides(st, min_pct / 100, s) and not _agreement_decides(st, min_pct / 100, s - 1)


def test_an_agreement_is_given_in_percent_and_judged_as_a_fraction():
    st = _stats(100, 2, 0)                                   # agreement 98%
    assert st.agreement == 0.98
    a = V.agreement_budget(st, 98.0, point_estimate=True)
    assert (a.verdict, a.value, a.limit) == ("PASS", 98.0, 98.0)
    assert V.agreement_budget(st, 98.01, point_estimate=True).verdict == "FAIL"
    lo, hi = st.agreement_ci
    assert V.agreement_budget(st, 100 * lo - 0.01).verdict == "PASS"
    assert V.agreement_budget(st, 100 * hi + 0.01).verdict == "FAIL"
    assert V.agreement_budget(st, 100 * (lo + hi) / 2).verdict == "INCONCLUSIVE"
    assert V.agreement_budget(st, 50.0).interval == (round(100 * lo, 4), round(100 * hi, 4))


def test_unlabeled_photos_to_decide_are_counted_beyond_the_labelled_ones():
    st = _stats(100, 0, 0)                                   # nothing changed on 100 labelled images
    need = V.unlabeled_to_decide(st, 1.0)
    assert need is not None and need > 0
    total = 100 + need
    assert V.changed_upper(0, total, 1 - V.ALPHA / 4) <= 1.0 < V.changed_upper(0, total - 1, 1 - V.ALPHA / 4)
    with_some = _stats(100, 0, 0, UnlabeledChanges(n=50, changed=0, flips=[]))     # and none on 50 unlabeled
    assert (with_some.unlabeled.n, with_some.unlabeled.changed, with_some.changed) == (50, 0, 0)
    assert total > 150 and V.unlabeled_to_decide(with_some, 1.0) == need     # all unlabeled photos, those given too
    assert V.unlabeled_to_decide(_stats(100, 2, 0), 1.0) is None        # 2% changed: no count confirms 1 pp


def test_the_overall_verdict_is_fail_then_inconclusive_then_pass():
    assert V.overall([]) == "PASS"
    assert V.overall(["PASS", "INCONCLUSIVE"]) == "INCONCLUSIVE"
    assert V.overall(["INCONCLUSIVE", "FAIL", "PASS"]) == "FAIL"
    assert V.overall(["PASS", "PASS"]) == "PASS"
