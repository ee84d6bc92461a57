"""Verdicts that state their uncertainty: paired intervals, three-way verdicts, agreement budgets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn import verdict as V
from edgecnn.cli import main


def _pairs(b: int, c: int, same_right: int, same_wrong: int, flipped_wrong: int = 0):
    """y, artifact and reference predictions with b reference-only-right, c artifact-only-right images,
    and flipped_wrong images both get wrong with different classes (they change top-1, not accuracy)."""
    y, p, r = [], [], []
    for _ in range(b):
        y.append(0), p.append(1), r.append(0)
    for _ in range(c):
        y.append(0), r.append(1), p.append(0)
    for _ in range(same_right):
        y.append(0), p.append(0), r.append(0)
    for _ in range(same_wrong):
        y.append(0), p.append(1), r.append(1)
    for _ in range(flipped_wrong):
        y.append(0), p.append(1), r.append(2)
    return np.array(y), np.array(p), np.array(r)


def test_interval_math_on_fixed_counts():
    """Tango's score interval, checked against what it must be rather than against itself: with no change
    on n images it is +-z^2/(n+z^2) (Wilson's bound for a zero count); 0 lies in it exactly when McNemar's
    test (b - c) / sqrt(b + c) does not reject (the score test at d = 0 is McNemar's); each bound solves the
    score equation with the nuisance rate at its constrained maximum likelihood (found here numerically)."""
    from scipy.optimize import minimize_scalar
    from scipy.stats import norm
    z = norm.ppf(0.975)
    for n in (1, 50, 400):
        assert V.drop_interval(0, 0, n) == pytest.approx((-100 * z * z / (n + z * z), 100 * z * z / (n + z * z)))
    for b, c, n in ((5, 0, 100), (0, 5, 100), (3, 3, 50), (9, 2, 60), (12, 4, 1075), (2, 9, 30), (4, 0, 4)):
        lo, hi = V.drop_interval(b, c, n)
        assert lo <= 100 * (b - c) / n <= hi
        assert (lo <= 0 <= hi) == (abs(b - c) <= z * (b + c) ** 0.5), (b, c, n)
        assert V.drop_interval(c, b, n) == pytest.approx((-hi, -lo))
        for d, side in ((lo / 100, z), (hi / 100, -z)):
            if abs(d) < 1 - 1e-9:
                nll = lambda q: -(b * np.log(q + d) + c * np.log(q) + (n - b - c) * np.log(1 - 2 * q - d))  # noqa: E731
                q = minimize_scalar(nll, bounds=(max(0, -d) + 1e-12, (1 - d) / 2 - 1e-12), method="bounded",
                                    options={"xatol": 1e-13}).x
                assert (b - c - n * d) / np.sqrt(n * (2 * q + d * (1 - d))) == pytest.approx(side, abs=1e-4)
    alo, ahi = V.agreement_interval(0, 30)      # nothing changed on 30 images
    assert alo == pytest.approx(0.025 ** (1 / 30), rel=1e-9) and ahi == 1.0
    from scipy.stats import beta               # Clopper-Pearson as beta quantiles, the textbook definition
    alo, ahi = V.agreement_interval(24, 1075)
    assert alo == pytest.approx(beta.ppf(0.025, 1051, 25)) and ahi == pytest.approx(beta.ppf(0.975, 1052, 24))
    assert V.changed_upper(0, 437, 1 - 0.0125) == pytest.approx(100 * (1 - 0.0125 ** (1 / 437)))
    assert V.changed_upper(3, 500, 0.975) == pytest.approx(100 * beta.ppf(0.975, 4, 497))


def test_interval_contains_the_estimate_and_shrinks_with_images():
    widths = []
    for k in (1, 2, 4, 8):
        st = V.paired(*_pairs(3 * k, 1 * k, 100 * k, 6 * k))
        lo, hi = st.drop_ci_pp
        assert lo <= st.drop_pp <= hi
        widths.append(hi - lo)
        alo, ahi = st.agreement_ci
        assert alo <= st.agreement <= ahi
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0] / 2


def test_three_way_verdicts_and_images_to_decide():
    small = V.paired(*_pairs(1, 0, 29, 0))                       # one flip against INT8 on 30 images
    b = V.drop_budget(small, 1.0)
    assert b.verdict == "INCONCLUSIVE" and not b.passed and json.loads(b.to_json())["pass"] is False
    n = b.images_to_decide
    assert n and n > 30
    k = n / 30                                                    # at that many images, the same rates decide it
    assert V.drop_budget(V.paired(*_pairs(round(k), 0, round(29 * k), 0)), 1.0).verdict != "INCONCLUSIVE"
    assert V.drop_budget(V.paired(*_pairs(0, 0, 30, 0)), 1.0).verdict == "INCONCLUSIVE"   # 30 cannot bound 1 pp
    assert V.drop_budget(V.paired(*_pairs(0, 0, 400, 0)), 1.0).verdict == "PASS"       # nothing changed on 400
    assert V.drop_budget(V.paired(*_pairs(20, 0, 80, 0)), 1.0).verdict == "FAIL"      # 20 pp, clearly
    assert V.drop_budget(small, 1.0, point_estimate=True).verdict == "FAIL"           # the older rule
    assert V.overall(["PASS", "INCONCLUSIVE"]) == "INCONCLUSIVE" and V.overall(["INCONCLUSIVE", "FAIL"]) == "FAIL"


def test_agreement_budget_fails_when_predictions_flip_though_the_drop_is_zero():
    """The traffic-signs case: 24 of 1,075 predictions changed, cancelling out in accuracy."""
    st = V.paired(*_pairs(12, 12, 1000, 51))
    assert st.drop_pp == 0 and st.changed == 24
    assert V.drop_budget(st, 1.0).verdict == "PASS"
    a = V.agreement_budget(st, 99.0)
    assert a.verdict == "FAIL" and a.interval[1] < 99.0
    assert V.agreement_budget(st, 97.0).verdict == "INCONCLUSIVE"
    assert V.agreement_budget(V.paired(*_pairs(0, 0, 300, 0)), 97.0).verdict == "PASS"


def test_pass_fail_and_inconclusive_exit_statuses(exported_run, tmp_path):
    """On a real 30-image test split: the float TFLite vs its reference passes; a model with its head's
    classes rolled fails a 1 pp budget; the same model against a budget at its own drop is undecidable."""
    import keras

    from edgecnn.core import contract as C
    from edgecnn.core.artifact import tflite_with_contract
    from edgecnn.export.tflite import convert
    data = json.loads((exported_run / "metrics.json").read_text())["data"]["root"] + "/test"
    ref = exported_run / "export" / "model_fp32.tflite"
    quick = ["--runs", "5", "--warmup", "0", "--min-seconds", "0", "--data", data, "--reference", str(ref)]

    def bench(model, *extra):
        out = tmp_path / "b.json"
        r = CliRunner().invoke(main, ["bench", str(model), *quick, "--json", str(out), *extra])
        return r, json.loads(out.read_text())

    r, doc = bench(ref, "--max-drop", "1")         # nothing changes, but 30 images cannot bound 1 pp
    assert r.exit_code == 3 and doc["verdict"] == "INCONCLUSIVE", r.output
    r, doc = bench(ref, "--max-drop", "12")        # they bound z^2 / (30 + z^2) = 11.35 pp
    assert r.exit_code == 0 and doc["verdict"] == "PASS", r.output
    m = keras.saving.load_model(str(exported_run / "model.keras"))
    head = m.get_layer("predictions")
    w, b = head.get_weights()
    head.set_weights([np.roll(w, 1, axis=1), np.roll(b, 1)])
    broken = tmp_path / "rolled.tflite"
    broken.write_bytes(tflite_with_contract(convert(m, "fp32"), C.load(exported_run / "contract.json")))
    r, doc = bench(broken, "--max-drop", "1")
    assert r.exit_code == 1 and doc["verdict"] == "FAIL", r.output
    drop = doc["devices"][0]["records"][0]["accuracy_drop_pp"]
    r, doc = bench(broken, "--max-drop", f"{drop - 1:.2f}")
    budget = doc["devices"][0]["records"][0]["budgets"]["accuracy_drop_pp"]
    assert r.exit_code == 3 and budget["verdict"] == "INCONCLUSIVE" and budget["images_to_decide"] > 30, r.output
    assert "INCONCLUSIVE" in r.output and "images would decide it" in r.output
    r, doc = bench(broken, "--max-drop", f"{drop - 1:.2f}", "--point-estimate")
    assert r.exit_code == 1 and doc["judged_on"] == "point estimates"
    r, doc = bench(broken, "--min-agreement", "90")
    assert r.exit_code == 1 and doc["devices"][0]["records"][0]["budgets"]["agreement_pct"]["verdict"] == "FAIL"
