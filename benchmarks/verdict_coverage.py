"""How often the accuracy verdict PASSes a model that truly loses more than its budget, before and after
the interval change, and how many images a budget needs: the figures behind "Verdict coverage" in
docs/benchmarks.md (docs/verdicts.md explains the verdict). Exact where it can be (probabilities summed
over every outcome), simulated where the issue measured by simulation.

    python benchmarks/verdict_coverage.py      # ~1 min; writes benchmarks/results/verdict_coverage.json

- `false_pass`: the issue's grid (1 pp budget, true drops above it), 20,000 simulated test sets a row,
  judged by `verdict.paired` + `verdict.drop_budget` (now), and by the previous rule (the exact conditional
  interval scaled by the observed share of changed images), re-implemented here for the comparison.
- `worst_upper_miss`: the largest probability, summed exactly over every (b, c), that the upper bound lies
  below the true drop, over a grid of test-set sizes, rates of images INT8 gets right that float got wrong
  (c-rate) and true drops: what a false PASS at the budget's edge can reach (nominal 2.5%).
- `recipes`: each recipe's INT8 TFLite on its test split as last measured (benchmarks/results/
  recipes_end_to_end.json): its paired counts recovered from the saved accuracy, drop, agreement and previous
  interval, then judged by the previous rule and by this release's, with the images that would decide it.
- `images_needed`: labelled images to confirm a 1 pp and a 0.5 pp budget when 0%, 0.5% or 1% of
  predictions change (changes split evenly between losses and gains), and photos (labelled + unlabeled)
  for the changed-share bound alone.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import binom, binomtest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgecnn import verdict as V  # noqa: E402

SETS = 20000


def previous_upper(b: int, c: int, n: int) -> float:
    """The rule this release replaced: Clopper-Pearson on b of b + c, scaled by (b + c) / n."""
    d = b + c
    if d == 0:
        return 0.0
    return 100.0 * d / n * (2 * binomtest(b, d).proportion_ci(0.95, "exact").high - 1)


def false_pass(n: int, pb: float, pc: float, limit: float = 1.0, seed: int = 0) -> dict:
    counts = np.random.default_rng(seed).multinomial(n, [pb, pc, 1 - pb - pc], size=SETS)[:, :2]
    uniq, inv = np.unique(counts, axis=0, return_inverse=True)
    now = np.array([V.drop_interval(int(b), int(c), n)[1] <= limit for b, c in uniq])
    before = np.array([previous_upper(int(b), int(c), n) <= limit for b, c in uniq])
    inv = inv.ravel()
    return {"images": n, "lose": pb, "gain": pc, "true_drop_pp": round(100 * (pb - pc), 3),
            "pass_before": float(before[inv].mean()), "pass_now": float(now[inv].mean())}


def upper_miss(n: int, pb: float, pc: float) -> float:
    """P(upper bound < true drop), summed over every outcome with probability above 1e-12."""
    d, q, total = 100 * (pb - pc), pc / (1 - pb), 0.0
    for b in range(int(binom.ppf(1 - 1e-12, n, pb)) + 2):
        pb_ = binom.pmf(b, n, pb)
        if pb_ < 1e-13:
            continue
        cs = np.arange(int(binom.ppf(1 - 1e-12, n - b, q)) + 2) if q > 0 else np.array([0])
        pcs = binom.pmf(cs, n - b, q) if q > 0 else np.array([1.0])
        miss = np.array([V.drop_interval(b, int(c), n)[1] < d - 1e-9 for c in cs])
        total += pb_ * pcs[miss].sum()
    return total


def images_needed() -> list[dict]:
    rows = []
    for rate in (0.0, 0.005, 0.01):
        row = {"changed_pct": 100 * rate}
        for limit in (1.0, 0.5):
            half = rate / 2
            row[f"labelled_{limit}pp"] = next(
                (n for n in range(10, 200001, 1) if V.drop_interval(round(half * n), round(half * n), n)[1] <= limit),
                None)
            row[f"photos_changed_share_{limit}pp"] = next(
                (m for m in range(10, 200001) if V.changed_upper(round(rate * m), m, 1 - V.ALPHA / 4) <= limit),
                None) if 100 * rate < limit else None
        rows.append(row)
    return rows




def recipes(limit: float = 1.0) -> list[dict]:
    saved = json.loads((ROOT / "benchmarks" / "results" / "recipes_end_to_end.json").read_text())
    rows = []
    for name, rec in saved.items():
        a, n = rec["artifacts"]["model_int8.tflite"], rec["train_photos"]["test"]["total"]
        net, changed = round(a["accuracy_drop_pp"] * n / 100), round((1 - a["top1_agreement"]) * n)
        old = rec["int8_budget"]["interval_pp"]
        b, c = next((b, b - net) for b in range(max(net, 0), changed + 1)
                    if b - net >= 0 and abs(previous_upper(b, b - net, n) - old[1]) < 1e-3)
        stats = V.paired([0] * n, [1] * b + [0] * (n - b), [0] * b + [1] * c + [0] * (n - b - c))
        judged = V.drop_budget(stats, limit)
        rows.append({"recipe": name, "images": n, "ref_only_right": b, "artifact_only_right": c, "changed": changed,
                     "before": {"interval_pp": old, "verdict": rec["int8_budget"]["verdict"],
                                "images_to_decide": rec["int8_budget"]["images_to_decide"]},
                     "now": {"interval_pp": judged["interval"], "verdict": judged["verdict"],
                             "images_to_decide": judged.get("images_to_decide"),
                             "unlabeled_to_decide": judged.get("unlabeled_to_decide")}})
    return rows


def main() -> None:
    t0 = time.perf_counter()
    grid = [false_pass(n, pb, pc, seed=n) for n in (50, 109, 250, 1017)
            for pb, pc in ((0.015, 0.0), (0.02, 0.0), (0.03, 0.01))]
    worst = max(((upper_miss(n, d + pc, pc), n, pc, d) for n in (30, 50, 109, 250, 400, 1017)
                 for pc in (0.0, 0.003, 0.01, 0.03) for d in (0.002, 0.005, 0.01, 0.015, 0.02, 0.05)))
    out = {"sets_per_row": SETS, "false_pass": grid,
           "worst_upper_miss": {"probability": worst[0], "images": worst[1], "c_rate": worst[2], "true_drop": worst[3],
                                "nominal": (1 - V.CONFIDENCE) / 2},
           "images_needed": images_needed(), "recipes": recipes(), "seconds": round(time.perf_counter() - t0, 1)}
    dest = ROOT / "benchmarks" / "results" / "verdict_coverage.json"
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print("| images | true drop (lose / gain) | PASS before | PASS now |\n|---|---|---|---|")
    for r in grid:
        print(f"| {r['images']} | {r['true_drop_pp']:.1f} pp ({100 * r['lose']:.1f}% / {100 * r['gain']:.1f}%) | "
              f"{r['pass_before']:.1%} | {r['pass_now']:.2%} |")
    w = out["worst_upper_miss"]
    print(f"worst exact upper-bound miss: {w['probability']:.2%} (n {w['images']}, c-rate {w['c_rate']}, "
          f"true drop {100 * w['true_drop']:.1f} pp; nominal 2.5%)")
    print("| changed | labelled for 1 pp | labelled for 0.5 pp | photos, changed share, 1 pp | 0.5 pp |\n|---|---|---|---|---|")
    for r in out["images_needed"]:
        print(f"| {r['changed_pct']:.1f}% | {r['labelled_1.0pp']} | {r['labelled_0.5pp']} | "
              f"{r['photos_changed_share_1.0pp']} | {r['photos_changed_share_0.5pp']} |")
    print("| recipe (test images) | b / c / changed | before: interval, verdict | now: interval, verdict, to decide |"
          "\n|---|---|---|---|")
    for r in out["recipes"]:
        bf, nw = r["before"], r["now"]
        need = f", {nw['images_to_decide']} labelled or {nw['unlabeled_to_decide']} more unlabeled" \
            if nw["verdict"] == "INCONCLUSIVE" else ""
        print(f"| {r['recipe']} ({r['images']}) | {r['ref_only_right']} / {r['artifact_only_right']} / {r['changed']} | "
              f"[{bf['interval_pp'][0]:+.2f}, {bf['interval_pp'][1]:+.2f}] {bf['verdict']} | "
              f"[{nw['interval_pp'][0]:+.2f}, {nw['interval_pp'][1]:+.2f}] {nw['verdict']}{need} |")
    print(f"{out['seconds']} s; wrote {dest.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
