"""A stated confidence is a promise: the drop interval behind every accuracy verdict is checked by
simulation, through the very function the verdict uses (``verdict.paired`` + ``verdict.drop_budget``).

Simulated paired outcomes: each image is one of "only the reference is right" (rate pb), "only the
artifact is right" (pc) or unchanged; the true drop is pb - pc. A PASS of a budget below the true drop
is a false PASS, which the upper bound of a two-sided 95% interval allows at most 2.5% of the time.
2,000 simulated test sets per row, seeded; intervals are cached by their counts, so this is fast. The
tolerance is three Monte Carlo standard errors at 2.5% (0.35% each).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn import verdict as V
from edgecnn.results import Paired, UnlabeledChanges

SETS = 2000
NOMINAL = (1 - V.CONFIDENCE) / 2
TOLERANCE = 3 * (NOMINAL * (1 - NOMINAL) / SETS) ** 0.5


def _counts(n: int, pb: float, pc: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, [pb, pc, 1 - pb - pc], size=SETS)[:, :2]


def _stats(b: int, c: int, n: int, unlabeled: UnlabeledChanges | None = None) -> Paired:
    """verdict.paired on predictions built to have these counts (class 0 is the truth)."""
    y = [0] * n
    ref = [0] * b + [1] * c + [0] * (n - b - c)
    art = [1] * b + [0] * c + [0] * (n - b - c)
    return V.paired(y, art, ref, unlabeled)


def _unlabeled(n: int, changed: int) -> UnlabeledChanges:
    """Changed predictions on n unlabeled photos (which ones does not matter to the interval)."""
    return UnlabeledChanges(n=n, changed=changed, flips=[])


def false_pass_rate(n: int, pb: float, pc: float, limit: float, seed: int = 0) -> float:
    """Share of simulated test sets whose drop budget PASSes."""
    counts = _counts(n, pb, pc, seed)
    uniq, inv = np.unique(counts, axis=0, return_inverse=True)
    passed = np.array([V.drop_budget(_stats(int(b), int(c), n), limit).verdict == V.PASS for b, c in uniq])
    return float(passed[inv.ravel()].mean())


# The grid: 95% float accuracy, 1 pp budget, true drops above it. Before: PASS 47% / 37% / 14%
# at 50 images, 51% / 35% / 6% at 109, 27% / 13% / 0.6% at 250, 10.5% / 0.5% / 0% at 1,017.
GRID = [(n, pb, pc) for n in (50, 109, 250, 1017) for pb, pc in ((0.015, 0.0), (0.02, 0.0), (0.03, 0.01))]


@pytest.mark.parametrize("n,pb,pc", GRID)
def test_no_false_pass_beyond_the_stated_rate(n, pb, pc):
    rate = false_pass_rate(n, pb, pc, limit=1.0, seed=n)
    assert rate <= NOMINAL + TOLERANCE, f"{n} images, true drop {100 * (pb - pc):.1f} pp: PASS {rate:.1%}"


# At the budget's edge (the true drop just above the limit) with discordant images in both directions:
# the hardest case for the upper bound, zero cells included.
EDGE = [(n, d + pc, pc) for n in (30, 109, 400, 1017) for pc in (0.0, 0.005, 0.02) for d in (0.005, 0.01, 0.03)]


@pytest.mark.parametrize("n,pb,pc", EDGE)
def test_upper_bound_misses_at_most_the_nominal_rate_at_the_edge(n, pb, pc):
    true_pp = 100 * (pb - pc)
    rate = false_pass_rate(n, pb, pc, limit=true_pp - 1e-9, seed=7 * n)
    assert rate <= NOMINAL + TOLERANCE, f"{n} images, true drop {true_pp:.1f} pp, c-rate {pc}: PASS {rate:.1%}"


def test_power_where_the_evidence_is_there():
    assert V.drop_budget(_stats(0, 0, 400), 1.0).verdict == V.PASS       # 400 images, nothing changed
    assert V.drop_budget(_stats(3, 3, 1017), 1.0).verdict == V.PASS      # 1,017 images, 3 changed each way
    assert V.drop_budget(_stats(40, 0, 400), 1.0).verdict == V.FAIL      # 10 pp worse, clearly


def test_small_sets_cannot_pass_a_one_point_budget():
    """Observed on main: one photo with no change, and 50 photos with no change, PASSed ("[+0.0, +0.0]")."""
    one = V.drop_budget(_stats(0, 0, 1), 0.0)
    assert one.verdict == V.INCONCLUSIVE and one.interval[1] > 50
    fifty = V.drop_budget(_stats(0, 0, 50), 1.0)
    assert fifty.verdict == V.INCONCLUSIVE and fifty.interval[1] == pytest.approx(100 * 3.8415 / 53.8415, abs=1e-3)
    assert fifty.images_to_decide == 381          # z^2 / (n + z^2) <= 1% once n >= 99 z^2 = 380.3


# ----------------------------------------------------------------------------- unlabeled evidence
def false_pass_with_unlabeled(n: int, m: int, d: float, limit: float, seed: int = 0) -> float:
    """The worst case for the changed-share bound: every change is a loss (changed share = drop)."""
    rng = np.random.default_rng(seed)
    b = rng.binomial(n, d, size=SETS)
    k = rng.binomial(m, d, size=SETS)
    uniq, inv = np.unique(np.stack([b, k], 1), axis=0, return_inverse=True)
    passed = np.array([V.drop_budget(_stats(int(bb), 0, n, _unlabeled(m, int(kk))), limit).verdict == V.PASS
                       for bb, kk in uniq])
    return float(passed[inv.ravel()].mean())


@pytest.mark.parametrize("n,m", [(50, 200), (50, 450), (109, 2000), (0, 1000), (250, 500)])
@pytest.mark.parametrize("d", [0.012, 0.015, 0.02])
def test_unlabeled_evidence_keeps_the_stated_rate(n, m, d):
    rate = false_pass_with_unlabeled(n, m, d, limit=1.0, seed=n + m)
    assert rate <= NOMINAL + TOLERANCE, f"{n} labelled + {m} unlabeled, true drop {100 * d:.1f} pp: PASS {rate:.1%}"


def test_unlabeled_photos_decide_what_labelled_ones_cannot():
    alone = V.drop_budget(_stats(0, 0, 50), 1.0)
    both = V.drop_budget(_stats(0, 0, 50, _unlabeled(450, 0)), 1.0)
    assert alone.verdict == V.INCONCLUSIVE and both.verdict == V.PASS
    assert both.judged_on == "95% interval (labelled + unlabeled)"
    assert alone.unlabeled_to_decide == 387       # no change on m photos bounds 1 pp at 98.75% once 0.99^m <= 0.0125: m >= 437, 50 of them labelled
    only = V.drop_budget(_stats(0, 0, 0, _unlabeled(2000, 4)), 1.0)
    assert only.verdict == V.PASS and only.value is None       # no labels at all: the changed share alone
    many = V.drop_budget(_stats(0, 0, 50, _unlabeled(450, 9)), 1.0)
    assert many.verdict == V.INCONCLUSIVE and many.interval[0] < 0       # never FAIL on changes alone
