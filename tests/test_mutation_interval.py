"""The mutation score's stated 95% intervals hold, by simulation of the real draw: mutants drawn without
replacement from modules of known scores, each module's exact interval and the scope's Bonferroni-combined
interval of a per-module draw (benchmarks/mutation_score.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "mutation_score", Path(__file__).resolve().parents[1] / "benchmarks" / "mutation_score.py")
MS = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(MS)

# module sizes and true scores like the scope's: large and small modules, scores from 80% to 100%
SIZES = {"a.py": 1265, "b.py": 585, "c.py": 486, "d.py": 32, "e.py": 162, "f.py": 324, "g.py": 65, "h.py": 20}
TRUE = {"a.py": 0.92, "b.py": 0.97, "c.py": 0.85, "d.py": 0.78, "e.py": 0.80, "f.py": 0.88, "g.py": 1.0,
        "h.py": 0.9}


def _populations() -> dict[str, np.ndarray]:
    return {p: np.arange(n) < round(TRUE[p] * n) for p, n in SIZES.items()}       # True: killed


def _per(draws: dict[str, np.ndarray]) -> dict:
    return {p: {"mutants": len(d), "detected": int(d.sum()), "equivalent": 0,
                "score_pct": round(100 * d.sum() / len(d), 1)} for p, d in draws.items()}


def _true_scope() -> float:
    pops = _populations()
    return 100 * sum(pops[p].mean() * SIZES[p] for p in SIZES) / sum(SIZES.values())


def test_the_scopes_interval_from_a_per_module_draw_covers_at_least_95_percent():
    rng, pops, truth = np.random.default_rng(11), _populations(), _true_scope()
    covered, estimates = 0, []
    sims = 400
    for _ in range(sims):
        draws = {p: rng.choice(pop, size=min(30, len(pop)), replace=False) for p, pop in pops.items()}
        est, (lo, hi) = MS.stratified(_per(draws), SIZES)
        covered += lo - 0.05 <= truth <= hi + 0.05             # the bounds are printed to 0.1
        estimates.append(est)
    assert covered / sims >= 0.95
    assert abs(np.mean(estimates) - truth) < 0.5              # the weighted estimate is unbiased (up to rounding)


def test_a_module_drawn_whole_is_known_exactly():
    pops = _populations()
    est, ci = MS.stratified(_per(pops), SIZES)
    assert est == pytest.approx(_true_scope(), abs=0.1) and ci == [est, est]


def test_the_scope_weights_modules_by_their_numbers_of_mutants():
    per = {"x.py": {"mutants": 10, "detected": 10, "equivalent": 0, "score_pct": 100.0},
           "y.py": {"mutants": 30, "detected": 24, "equivalent": 0, "score_pct": 80.0}}
    est, (lo, hi) = MS.stratified(per, {"x.py": 10, "y.py": 90})   # x drawn whole: 100%; y sampled: 80%
    assert est == 82.0
    ylo, yhi = MS.interval(24, 30, 0.95)                           # one sampled module: no Bonferroni split
    assert (lo, hi) == (round(0.1 * 100 + 0.9 * ylo, 1), round(0.1 * 100 + 0.9 * yhi, 1))


@pytest.mark.parametrize("p", [0.85, 0.95])
def test_each_modules_exact_interval_covers_at_least_95_percent(p):
    rng = np.random.default_rng(5)
    pop = np.arange(400) < round(p * 400)
    sims, covered = 400, 0
    for _ in range(sims):
        d = rng.choice(pop, size=30, replace=False)
        lo, hi = MS.interval(int(d.sum()), 30)
        covered += lo - 0.05 <= 100 * p <= hi + 0.05
    assert covered / sims >= 0.95
