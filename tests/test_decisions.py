"""The code that decides, on hand-built inputs whose right answers are known: accuracy against a
reference, budgets and the verdict about what to ship, calibration lists, the emulated device's
agreement and estimate, and the float-fallback search. No training and no conversion, so these run in
seconds and a mutation tool can run them once per mutant (benchmarks/mutation_score.py)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn import bench as B
from edgecnn import evaluate as E
from edgecnn import verdict as V
from edgecnn.core.contract import Contract
from edgecnn.core.errors import BudgetError, InconclusiveError, InputError
from edgecnn.core.images import Sample
from edgecnn.core.protocol import AgentResult, Evaluation, Latency, VsBaseline
from edgecnn.devices import emulated as EM
from edgecnn.export import calibration as CAL
from edgecnn.export.budget import check_budget, decision, fallback_steps, search_fallback
from edgecnn.export.tflite import rank_sensitivity
from edgecnn.results import (CalibrationUsed, ClassResult, ExportBudget, ExportRecord, ExportReport, Flip, Judged,
                             KerasReference, Paired, WorstClass)
from edgecnn.rundir import Budgets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_helpers import entry, judged, latency, one_device, record  # noqa: E402

LABELS = ["a", "b", "c", "d"]          # "d" has no test image
#             0  1  2  3  4  5
Y = np.array([0, 0, 1, 1, 2, 2])
REF = np.array([0, 0, 1, 0, 2, 2])     # 5 of 6 right
PRED = np.array([0, 1, 1, 1, 1, 0])    # 3 of 6 right
PATHS = [f"img{i}.jpg" for i in range(6)]




def _written(result) -> dict:
    """A result as it is written to bench.json or export_report.json (absent optional keys left out)."""
    return json.loads(result.to_json())


# ----------------------------------------------------------------------------------- evaluate
def test_accuracy_and_per_class_accuracy():
    assert E.accuracy(Y, PRED) == pytest.approx(0.5) and E.accuracy(Y, REF) == pytest.approx(5 / 6)
    assert E.accuracy([], []) is None
    c = E.versus(Y, PRED, REF, LABELS, PATHS)
    assert c.n == 6 and c.accuracy == pytest.approx(0.5)
    assert {k: (v.n, v.accuracy) for k, v in c.per_class.items()} == {"a": (2, 0.5), "b": (2, 1.0), "c": (2, 0.0)}
    # no labelled images: the paired figures alone, nothing per class, no flips, no worst class
    none = E.versus([], [], [], LABELS, [])
    assert none.n == 0 and none.accuracy is None and none.paired.n == 0
    assert none.accuracy_drop_pp is None and none.per_class is None and none.flips is None and none.worst_class is None


def _class(n, acc, ref_acc, drop, b, c, changed) -> ClassResult:
    """One class's expected result: b/c the images only the reference/the model gets right."""
    lo, hi = V.drop_interval(b, c, n)
    alo, ahi = V.agreement_interval(changed, n)
    return ClassResult(n=n, accuracy=acc, reference_accuracy=ref_acc, drop_pp=drop,
                       drop_ci_pp=(round(lo, 4), round(hi, 4)), agreement=(n - changed) / n,
                       agreement_ci=(round(alo, 6), round(ahi, 6)))


def test_versus_a_reference_per_class_worst_class_and_flips():
    c = E.versus(Y, PRED, REF, LABELS, PATHS)
    assert c.accuracy == pytest.approx(3 / 6) and c.reference_accuracy == pytest.approx(5 / 6)
    assert c.accuracy_drop_pp == pytest.approx(33.3333)          # positive: the artifact is worse
    assert c.top1_agreement == pytest.approx(2 / 6)              # images 0 and 2 kept their prediction
    pc = c.per_class
    assert pc["a"] == _class(2, 0.5, 1.0, 50.0, b=1, c=0, changed=1)
    assert pc["b"] == _class(2, 1.0, 0.5, -50.0, b=0, c=1, changed=1)
    assert pc["c"] == _class(2, 0.0, 1.0, 100.0, b=2, c=0, changed=2)
    assert "d" not in pc
    assert c.worst_class == WorstClass(label="c", drop_pp=100.0)
    assert c.flips == [
        Flip(path="img1.jpg", label="a", reference="a", prediction="b"),
        Flip(path="img3.jpg", label="b", reference="a", prediction="b"),
        Flip(path="img4.jpg", label="c", reference="c", prediction="b"),
        Flip(path="img5.jpg", label="c", reference="c", prediction="a")]
    assert c.paired == V.paired(Y, PRED, REF)


def test_versus_of_identical_predictions_drops_nothing():
    c = E.versus(Y, REF, REF, LABELS, PATHS)
    assert c.accuracy_drop_pp == 0 and c.top1_agreement == 1.0 and c.flips == []
    assert all(v.drop_pp == 0 and v.agreement == 1.0 for v in c.per_class.values())


# ----------------------------------------------------------------------------------- verdict
@pytest.mark.parametrize("interval,limit,upper,lower", [
    ((0.0, 1.0), 1.0, "PASS", "INCONCLUSIVE"),  # the upper end on the limit passes 'no more than', may reach 'at least'
    ((1.0, 2.0), 1.0, "INCONCLUSIVE", "PASS"),  # the lower end on the limit: not beyond it, and 'at least'
    ((1.01, 2.0), 1.0, "FAIL", "PASS"),
    ((-1.0, 0.99), 1.0, "PASS", "FAIL"),
    ((0.5, 1.5), 1.0, "INCONCLUSIVE", "INCONCLUSIVE"),
])
def test_judging_an_interval_at_its_edges(interval, limit, upper, lower):
    assert V.judge_upper(interval, limit) == upper
    assert V.judge_lower(interval, limit) == lower


def test_overall_verdict_orders_fail_before_inconclusive_before_pass():
    assert V.overall([]) == "PASS" and V.overall(["PASS", "PASS"]) == "PASS"
    assert V.overall(["INCONCLUSIVE", "PASS"]) == "INCONCLUSIVE"
    assert V.overall(["PASS", "FAIL", "INCONCLUSIVE"]) == "FAIL"


def test_paired_counts_and_drop():
    st = V.paired(Y, PRED, REF)
    assert (st.n, st.ref_only_right, st.artifact_only_right, st.changed) == (6, 3, 1, 4)
    assert st.drop_pp == pytest.approx(100 * 2 / 6)
    assert st.agreement == pytest.approx(2 / 6)
    lo, hi = st.drop_ci_pp
    assert lo < 0 < st.drop_pp < hi < 100                      # unconditional: not bounded by the 4 changes seen
    assert (lo, hi) == pytest.approx(V.drop_interval(3, 1, 6), abs=1e-4)
    assert st.confidence == 0.95


def test_budget_records_say_what_they_were_judged_on():
    st = V.paired(Y, PRED, REF)
    d = V.drop_budget(st, 1.0)
    assert d.verdict == "INCONCLUSIVE" and d.judged_on == "95% interval" and d.limit == 1.0
    assert d.value == pytest.approx(33.3333) and d.interval == st.drop_ci_pp
    assert d.images_to_decide > 6
    p = V.drop_budget(st, 40.0, point_estimate=True)
    assert p.verdict == "PASS" and p.passed and p.judged_on == "point estimate" and p.images_to_decide is None
    assert "images_to_decide" not in _written(p)
    assert V.drop_budget(st, 33.0, point_estimate=True).verdict == "FAIL"
    a = V.agreement_budget(st, 50.0, point_estimate=True)
    assert a.verdict == "FAIL" and a.value == pytest.approx(33.3333) and a.limit == 50.0
    assert V.agreement_budget(st, 30.0, point_estimate=True).verdict == "PASS"
    ai = V.agreement_budget(st, 50.0)
    assert ai.verdict == "INCONCLUSIVE" and ai.interval == tuple(round(100 * v, 4) for v in st.agreement_ci)
    assert ai.images_to_decide > 6


def _paired(n, b, c, changed, drop_pp, agreement) -> Paired:
    """Paired statistics by hand (intervals from the counts)."""
    lo, hi = V.drop_interval(b, c, n)
    return Paired(n=n, ref_only_right=b, artifact_only_right=c, changed=changed, drop_pp=drop_pp,
                  drop_ci_pp=(lo, hi), agreement=agreement, agreement_ci=V.agreement_interval(changed, n),
                  confidence=0.95)


def test_images_to_decide_is_none_when_nothing_can_decide():
    on_limit = _paired(100, 2, 1, changed=3, drop_pp=1.0, agreement=0.97)
    assert V.images_to_decide_drop(on_limit, 1.0) is None
    assert V.images_to_decide_drop(_paired(0, 0, 0, changed=0, drop_pp=0.0, agreement=1.0), 1.0) is None
    assert V.images_to_decide_agreement(_paired(100, 3, 0, changed=3, drop_pp=3.0, agreement=0.97), 0.97) is None
    n = V.images_to_decide_agreement(_paired(100, 1, 0, changed=1, drop_pp=1.0, agreement=0.99), 0.97)
    assert n is not None and n > 100
    k = n / 100                           # at that size the same rate decides it, one step below does not
    assert V.judge_lower(V.agreement_interval(round(k), n), 0.97) == "PASS"


# ----------------------------------------------------------------------------------- bench budgets
def _result(top1, *, latency=None, vs=None) -> AgentResult:
    return AgentResult(artifact="m.tflite", format="tflite", size_mb=2.0, runtime="litert", runtime_version="x",
                       platform={}, tensorflow_imported=False, contract=Contract(input_size=(96, 96), labels=LABELS),
                       latency_ms=latency, evaluation=Evaluation(paths=tuple(PATHS), y_true=tuple(int(v) for v in Y),
                                                                 top1=tuple(int(v) for v in top1)))


def test_versus_reference_adds_paired_per_class_intervals():
    out = B.versus_reference(Path("m.tflite"), _result(PRED), _result(REF))
    assert out.accuracy_drop_pp == pytest.approx(33.3333) and out.worst_class.label == "c"
    assert out.paired.ref_only_right == 3 and len(out.flips) == 4
    a = out.per_class["a"]
    assert a.agreement == pytest.approx(0.5) and a.drop_ci_pp == V.paired([0, 0], [0, 1], [0, 0]).drop_ci_pp
    assert B.versus_reference(Path("m.tflite"), _result(PRED), None) is None
    other = AgentResult(**{**_result(REF).__dict__, "evaluation": Evaluation(
        paths=tuple(reversed(PATHS)), y_true=tuple(int(v) for v in Y), top1=tuple(int(v) for v in REF))})
    with pytest.raises(InputError, match="different images"):
        B.versus_reference(Path("m.tflite"), _result(PRED), other)


def _plan(**budgets) -> B.Plan:
    b = Budgets(size_mb=budgets.pop("size_mb", 20.0), max_drop_pp=budgets.pop("max_drop_pp", None),
                max_p90_ms=budgets.pop("max_p90_ms", None), source="test",
                min_agreement_pct=budgets.pop("min_agreement_pct", None))
    return B.Plan(artifacts=[], run=None, budgets=b, reference=None, notes=[], **budgets)


def _rec(size=2.0, p90=5.0, paired=None, ratio=None):
    return record(size_mb=size, latency_ms=latency(p50=p90 / 2, p90=p90, p99=p90), paired=paired,
                  vs_baseline=VsBaseline(p50_ratio=ratio, p90_ratio=ratio, method="turns") if ratio else None)


def test_each_budget_is_judged_only_when_set():
    st = V.paired(Y, REF, REF)                                             # nothing changed
    assert set(B.judge_budgets(_rec(paired=st), _plan())) == {"size_mb"}
    got = B.judge_budgets(_rec(paired=st, ratio=1.1), _plan(max_drop_pp=40.0, min_agreement_pct=0.0, max_p90_ms=10.0,
                                                            max_slowdown_pct=20.0))
    assert set(got) == {"size_mb", "accuracy_drop_pp", "agreement_pct", "p90_ms", "slowdown_pct"}
    assert all(b.verdict == "PASS" for b in got.values())
    assert got["slowdown_pct"].value == pytest.approx(10.0)


@pytest.mark.parametrize("plan,rec,failing", [
    (dict(size_mb=1.0), dict(size=2.0), "size_mb"),
    (dict(size_mb=2.0), dict(size=2.0), None),                     # on the limit holds
    (dict(max_p90_ms=4.9), dict(p90=5.0), "p90_ms"),
    (dict(max_p90_ms=5.0), dict(p90=5.0), None),
    (dict(max_slowdown_pct=5.0), dict(ratio=1.06), "slowdown_pct"),
    (dict(max_slowdown_pct=6.5), dict(ratio=1.06), None),
])
def test_a_budget_fails_only_beyond_its_limit(plan, rec, failing):
    got = B.judge_budgets(_rec(**rec), _plan(**plan))
    assert [k for k, b in got.items() if b.verdict == "FAIL"] == ([failing] if failing else [])
    assert all(b.passed == (b.verdict == "PASS") for b in got.values())


def test_accuracy_budgets_use_the_paired_statistics():
    worse = V.paired(*([0] * 100, [1] * 30 + [0] * 70, [0] * 100))           # 30 pp worse, clearly
    got = B.judge_budgets(_rec(paired=worse), _plan(max_drop_pp=1.0, min_agreement_pct=99.0))
    assert got["accuracy_drop_pp"].verdict == "FAIL" and got["agreement_pct"].verdict == "FAIL"
    est = B.judge_budgets(_rec(paired=V.paired([0] * 10, [0] * 9 + [1], [0] * 10)),
                          _plan(max_drop_pp=1.0, point_estimate=True))
    assert est["accuracy_drop_pp"].verdict == "FAIL" and est["accuracy_drop_pp"].judged_on == "point estimate"


def _records(*records):
    """(name, precision, MB, {budget: verdict}): records at 90% accuracy, 0.5 pp below float, p50 3 ms; each
    budget judged 1.5 against a limit of 1.0."""
    return [record(name, precision=precision, size_mb=size, latency_ms=latency(p50=3.0),
                   budgets={k: judged(v, 1.5, 1.0) for k, v in verdicts.items()})
            for name, precision, size, verdicts in records]


def _doc(*records):
    return one_device(*_records(*records))


def _entry(*records):
    """The one device of a bench document of these records: what choose_deployable reads."""
    return entry(*_records(*records))


def test_the_smallest_passing_int8_model_is_deployed_and_others_are_rejected_with_reasons():
    doc = _doc(("model_fp32.tflite", "fp32", 9.0, {"size_mb": "PASS"}),
               ("model_int8.tflite", "int8", 2.7, {"size_mb": "PASS", "accuracy_drop_pp": "FAIL"}),
               ("model_int8_mixed.tflite", "int8-mixed", 5.2, {"size_mb": "PASS", "accuracy_drop_pp": "PASS"}),
               ("big_int8.tflite", "int8", 6.0, {"size_mb": "PASS"}))
    d = V.choose_deployable(doc.devices[0])
    assert d.record.artifact == "model_int8_mixed.tflite" and d.verdict == "PASS" and d.exit_code == 0
    assert d.rejected == ["model_int8.tflite: accuracy_drop_pp FAIL"]
    line = d.line(Path("runs/x"))
    assert line.startswith("verdict: PASS: deploy model_int8_mixed.tflite (5.20 MB") and "bundle" in line


def test_an_undecided_model_is_shipped_only_when_none_passes():
    doc = _doc(("a_int8.tflite", "int8", 2.0, {"accuracy_drop_pp": "INCONCLUSIVE"}),
               ("b_int8.tflite", "int8", 1.0, {"accuracy_drop_pp": "FAIL"}))
    d = V.choose_deployable(doc.devices[0])
    assert d.record.artifact == "a_int8.tflite" and d.verdict == "INCONCLUSIVE" and d.exit_code == 3
    assert d.line(Path("r")).startswith("verdict: INCONCLUSIVE: a_int8.tflite")
    none = V.choose_deployable(_entry(("b_int8.tflite", "int8", 1.0, {"size_mb": "FAIL"}),
                                    ("fp32.tflite", "fp32", 1.0, {"size_mb": "PASS"})))
    assert none.record is None and none.verdict == "FAIL" and none.exit_code == 1
    assert none.line(Path("r")).startswith("verdict: FAIL: no INT8 model")
    assert none.rejected == ["b_int8.tflite: size_mb FAIL"]


def test_check_raises_on_fail_before_inconclusive_and_names_the_budget():
    B.check(_doc(("m.tflite", "int8", 1.0, {"size_mb": "PASS"})))
    with pytest.raises(InconclusiveError, match="m.tflite: accuracy_drop_pp 1.50 vs 1.0"):
        B.check(_doc(("m.tflite", "int8", 1.0, {"accuracy_drop_pp": "INCONCLUSIVE"})))
    with pytest.raises(BudgetError, match="n.tflite: size_mb 1.50 > 1.0"):
        B.check(_doc(("m.tflite", "int8", 1.0, {"accuracy_drop_pp": "INCONCLUSIVE"}),
                     ("n.tflite", "int8", 1.0, {"size_mb": "FAIL"})))
    with pytest.raises(BudgetError, match="agreement_pct 1.50 < 1.0"):
        B.check(_doc(("m.tflite", "int8", 1.0, {"agreement_pct": "FAIL"})))


def _report(verdict: str | None, decision: str = "why", run: str = "r") -> ExportReport:
    """An export report whose INT8 budget has this verdict (None: no budget)."""
    budget = None if verdict is None else ExportBudget(
        max_drop_pp=1.0, source="test", int8_drop_pp=1.5, interval_pp=(0.25, 2.75), judged_on="95% interval",
        verdict=verdict, images_to_decide=None, unlabeled_to_decide=None, fallback=None, decision=decision,
        passed=verdict == "PASS")
    return ExportReport(run=run, recipe="products", provenance={}, eval_data="d", eval_images=120, unlabeled=None,
                        skipped=[], calibration=CalibrationUsed(source=None, list=None, images=0),
                        reference=KerasReference(artifact="model.keras", format="keras", accuracy=0.9, sha256="0" * 64),
                        artifacts=[], budget=budget, tensorrt=None, export_s=1.0)


def test_export_budget_check_maps_verdicts_to_exit_statuses():
    check_budget(_report(None))
    check_budget(_report("PASS"))
    with pytest.raises(InconclusiveError, match="INT8 accuracy budget: why"):
        check_budget(_report("INCONCLUSIVE"))
    with pytest.raises(BudgetError, match="kept in r/export"):
        check_budget(_report("FAIL"))


def test_repeated_latency_runs_combine_to_medians_with_their_spread():
    runs = [Latency(p50=p, p90=p + 1, p99=p + 2, mean=p, min=p - 1, max=p + 3, n=10) for p in (2.0, 4.0, 3.0)]
    one = B.combine_latency(runs[:1])
    assert one is runs[0]
    c = B.combine_latency(runs)
    assert (c.p50, c.p90, c.p99, c.min, c.max, c.n, c.repeats) == (3.0, 4.0, 5.0, 1.0, 7.0, 30, 3)
    assert c.p50_per_repeat == (2.0, 4.0, 3.0) and c.p50_spread_pct == pytest.approx(100 * 2 / 3, abs=0.01)


def test_repeated_baseline_ratios_combine_to_their_median():
    from edgecnn.core.protocol import BaselineTiming
    lat = Latency(p50=1.0, p90=1.0, p99=1.0, mean=1.0, min=1.0, max=1.0, n=1)
    res = [AgentResult(**{**_result(REF).__dict__, "latency_ms": lat,
                          "baseline": BaselineTiming(artifact="b", format="tflite", size_mb=1.0, runtime="litert", latency_ms=lat),
                          "vs_baseline": VsBaseline(p50_ratio=r, p90_ratio=r + 1, method="turns")})
           for r in (1.0, 3.0, 2.0)]
    c = B.combine_runs(res[0], res)
    assert c.vs_baseline.p50_ratio == 2.0 and c.vs_baseline.p90_ratio == 3.0
    assert c.vs_baseline.p50_ratio_per_repeat == (1.0, 3.0, 2.0) and c.baseline.latency_ms.repeats == 3


# ----------------------------------------------------------------------------------- calibration
def _files(root, per_class: dict[str, int]) -> list[Sample]:
    out = []
    for label, (name, n) in enumerate(per_class.items()):
        d = root / "train" / name
        d.mkdir(parents=True)
        for i in range(n):
            p = d / f"{i}.jpg"
            p.write_bytes(f"{name}{i}".encode())
            out.append(Sample(path=p, label=label, load_path=p))
    return out


def test_stratified_sample_spreads_over_classes_and_is_seeded(tmp_path):
    samples = _files(tmp_path, {"a": 10, "b": 10, "c": 2})
    s = CAL.stratified_sample(samples, 9, seed=1)
    assert [x.label for x in s].count(2) == 2 and len(s) == 9
    assert sorted([x.label for x in s].count(k) for k in (0, 1)) == [3, 4]   # 7 left for two classes, in turns
    assert s == CAL.stratified_sample(samples, 9, seed=1) and s == sorted(s, key=lambda x: (x.label, str(x.path)))
    assert CAL.stratified_sample(samples, 9, seed=2) != s
    assert len(CAL.stratified_sample(samples, 100, seed=1)) == 22


def test_a_recorded_list_is_read_back_and_a_changed_image_is_refused(tmp_path):
    samples = _files(tmp_path, {"a": 3, "b": 3})
    lst = tmp_path / "calib.txt"
    CAL.write_list(lst, tmp_path, samples[:4], "products", 7)
    text = lst.read_text()
    assert text.startswith("# edgecnn calibration set: recipe=products n=4 seed=7")
    assert CAL.read_list(lst, tmp_path) == [s.path for s in samples[:4]]
    assert CAL.list_matches(lst, tmp_path) and not CAL.list_matches(lst, tmp_path / "train")
    assert not CAL.list_matches(tmp_path / "missing.txt", tmp_path)
    samples[1].path.write_bytes(b"changed")
    with pytest.raises(InputError, match=r"calib.txt:5: train/a/1.jpg changed"):
        CAL.read_list(lst, tmp_path)
    lst.write_text("# only comments\n\n")
    with pytest.raises(InputError, match="lists no images"):
        CAL.read_list(lst, tmp_path)
    lst.write_text("train/a/0.jpg\n")
    with pytest.raises(InputError, match="expected 'path<TAB>sha256'"):
        CAL.read_list(lst, tmp_path)
    lst.write_text("train/a/9.jpg\tabc\n")
    with pytest.raises(InputError, match="not under the data root"):
        CAL.read_list(lst, tmp_path)


def _resolve(tmp_path, samples, option=None, run_list=None, size=4, default=None):
    logs = []
    got = CAL.resolve(option, default_list=default or tmp_path / "calibration" / "products.txt", data_root=tmp_path,
                      train_samples=samples, size=size, recipe="products", seed=3,
                      run_list=run_list or tmp_path / "run-calibration.txt", log=logs.append)
    return got, logs


def test_calibration_list_is_recorded_once_then_reused(tmp_path):
    samples = _files(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "calibration").mkdir()
    (paths, source, lst), logs = _resolve(tmp_path, samples)
    assert source.startswith("new list") and lst.is_file() and len(paths) == 4 and "recorded 4" in logs[0]
    assert lst == tmp_path / "run-calibration.txt" and not (tmp_path / "calibration" / "products.txt").exists()
    before = lst.read_bytes()
    (again, source2, lst2), _ = _resolve(tmp_path, samples[::-1])       # another order: the list wins
    assert source2.endswith("(reused)") and again == paths and lst2 == lst and lst.read_bytes() == before


def test_the_recipe_list_is_reused_and_a_new_sample_goes_to_the_run(tmp_path):
    samples = _files(tmp_path, {"a": 4, "b": 4})
    default = tmp_path / "calibration" / "products.txt"
    default.parent.mkdir()
    CAL.write_list(default, tmp_path, samples[:4], "products", 1)
    (paths, source, lst), _ = _resolve(tmp_path, samples, default=default)
    assert lst == default and source == f"recorded list {default} (reused)" and paths == [s.path for s in samples[:4]]
    assert not (tmp_path / "run-calibration.txt").exists()


def test_a_list_of_another_dataset_is_never_overwritten(tmp_path):
    other = tmp_path / "other"
    other_samples = _files(other, {"x": 3})
    (tmp_path / "calibration").mkdir()
    default = tmp_path / "calibration" / "products.txt"
    CAL.write_list(default, other, other_samples, "products", 1)
    before = default.read_bytes()
    mine = _files(tmp_path / "mine", {"a": 3, "b": 3})
    run_list = tmp_path / "run" / "calibration.txt"
    run_list.parent.mkdir()
    logs = []
    paths, source, lst = CAL.resolve(None, default_list=default, data_root=tmp_path / "mine", train_samples=mine,
                                     size=4, recipe="products", seed=3, run_list=run_list, log=logs.append)
    assert logs[0] == "calibration: the recorded list products.txt is for other data; sampling anew"
    assert default.read_bytes() == before and lst == run_list and run_list.is_file()
    assert all(str(p).startswith(str(tmp_path / "mine")) for p in paths)


def test_a_short_recorded_list_is_not_reused_for_a_larger_sample(tmp_path):
    samples = _files(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "calibration").mkdir()
    _resolve(tmp_path, samples, size=2)
    (paths, source, _), _ = _resolve(tmp_path, samples, size=6)
    assert source.startswith("new list") and len(paths) == 6


def test_calibration_from_a_folder_or_an_explicit_list(tmp_path):
    samples = _files(tmp_path, {"a": 3, "b": 3})
    (paths, source, lst), _ = _resolve(tmp_path, None, option=tmp_path / "train", size=5)
    assert len(paths) == 5 and lst is None and source.startswith(f"folder {tmp_path / 'train'} (5 images)")
    explicit = tmp_path / "mine.txt"
    CAL.write_list(explicit, tmp_path, samples[:2], "products", 0)
    (paths, source, lst), _ = _resolve(tmp_path, None, option=explicit)
    assert paths == [s.path for s in samples[:2]] and lst == explicit
    with pytest.raises(InputError, match="no such file or folder"):
        _resolve(tmp_path, None, option=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        _resolve(tmp_path, None, option=tmp_path / "empty")
    with pytest.raises(InputError, match="no calibration data"):
        _resolve(tmp_path, [], default=tmp_path / "none.txt", run_list=tmp_path / "none-either.txt")


# ----------------------------------------------------------------------------------- emulated device
def test_agreement_compares_the_two_score_arrays():
    host = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    same = EM.agreement(host, host.copy(), integer_model=False)
    assert same == {"images": 3, "top1_agreement": 1.0, "max_abs_diff": 0.0, "bit_exact": True, "int8": False,
                    "values_differing": 0, "values": 6}
    emu = host.copy()
    emu[2] = [0.4, 0.6]                                                # one top-1 flips
    emu[0, 0] += 0.01
    got = EM.agreement(host, emu, integer_model=True)
    assert got["top1_agreement"] == pytest.approx(2 / 3) and not got["bit_exact"] and got["int8"]
    assert got["max_abs_diff"] == pytest.approx(0.2, abs=1e-6)
    assert got["values_differing"] == 3 and "max_diff_lsb" not in got
    lsb = EM.agreement(host, emu, integer_model=True, output_scale=0.01)    # an INT8 output's scale
    assert lsb["max_diff_lsb"] == 20
    assert "shapes differ" in EM.agreement(host, host[:2], False)["error"]


def test_estimate_scales_by_the_anchor_of_the_same_precision():
    profile = {"name": "p", "device": "phone", "anchors": [
        {"model": "q.tflite", "precision": "int8", "ms": 12.0, "source": "table"},
        {"model": "f.tflite", "precision": "float", "ms": 18.0, "source": "table"}]}
    cand = Latency(p50=2.0, p90=3.0, p99=4.0, mean=2.5, min=1.0, max=5.0, n=10)
    lat, how = EM.estimate(profile, cand, {"q.tflite": 4.0, "f.tflite": 3.0}, "int8")
    assert how["anchor"] == "q.tflite" and how["scale"] == 3.0 and lat.p50 == 6.0 and lat.p99 == 12.0
    assert how["uncertainty_pct"] == pytest.approx(100.0)               # the float anchor says 6x, not 3x
    lat, how = EM.estimate(profile, cand, {"q.tflite": 4.0, "f.tflite": 3.0}, "float")
    assert how["anchor"] == "f.tflite" and how["scale"] == 6.0 and how["uncertainty_pct"] == pytest.approx(50.0)
    lat, how = EM.estimate(profile, cand, {"f.tflite": 3.0}, "int8")   # only the other precision was timed
    assert how["anchor"] == "f.tflite" and how["uncertainty_pct"] is None and "single anchor" in how["note"]
    assert EM.estimate(profile, cand, {}, "int8") is None


# ----------------------------------------------------------------------------------- float fallback
def test_sensitivity_ranks_ops_by_error_in_quantisation_steps():
    rows = [{"tensor_name": "t1", "op_name": "CONV_2D", "scale": "0.5", "mean_squared_error": "1.0"},   # 2 steps
            {"tensor_name": "t2", "op_name": "ADD", "scale": "0.1", "mean_squared_error": "0.04"},      # 2 steps
            {"tensor_name": "t3", "op_name": "MEAN", "scale": "0.1", "mean_squared_error": "0.25"},     # 5 steps
            {"tensor_name": "t4", "op_name": "SOFTMAX", "scale": "", "mean_squared_error": "0"}]         # 0
    r = rank_sensitivity(rows)
    assert [d["tensor"] for d in r] == ["t3", "t1", "t2", "t4"]
    assert [round(d["rmse_per_step"], 6) for d in r] == [5.0, 2.0, 2.0, 0.0] and r[0]["op"] == "MEAN"


def test_fallback_steps_double_up_to_the_ranked_ops():
    assert fallback_steps(10, 8) == [1, 2, 4, 8]
    assert fallback_steps(8, 8) == [1, 2, 4, 8]
    assert fallback_steps(100, 3) == [1, 2, 4]
    assert fallback_steps(0, 5) == []


def _fake_build(passes_at: int | None):
    built = []

    def build(kept):
        built.append([d["tensor"] for d in kept])
        k = len(kept)
        return ExportRecord(artifact="model_int8_mixed.tflite", format="tflite", precision="int8-mixed",
                            size_mb=2.0 + k, sha256="0" * 64, provenance={}, export_s=0.0, n=10, accuracy=None,
                            runtime={}, float_ops=[{"tensor": d["tensor"]} for d in kept], accuracy_drop_pp=4.0 / k)

    def judge(rec):
        ok = passes_at is not None and len(rec.float_ops) >= passes_at
        return Judged.of(1.0, rec.accuracy_drop_pp, "PASS" if ok else "FAIL", interval=(0.0, 1.0))
    return built, build, judge


def _judged_as(verdicts):
    """A judge that gives these verdicts in turn (interval [0, 1])."""
    verdicts = iter(verdicts)
    return lambda rec: Judged.of(1.0, rec.accuracy_drop_pp, next(verdicts), interval=(0.0, 1.0))


def test_fallback_keeps_the_most_sensitive_ops_in_float_first_and_stops_at_the_first_pass():
    ranking = [{"tensor": f"t{i}", "op": "CONV_2D", "rmse_per_step": 10.0 - i} for i in range(10)]
    built, build, judge = _fake_build(passes_at=2)
    fb = search_fallback(ranking, [1, 2, 4, 8], build, judge)
    assert built == [["t0"], ["t0", "t1"]]                            # most sensitive first; stops on PASS
    assert fb.passed and fb.verdict == "PASS" and fb.float_ops == [{"tensor": "t0"}, {"tensor": "t1"}]
    assert [s.verdict for s in fb.steps] == ["FAIL", "PASS"] and fb.steps[1].float_ops == 2
    assert fb.decision.startswith("2 op(s) kept in float: drop +2.00 pp")


def test_a_fallback_that_never_holds_reports_its_last_step():
    ranking = [{"tensor": f"t{i}", "op": "ADD", "rmse_per_step": 1.0} for i in range(4)]
    built, build, judge = _fake_build(passes_at=None)
    fb = search_fallback(ranking, [1, 2, 4], build, judge)
    assert len(built) == 3 and not fb.passed and fb.verdict == "FAIL" and len(fb.float_ops) == 4
    assert fb.decision == "3 step(s) tried, last FAIL"
    empty = search_fallback([], [], build, judge)
    assert empty.artifact is None and empty.decision == "no step possible" and empty.verdict == "FAIL"


# ----------------------------------------------------------------------------------- exact records
# bench.json and export_report.json are read by people and programs: their fields are checked whole.
def test_paired_record_in_full():
    y, p, r = [0] * 7, [0, 0, 0, 1, 1, 0, 2], [0, 0, 1, 0, 0, 0, 0]     # b=3, c=1, changed 4 of 7
    lo, hi = V.drop_interval(3, 1, 7)
    alo, ahi = V.agreement_interval(4, 7)
    assert _written(V.paired(y, p, r)) == {"n": 7, "ref_only_right": 3, "artifact_only_right": 1, "changed": 4,
                                           "drop_pp": 200.0 / 7, "drop_ci_pp": [round(lo, 4), round(hi, 4)],
                                           "agreement": 3 / 7, "agreement_ci": [round(alo, 6), round(ahi, 6)],
                                           "confidence": 0.95}
    assert V.paired([], [], []).drop_pp == 0.0 and V.paired([], [], []).agreement == 1.0


def test_intervals_with_no_images_or_no_discordant_images():
    assert V.drop_interval(0, 0, 0) == (-100.0, 100.0)
    assert V.drop_interval(0, 0, 1) == pytest.approx((-79.3451, 79.3451), abs=1e-4)   # +-z^2 / (1 + z^2): one image
    assert V.agreement_interval(0, 0) == (0.0, 1.0)
    lo, hi = V.agreement_interval(0, 1)            # one image, unchanged: Clopper-Pearson [0.025, 1]
    assert lo == pytest.approx(0.025) and hi == 1.0


def test_budget_records_in_full():
    st = V.paired([0] * 7, [0, 0, 0, 1, 1, 0, 2], [0, 0, 1, 0, 0, 0, 0])
    assert _written(V.drop_budget(st, 80.0)) == {"limit": 80.0, "value": round(200 / 7, 4),
                                                 "interval": list(st.drop_ci_pp), "verdict": "PASS", "pass": True,
                                                 "judged_on": "95% interval"}
    a = V.agreement_budget(st, 3 / 7 * 100, point_estimate=True)       # exactly on the limit: 'at least' holds
    assert _written(a) == {"limit": 3 / 7 * 100, "value": round(300 / 7, 4),
                           "interval": [round(100 * v, 4) for v in st.agreement_ci],
                           "verdict": "PASS", "pass": True, "judged_on": "point estimate"}


def test_images_to_decide_is_the_first_scale_that_decides():
    checked = 0
    for b, c in ((3, 1), (2, 2), (5, 2)):
        st = V.paired(*([0] * 200, [1] * b + [0] * c + [0] * (200 - b - c), [0] * b + [1] * c + [0] * (200 - b - c)))
        limit = 0.25 if b == c else 0.5
        if V.drop_budget(st, limit).verdict != "INCONCLUSIVE":
            continue
        n = V.images_to_decide_drop(st, limit)
        assert n is not None, (b, c)
        k = n / 200
        decided = lambda k: V.judge_upper(V.drop_interval(round(b * k), round(c * k), round(200 * k)), limit) != "INCONCLUSIVE"  # noqa: E731
        assert decided(k) and not decided(k / 1.25), (b, c, n)
        checked += 1
    assert checked == 3


def test_estimate_record_in_full():
    profile = {"name": "p", "device": "phone", "anchors": [
        {"model": "q.tflite", "precision": "int8", "ms": 12.0, "source": "table q"},
        {"model": "f.tflite", "precision": "float", "ms": 18.0, "source": "table f"}]}
    cand = Latency(p50=2.123456789, p90=3.0, p99=4.0, mean=2.5, min=1.0, max=5.0, n=10)
    hq, hf = 4.123456789, 3.333333333
    lat, how = EM.estimate(profile, cand, {"q.tflite": hq, "f.tflite": hf}, "int8")
    sq, sf = 12.0 / hq, 18.0 / hf
    assert lat == cand.scaled(sq)
    assert how == {
        "profile": "p", "device": "phone", "anchor": "q.tflite", "anchor_device_ms": 12.0,
        "anchor_host_ms": round(hq, 4), "scale": round(sq, 4), "uncertainty_pct": round(abs(sf - sq) / sq * 100, 1),
        "candidate_host_ms": round(2.123456789, 4),
        "anchors": {"q.tflite": {"precision": "int8", "device_ms": 12.0, "host_ms": round(hq, 4), "scale": round(sq, 4),
                                 "source": "table q"},
                    "f.tflite": {"precision": "float", "device_ms": 18.0, "host_ms": round(hf, 4), "scale": round(sf, 4),
                                 "source": "table f"}},
        "method": "candidate_host_ms * anchor_device_ms / anchor_host_ms, the candidate and the anchor timed "
                  "in turns in one process on the host",
        "note": None}
    _, single = EM.estimate(profile, cand, {"q.tflite": hq}, "int8")
    assert single["note"] == "single anchor: no uncertainty from a second anchor"


def test_fallback_records_in_full():
    ranking = [{"tensor": f"t{i}", "op": "CONV_2D", "rmse_per_step": 10.0 - i} for i in range(40)]
    _, build, judge = _fake_build(passes_at=2)
    assert _written(search_fallback(ranking, [1, 2], build, judge)) == {
        "pass": True, "verdict": "PASS", "artifact": "model_int8_mixed.tflite",
        "float_ops": [{"tensor": "t0"}, {"tensor": "t1"}], "ranking": ranking[:32],
        "steps": [{"float_ops": 1, "accuracy_drop_pp": 4.0, "interval_pp": [0.0, 1.0], "verdict": "FAIL", "size_mb": 3.0},
                  {"float_ops": 2, "accuracy_drop_pp": 2.0, "interval_pp": [0.0, 1.0], "verdict": "PASS", "size_mb": 4.0}],
        "decision": "2 op(s) kept in float: drop +2.00 pp, interval within the budget"}
    build = _fake_build(passes_at=None)[1]
    assert _written(search_fallback(ranking, [1, 2], build, _judged_as(["INCONCLUSIVE", "FAIL"]))) == {
        "pass": False, "verdict": "FAIL", "artifact": "model_int8_mixed.tflite",
        "float_ops": [{"tensor": "t0"}, {"tensor": "t1"}], "ranking": ranking[:32],
        "steps": [{"float_ops": 1, "accuracy_drop_pp": 4.0, "interval_pp": [0.0, 1.0], "verdict": "INCONCLUSIVE", "size_mb": 3.0},
                  {"float_ops": 2, "accuracy_drop_pp": 2.0, "interval_pp": [0.0, 1.0], "verdict": "FAIL", "size_mb": 4.0}],
        "decision": "2 step(s) tried, last FAIL"}


def test_export_decision_text():
    def j(verdict="INCONCLUSIVE", images_to_decide=400):
        return judged(verdict, 1.5, 1.0, interval=(0.25, 2.75), images_to_decide=images_to_decide)
    assert decision(j(), 1.0, 120) == ("drop +1.50 pp, 95% interval +0.25 to +2.75 pp on 120 images, budget 1.0 pp: "
                                       "INCONCLUSIVE, no ops kept in float for a drop these images cannot resolve "
                                       "(about 400 labelled images would decide it at the observed rates)")
    assert decision(j(images_to_decide=None), 1.0, 120).endswith("cannot resolve")
    assert decision(j("PASS"), 1.0, 120).endswith(": PASS (the whole interval is within the budget)")
    assert decision(j("FAIL"), 1.0, 120).endswith(": FAIL (the whole interval is beyond the budget)")


def test_bench_messages_in_full():
    doc = _doc(("m.tflite", "int8", 1.0, {"accuracy_drop_pp": "INCONCLUSIVE"}),
               ("n.tflite", "int8", 1.0, {"agreement_pct": "INCONCLUSIVE"}))
    doc.devices[0].records[0].budgets["accuracy_drop_pp"] = judged("INCONCLUSIVE", 1.5, 1.0, interval=(-0.5, 3.25),
                                                                   images_to_decide=640)
    with pytest.raises(InconclusiveError) as e:
        B.check(doc)
    assert str(e.value) == ("the images cannot decide m.tflite: accuracy_drop_pp 1.50 "
                            "[95% -0.50, +3.25] vs 1.0, about 640 labelled images would decide it at the observed rates; "
                            "n.tflite: agreement_pct 1.50 vs 1.0 (add images, or judge point estimates with "
                            "--point-estimate)")
    doc = _doc(("m.tflite", "int8", 1.0, {"size_mb": "FAIL"}), ("n.tflite", "int8", 1.0, {"p90_ms": "FAIL"}))
    with pytest.raises(BudgetError) as e:
        B.check(doc)
    assert str(e.value) == "budget failed: m.tflite: size_mb 1.50 > 1.0; n.tflite: p90_ms 1.50 > 1.0"


def test_judge_budgets_in_full_and_edges():
    st = V.paired([0] * 4, [0] * 4, [0] * 4)
    rec = _rec(size=2.5, p90=7.25, paired=st, ratio=1.5)
    got = B.judge_budgets(rec, _plan(size_mb=3.0, max_p90_ms=8.0, min_agreement_pct=90.0, max_slowdown_pct=50.0,
                                     point_estimate=True))
    assert {k: _written(b) for k, b in got.items()} == {
        "size_mb": {"limit": 3.0, "value": 2.5, "pass": True, "verdict": "PASS"},
        "agreement_pct": _written(V.agreement_budget(st, 90.0, True)),
        "p90_ms": {"limit": 8.0, "value": 7.25, "pass": True, "verdict": "PASS"},
        "slowdown_pct": {"limit": 50.0, "value": 50.0, "pass": True, "verdict": "PASS"}}   # on the limit
    assert got["agreement_pct"].judged_on == "point estimate"
    slow = B.judge_budgets(_rec(ratio=1.123456), _plan(max_slowdown_pct=20.0))["slowdown_pct"]
    assert slow.value == 12.35
    assert "slowdown_pct" not in B.judge_budgets(_rec(ratio=None), _plan(max_slowdown_pct=5.0))


def test_versus_reference_needs_both_evaluations():
    no_eval = AgentResult(**{**_result(PRED).__dict__, "evaluation": None})
    assert B.versus_reference(Path("m"), no_eval, _result(REF)) is None
    assert B.versus_reference(Path("m"), _result(PRED), no_eval) is None
    pc = B.versus_reference(Path("m"), _result(PRED), _result(REF)).per_class["a"]
    assert pc.agreement_ci == V.paired([0, 0], [0, 1], [0, 0]).agreement_ci


def test_repeats_keep_their_values_to_four_decimals():
    runs = [Latency(p50=p, p90=p + 1, p99=p + 2, mean=p, min=p - 1, max=p + 3, n=10) for p in (2.123456, 3.0, 2.5)]
    c = B.combine_latency(runs)
    assert c.p50_per_repeat == (2.1235, 3.0, 2.5) and c.p50_spread_pct == round(100 * (3.0 - 2.123456) / 2.5, 2)
    lat = Latency(p50=1.0, p90=1.0, p99=1.0, mean=1.0, min=1.0, max=1.0, n=1)
    from edgecnn.core.protocol import BaselineTiming
    res = [AgentResult(**{**_result(REF).__dict__, "latency_ms": dataclasses.replace(lat, p50=p),
                          "baseline": BaselineTiming(artifact="b", format="tflite", size_mb=1.0, runtime="litert",
                                                     latency_ms=lat),
                          "vs_baseline": VsBaseline(p50_ratio=r, p90_ratio=r, method="turns")})
           for p, r in ((1.0, 1.123456), (2.0, 1.0), (3.0, 1.0))]
    c = B.combine_runs(res[0], res)
    assert c.latency_ms.p50 == 2.0 and c.latency_ms.repeats == 3 and c.vs_baseline.method == "turns"
    assert c.vs_baseline.p50_ratio_per_repeat == (1.1235, 1.0, 1.0)


def test_versus_skips_a_class_without_images_and_keeps_going():
    labels = ["a", "d", "b", "c"]                               # "d" (index 1) has no image; b and c come after
    y = np.array([0, 0, 2, 2, 3, 3, 3])
    ref = np.array([0, 0, 2, 2, 3, 3, 3])
    pred = np.array([0, 0, 2, 0, 3, 3, 0])
    c = E.versus(y, pred, ref, labels, [str(i) for i in range(7)])
    assert list(c.per_class) == ["a", "b", "c"]
    assert c.per_class["c"].drop_pp == round(100 / 3, 4) and c.accuracy_drop_pp == round(200 / 7, 4)
    assert _written(c.worst_class) == {"label": "b", "drop_pp": 50.0}


def test_a_list_with_spaces_in_names_and_a_missing_image(tmp_path):
    d = tmp_path / "train" / "a b"
    d.mkdir(parents=True)
    p = d / "my photo.jpg"
    p.write_bytes(b"x")
    lst = tmp_path / "l.txt"
    CAL.write_list(lst, tmp_path, [Sample(path=p, label=0, load_path=p)], "products", 0)
    assert CAL.read_list(lst, tmp_path) == [p] and CAL.list_matches(lst, tmp_path)
    lst.write_text("train/a b/gone.jpg\tabc\n")
    with pytest.raises(InputError) as e:
        CAL.read_list(lst, tmp_path)
    assert str(e.value) == f"{lst}:1: train/a b/gone.jpg is not under the data root {tmp_path}"


def test_calibration_resolve_messages_and_seed(tmp_path):
    samples = _files(tmp_path, {"a": 5, "b": 5})
    (tmp_path / "calibration").mkdir()
    (paths, _, lst), _ = _resolve(tmp_path, samples)
    assert paths == [s.path for s in CAL.stratified_sample(samples, 4, 3)]
    assert lst.read_text().startswith("# edgecnn calibration set: recipe=products n=4 seed=3\n")
    with pytest.raises(InputError) as e:
        CAL.resolve(lst, default_list=lst, data_root=None, train_samples=None, size=4, recipe="products", seed=3,
                    run_list=lst)
    assert str(e.value) == "a calibration list needs the run's data root (metrics.json)"
    with pytest.raises(InputError) as e:
        _resolve(tmp_path, [], default=tmp_path / "none.txt", run_list=tmp_path / "none-either.txt")
    assert str(e.value) == ("no calibration data: the run's training images are not reachable; "
                            "pass --calibration FILE|DIR")


def test_the_last_fallback_step_gives_the_verdict():
    ranking = [{"tensor": f"t{i}", "op": "ADD", "rmse_per_step": 1.0} for i in range(4)]
    build = _fake_build(passes_at=None)[1]
    fb = search_fallback(ranking, [1, 2, 4], build, _judged_as(["FAIL", "FAIL", "INCONCLUSIVE"]))
    assert fb.verdict == "INCONCLUSIVE" and fb.decision == "3 step(s) tried, last INCONCLUSIVE"


def test_sensitivity_rows_with_missing_fields():
    r = rank_sensitivity([{"tensor_name": "a", "scale": "", "mean_squared_error": "1e-30"},      # no scale: 1e-12
                          {"tensor_name": "b", "op_name": "ADD", "scale": "0.5"}])              # no error: 0
    assert r == [{"tensor": "a", "op": "", "rmse_per_step": pytest.approx(1e-3)},
                 {"tensor": "b", "op": "ADD", "rmse_per_step": 0.0}]


def test_deployable_lines_in_full():
    doc = _doc(("model_int8.tflite", "int8", 2.5, {"size_mb": "FAIL", "accuracy_drop_pp": "INCONCLUSIVE"}),
               ("model_int8_mixed.tflite", "int8-mixed", 5.0, {"size_mb": "PASS"}))
    d = V.choose_deployable(doc.devices[0])
    assert d.summary(Path("runs/x")) == [
        "rejected: model_int8.tflite: size_mb FAIL, accuracy_drop_pp INCONCLUSIVE",
        "verdict: PASS: deploy model_int8_mixed.tflite (5.00 MB, accuracy 90.00%, drop +0.50 pp vs float, "
        "p50 3.00 ms on this host); every budget holds",
        "next:    edgecnn bundle runs/x/export/model_int8_mixed.tflite --android android_demo"]
    assert V.choose_deployable(_entry()).summary(Path("r")) == [
        "verdict: FAIL: no INT8 model meets the budgets (see the tables above and bench.json)"]


def test_agreement_of_mismatched_scores_is_an_error_record():
    assert EM.agreement(np.zeros((3, 2)), np.zeros((2, 2)), True) == {
        "images": None, "error": "score shapes differ: host (3, 2), emulated (2, 2)"}


def test_point_estimate_budgets_hold_on_their_limit():
    st = V.paired([0] * 4, [1, 0, 0, 0], [0] * 4)                 # drop exactly 25 pp, agreement 75%
    assert V.drop_budget(st, 25.0, point_estimate=True).verdict == "PASS"
    assert V.agreement_budget(st, 75.0, point_estimate=True).verdict == "PASS"
    assert V.images_to_decide_drop(st, 25.0) is None and V.images_to_decide_agreement(st, 0.75) is None
    one = V.paired([0], [1], [0])                                 # a single image still gets a number
    assert V.images_to_decide_drop(one, 50.0) is not None


@pytest.mark.parametrize("records,code,ending", [
    # pure INT8 within budget
    ([("model_fp32.tflite", "fp32", 8.9, {"size_mb": "PASS"}),
      ("model_int8.tflite", "int8", 2.7, {"size_mb": "PASS", "accuracy_drop_pp": "PASS"})],
     0, ["verdict: PASS: deploy model_int8.tflite (2.70 MB", "next:    edgecnn bundle"]),
    # pure INT8 over budget, the float fallback holds: the mixed model ships, the pure one is rejected
    ([("model_int8.tflite", "int8", 2.7, {"size_mb": "PASS", "accuracy_drop_pp": "FAIL"}),
      ("model_int8_mixed.tflite", "int8-mixed", 5.2, {"size_mb": "PASS", "accuracy_drop_pp": "PASS"})],
     0, ["rejected: model_int8.tflite: accuracy_drop_pp FAIL", "verdict: PASS: deploy model_int8_mixed.tflite",
         "next:"]),
    # nothing within budget
    ([("model_int8.tflite", "int8", 2.7, {"size_mb": "PASS", "accuracy_drop_pp": "FAIL"}),
      ("model_int8_mixed.tflite", "int8-mixed", 5.2, {"size_mb": "FAIL", "accuracy_drop_pp": "PASS"})],
     1, ["rejected: model_int8.tflite: accuracy_drop_pp FAIL", "rejected: model_int8_mixed.tflite: size_mb FAIL",
         "verdict: FAIL: no INT8 model meets the budgets"]),
])
def test_the_demo_ends_in_one_verdict_and_its_exit_status(records, code, ending):
    """What the demo prints last (before the report's path) and its exit status, for the three outcomes."""
    choice = V.choose_deployable(_entry(*records))
    lines = choice.summary(Path("runs/demo"))
    assert choice.exit_code == code
    assert len(lines) == len(ending) and all(ln.startswith(e) for ln, e in zip(lines, ending)), lines
