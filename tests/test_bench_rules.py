"""bench's rules on hand-built documents (no agent runs): the exit status of every verdict, what each
option puts in the request a device runs, which accuracy budgets can be judged, the notes a table ends
with (the unreadable images listed up to a limit, a busy machine's spread, estimates, baselines), and
the precision read from a model's name. The decision functions' exact values: tests/test_decisions.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_helpers as R  # noqa: E402

from edgecnn import bench as B  # noqa: E402
from edgecnn import verdict as V  # noqa: E402
from edgecnn.core.errors import BudgetError, InconclusiveError, InputError  # noqa: E402
from edgecnn.core.protocol import AgentResult, Tensor, VsBaseline  # noqa: E402
from edgecnn.results import BaselineRecord, Paired  # noqa: E402
from edgecnn.rundir import Budgets  # noqa: E402


# ------------------------------------------------------------------------------------ exit status
@pytest.mark.parametrize("verdict,code", [("PASS", 0), ("FAIL", 1), ("INCONCLUSIVE", 3)])
def test_the_deployable_verdict_is_the_exit_status(verdict, code):
    assert V.Deployable(None, verdict, []).exit_code == code
    assert {V.FAIL: BudgetError.exit_code, V.INCONCLUSIVE: InconclusiveError.exit_code} == {"FAIL": 1,
                                                                                          "INCONCLUSIVE": 3}


@pytest.mark.parametrize("verdicts,raised", [
    ([["PASS"], ["PASS", "PASS"]], None),
    ([["PASS", "INCONCLUSIVE"], ["PASS"]], InconclusiveError),
    ([["INCONCLUSIVE"], ["FAIL"]], BudgetError),
    ([["FAIL", "INCONCLUSIVE"]], BudgetError),
    ([["INCONCLUSIVE"], ["INCONCLUSIVE", "PASS"]], InconclusiveError),
])
def test_a_bench_exits_on_its_worst_budget_over_every_record(verdicts, raised):
    names = ("size_mb", "accuracy_drop_pp", "p90_ms")
    doc = R.one_device(*(R.record(f"m{i}.tflite", budgets={names[j]: R.judged(v) for j, v in enumerate(vs)})
                         for i, vs in enumerate(verdicts)))
    if raised is None:
        assert B.check(doc) is None
    else:
        with pytest.raises(raised) as e:
            B.check(doc)
        assert type(e.value) is raised
        bad = "FAIL" if raised is BudgetError else "INCONCLUSIVE"
        for i, vs in enumerate(verdicts):                 # every such budget named, no other
            for j, v in enumerate(vs):
                assert (f"m{i}.tflite: {names[j]} " in str(e.value)) == (v == bad)


def test_what_would_decide_an_undecided_budget_is_said_both_ways():
    b = R.judged("INCONCLUSIVE", value=0.25, interval=(-1.0, 2.5), images_to_decide=900, unlabeled_to_decide=3000)
    with pytest.raises(InconclusiveError) as e:
        B.check(R.one_device(R.record("m.tflite", budgets={"accuracy_drop_pp": b})))
    assert str(e.value) == ("the images cannot decide m.tflite: accuracy_drop_pp 0.25 [95% -1.00, +2.50] vs 1.0, "
                            "about 900 labelled images or 3000 unlabeled photos would decide it at the observed "
                            "rates (add images, or judge point estimates with --point-estimate)")
    only_u = R.judged("INCONCLUSIVE", value=None, unlabeled_to_decide=40)
    with pytest.raises(InconclusiveError, match=r"m.tflite: agreement_pct - vs 1.0, 40 unlabeled photos would "):
        B.check(R.one_device(R.record("m.tflite", budgets={"agreement_pct": only_u})))


# ------------------------------------------------------------------------------------ the request
def test_each_option_reaches_its_field_of_the_request(tmp_path):
    o = B.BenchOptions(target=tmp_path / "m.tflite", data=tmp_path / "d", unlabeled=tmp_path / "u", engine="litert",
                       threads=3, cpus=[0, 2], runs=11, warmup=4, min_seconds=0.5, max_images=9,
                       baseline=tmp_path / "b.tflite")
    r = B.request_for(o, tmp_path / "m.tflite")
    assert (r.model, r.data, r.unlabeled, r.baseline) == tuple(str(tmp_path / n) for n in ("m.tflite", "d", "u",
                                                                                            "b.tflite"))
    assert (r.engine, r.threads, r.cpus, r.runs, r.warmup, r.min_seconds, r.max_images, r.latency) == (
        "litert", 3, (0, 2), 11, 4, 0.5, 9, True)
    bare = B.request_for(o, tmp_path / "ref.keras", latency=False, data=False, baseline=False)
    assert (bare.model, bare.data, bare.unlabeled, bare.baseline, bare.latency) == (str(tmp_path / "ref.keras"), None,
                                                                                    None, None, False)
    none = B.request_for(B.BenchOptions(target=tmp_path / "m.tflite"), tmp_path / "m.tflite")
    assert (none.data, none.unlabeled, none.baseline, none.cpus, none.threads, none.max_images) == (None,) * 6
    assert (none.runs, none.warmup, none.min_seconds) == (200, 20, 2.0)


# ------------------------------------------------------------------------------------ judgeable budgets
def _budgets(drop=None, agreement=None) -> Budgets:
    return Budgets(size_mb=20.0, max_drop_pp=drop, max_p90_ms=None, source="test", min_agreement_pct=agreement)


def test_an_accuracy_budget_asked_for_is_judged_or_refused_never_skipped(tmp_path):
    t = tmp_path / "m.tflite"
    ref = tmp_path / "f.tflite"
    with pytest.raises(InputError) as e:
        B.accuracy_budgets_judgeable(B.BenchOptions(t, max_drop=1.0, min_agreement_pct=99.0), _budgets(1.0), None)
    assert str(e.value) == ("--max-drop and --min-agreement cannot be judged: no images to judge it on (pass --data "
                            "DIR of class folders, or --unlabeled DIR of photos)")
    with pytest.raises(InputError) as e:
        B.accuracy_budgets_judgeable(B.BenchOptions(t, data=tmp_path, min_agreement_pct=99.0), _budgets(), None)
    assert str(e.value) == ("--min-agreement cannot be judged: no float reference to compare with (an artifact "
                            "outside its run: pass --reference MODEL)")
    assert B.accuracy_budgets_judgeable(B.BenchOptions(t, data=tmp_path, max_drop=1.0), _budgets(1.0), ref) == []
    assert B.accuracy_budgets_judgeable(B.BenchOptions(t), _budgets(2.0, 95.0), None) == [
        "the recipe's accuracy budgets (max drop, min agreement) are not judged: no images to judge it on (pass "
        "--data DIR of class folders, or --unlabeled DIR of photos)"]
    assert B.accuracy_budgets_judgeable(B.BenchOptions(t), _budgets(), None) == []
    with pytest.raises(InputError, match=r"^--point-estimate judges the drop on labelled images: pass --data"):
        B.accuracy_budgets_judgeable(B.BenchOptions(t, unlabeled=tmp_path, point_estimate=True), _budgets(1.0), ref)
    assert B.accuracy_budgets_judgeable(B.BenchOptions(t, unlabeled=tmp_path, point_estimate=True),
                                        _budgets(agreement=90.0), ref) == []


# ------------------------------------------------------------------------------------ the table's notes
def _paired(drop_ci_pp: tuple[float, float], n: int = 200) -> Paired:
    """Paired statistics of 2 images only the reference got right and 1 only the artifact did, with this
    interval of the drop (only the interval is shown in the table)."""
    return Paired(n=n, ref_only_right=2, artifact_only_right=1, changed=3, drop_pp=100.0 / n, drop_ci_pp=drop_ci_pp,
                  agreement=1 - 3 / n, agreement_ci=(0.95, 1.0), confidence=V.CONFIDENCE)


@pytest.mark.parametrize("n", [0, 1, 5, 6, 9])
def test_unreadable_images_are_counted_all_and_listed_up_to_five(n):
    names = [f"img{i}.png" for i in range(n)]
    notes = B.render(R.one_device(R.record(skipped=names))).splitlines()
    said = [ln for ln in notes if "could not be read" in ln]
    if n == 0:
        assert said == []
        return
    shown = "; ".join(f"{p} (bad)" for p in names[:5])
    assert said == [f"{n} image(s) of --data could not be read and are not counted: {shown}"
                    + (" ..." if n > 5 else "") + " (all listed in the JSON)"]


def test_an_image_unreadable_for_several_artifacts_is_counted_once():
    doc = R.one_device(R.record("a.tflite", skipped=["x.png", "y.png"]), R.record("b.tflite", skipped=["x.png"]))
    assert "2 image(s) of --data could not be read" in B.render(doc)


@pytest.mark.parametrize("verdict,word", [("PASS", "PASSED"), ("FAIL", "FAILED"), ("INCONCLUSIVE", "INCONCLUSIVE")])
def test_the_table_ends_with_the_verdict_in_one_word(verdict, word):
    assert B.render(R.document(R.entry(R.record(), verdict=verdict))).splitlines()[-1] == (
        f"{word} (1 {verdict}; 1 device, 1.0 s; accuracy budgets judged on 95% intervals; ~ = estimated latency)")


@pytest.mark.parametrize("spread,busy", [(4.9, False), (5.0, False), (5.1, True)])
def test_repeats_say_their_spread_and_a_busy_machine_beyond_five_percent(spread, busy):
    r = R.record(latency_ms=R.latency(2.0, 3.0, 4.0, repeats=3, p50_spread_pct=spread))
    line = next(n for n in B.render(R.one_device(r)).splitlines() if "agent runs" in n)
    assert line == (f"m.tflite: p50 is the median of 3 agent runs, which spread {spread:.1f}%"
                    + (": a busy machine; gate on a ratio instead (--baseline)" if busy else ""))
    assert B.NOISY_PCT == 5.0


def test_estimates_baselines_and_undecided_budgets_each_get_their_note():
    r = R.record(estimate={"profile": "pixel3", "anchor": "q.tflite"}, latency_estimated=True,
                 vs_baseline=VsBaseline(p50_ratio=1.25, p90_ratio=1.5, method="timed in turns in one process"),
                 baseline=BaselineRecord(artifact="f.tflite", format="tflite", size_mb=4.0,
                                         latency_ms=R.latency(1.6, 2.0, 2.5)),
                 budgets={"accuracy_drop_pp": R.judged("INCONCLUSIVE", 0.5, 1.0, images_to_decide=300)},
                 notes=["ran on 1 thread"])
    lines = B.render(R.one_device(r)).splitlines()
    assert "m.tflite: accuracy_drop_pp 0.50 vs budget 1.0: INCONCLUSIVE on 10 images, about 300 labelled images " \
           "would decide it at the observed rates" in lines
    assert "~ m.tflite: latency estimated from profile pixel3 (q.tflite)" in lines
    assert "m.tflite: ran on 1 thread" in lines
    assert ("m.tflite vs f.tflite: p50 x1.250, p90 x1.500 (2.00 vs 1.60 ms, timed in turns in one process)"
            in lines)
    row = next(ln for ln in lines if ln.split()[:2] == ["host", "m.tflite"])
    assert "~2.00" in row and "~3.00" in row and "~4.00" in row              # estimated latencies marked


def test_a_drop_is_shown_with_its_interval_and_budgets_by_verdict():
    r = R.record(paired=_paired((-1.25, 3.5)),
                 budgets={"size_mb": R.judged("PASS", 2.0, 20.0), "p90_ms": R.judged("FAIL", 3.0, 2.0)})
    assert r.verdict == "FAIL"                                  # the worst of its budgets
    row = next(ln for ln in B.render(R.one_device(r)).splitlines() if ln.split()[:2] == ["host", "m.tflite"])
    assert "+0.50 [-1.2, +3.5]" in row and row.split()[-3:] == ["size_mb:ok", "p90_ms:FAIL", "FAIL"]


# ------------------------------------------------------------------------------------ precision
def _res(dtype: str | None) -> AgentResult:
    return AgentResult(artifact="m", format="engine", size_mb=1.0, runtime="tensorrt", runtime_version="10",
                       platform={}, tensorflow_imported=False,
                       input=None if dtype is None else Tensor("in", (1, 8, 8, 3), dtype))


@pytest.mark.parametrize("name,dtype,precision", [
    ("model_int8_qdq.engine", "float32", "int8-qdq"), ("model_int8_mixed.engine", "float32", "int8-mixed"),
    ("MODEL_INT8.engine", "float32", "int8"), ("m_fp16.engine", "int8", "fp16"), ("m_fp32.engine", None, "fp32"),
    ("m.engine", "int8", "int8"), ("m.engine", "uint8", "int8"), ("m.engine", "float32", "fp32"),
    ("m.engine", None, "fp32"),
])
def test_an_engine_it_cannot_look_inside_is_named_by_its_file_else_its_input(tmp_path, name, dtype, precision):
    f = tmp_path / name
    f.write_bytes(b"not a model this machine can read")
    assert B.precision_of(f, _res(dtype)) == precision


def test_a_run_folder_without_exports_and_a_file_that_is_not_a_model_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"^no such model or run directory: "):
        B.collect(tmp_path / "nope.tflite")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(InputError) as e:
        B.collect(tmp_path / "m.txt")
    assert str(e.value) == "m.txt: not a benchable model (expected .tflite, .onnx, .engine, .plan)"
    (tmp_path / "m.plan").write_bytes(b"x")
    assert B.collect(tmp_path / "m.plan") == ([tmp_path / "m.plan"], None)
    assert B.default_reference(None) is None


# ------------------------------------------------------------------------------------ through the CLI
QUICK = ["--runs", "3", "--warmup", "0", "--min-seconds", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from devices_helpers import image_folder, shared_tiny_model
    model = shared_tiny_model(tmp_path_factory)
    return model, image_folder(tmp_path_factory.mktemp("bench-rules") / "images")


def _cli(*args) -> tuple[int, str]:
    from click.testing import CliRunner

    from edgecnn.cli import main
    r = CliRunner().invoke(main, ["bench", *map(str, args), *QUICK])
    return r.exit_code, r.output.strip().splitlines()[-1]


def test_the_command_exits_0_1_3_on_pass_fail_and_undecided(tiny):
    model, images = tiny
    code, last = _cli(model)
    assert code == 0 and last.startswith("PASSED (")
    code, last = _cli(model, "--budget-mb", "0.001")
    size = f"{model.stat().st_size / 1e6:.2f}"
    assert (code, last) == (1, f"Error: budget failed: {model.name}: size_mb {size} > 0.001")
    code, last = _cli(model, "--data", images, "--reference", model, "--max-drop", "0.5")
    assert code == 3 and last.startswith(f"INCONCLUSIVE: the images cannot decide {model.name}: accuracy_drop_pp 0.00 [95% "), last
    code, last = _cli(model, "--data", images, "--reference", model, "--max-drop", "0.5", "--point-estimate")
    assert code == 0 and last.startswith("PASSED ("), last
