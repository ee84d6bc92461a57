"""The INT8 route: PTQ, then empirical bias correction kept when it helps on the run's held-out images.

Rules first (pure, exact values), then the real export on the shared tiny run: the corrected model is
integer-only, differs from PTQ in bias values alone, moves the float model's decision margins less
than PTQ on photos it was not fitted to, and MediaPipe loads it with its labels. Last, why the route is not chosen by the verdict:
a simulation of that design shows it would break the verdict's 95%."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgecnn import verdict as V
from edgecnn.export.bias import channel_error
from edgecnn.export.graph import Tensor
from edgecnn.export.route import CORRECTED, PTQ, Candidate, choose, int8_route, margin_error


# ------------------------------------------------------------------------------------------ rules
def test_choose_keeps_the_correction_only_when_it_helps_on_both_counts():
    ptq = Candidate(PTQ, 400, 5, 0.0200)
    assert choose(ptq, Candidate(CORRECTED, 400, 5, 0.0199))[0] == CORRECTED      # equal changes, lower error
    assert choose(ptq, Candidate(CORRECTED, 400, 2, 0.0100))[0] == CORRECTED
    assert choose(ptq, Candidate(CORRECTED, 400, 6, 0.0100))[0] == PTQ            # more changes
    assert choose(ptq, Candidate(CORRECTED, 400, 5, 0.0200))[0] == PTQ            # no lower error
    assert choose(ptq, Candidate(CORRECTED, 400, 0, 0.0300))[0] == PTQ
    route, reason = choose(ptq, Candidate(CORRECTED, 400, 3, 0.0125))
    assert reason == ("bias correction helps on 400 held-out images: changed 3 vs 5, "
                      "margin error 0.0125 vs 0.0200")


def test_margin_error_is_the_mean_change_of_the_reference_top_two_margin():
    ref = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    got = np.array([[0.6, 0.3, 0.1], [0.1, 0.5, 0.4]])
    # image 0: classes 0 and 1, margin 0.5 -> 0.3 (0.2); image 1: classes 2 and 1, margin 0.3 -> -0.1 (0.4)
    assert margin_error(ref, got) == pytest.approx(0.3, abs=1e-12)
    assert margin_error(ref, ref) == 0.0
    assert margin_error(ref[:0], got[:0]) == 0.0


def _tensor(scale: float, zp: int, kind: str = "INT8") -> Tensor:
    return Tensor(0, "t", kind, 0, (1, 2), np.array([scale], np.float32), np.array([zp], np.int64))


def test_channel_error_counts_only_values_neither_model_clamped():
    # scale 0.1, zero point -128 (a RELU6 output): int8 -128 is 0.0 (clamped), 127 is 25.5 > 6 (clamped)
    t = _tensor(0.1, -128)
    q = np.array([[-118, -128], [-108, -68], [-100, 127]], np.int8)     # 1.0, 0.0 | 2.0, 6.0 | 2.8, 25.5
    f = np.array([[0.9, 0.0], [2.2, 5.9], [3.0, 6.0]], np.float32)
    err, count = channel_error(q, t, f, "RELU6")
    # channel 0: all three valid: (0.1 - 0.2 - 0.2) / 3; channel 1: only 6.0 vs 5.9 is clamped at the RELU6
    # bound (int8 -68 == zero point + round(6 / 0.1)), 0.0 is at the floor: none valid
    assert count.tolist() == [3, 0]
    assert err[0] == pytest.approx((0.1 - 0.2 - 0.2) / 3, abs=1e-6)
    assert err[1] == 0.0
    err, count = channel_error(q, t, f, "NONE")      # no fused activation: only the int8 range clamps
    assert count.tolist() == [3, 1]
    assert err[1] == pytest.approx(6.0 - 5.9, abs=1e-6)


def test_asked_ptq_and_no_held_out_split_do_no_correction_work():
    def never():
        raise AssertionError("the float model is not needed")
    model = b"not even a model: PTQ is returned untouched"
    r = int8_route(model, never, np.zeros((1, 4, 4, 3), np.float32), None, "ptq", print)
    assert (r.chosen, r.model, r.reason) == (PTQ, model, "asked for (--int8-route ptq)")
    r = int8_route(model, never, np.zeros((1, 4, 4, 3), np.float32), None, "auto", print)
    assert r.chosen == PTQ and r.model == model and r.reason.startswith("no held-out split to choose on")


# ------------------------------------------------------------------------------- the real export
def _export(run: Path, dest: Path, route: str) -> tuple[Path, dict]:
    from edgecnn.cli import main
    shutil.copytree(run, dest, symlinks=True)
    r = CliRunner().invoke(main, ["export", str(dest), "--int8", "--int8-route", route, "--fallback-steps", "0"])
    assert r.exit_code in (0, 1, 3), r.output
    rep = json.loads((dest / "export" / "export_report.json").read_text())
    return dest / "export" / "model_int8.tflite", next(a for a in rep["artifacts"] if a["artifact"] == "model_int8.tflite")


@pytest.fixture(scope="module")
def routes(exported_run, tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("routes")
    return {route: _export(exported_run, base / route, route) for route in ("ptq", "bias-correction")}


@pytest.mark.slow
def test_the_corrected_model_is_integer_only_and_differs_from_ptq_in_biases_alone(routes):
    from edgecnn.export.graph import TFLiteGraph

    (ptq_path, ptq_rec), (fixed_path, fixed_rec) = routes["ptq"], routes["bias-correction"]
    assert ptq_rec["route"]["chosen"] == PTQ and fixed_rec["route"]["chosen"] == CORRECTED
    for rec in (ptq_rec, fixed_rec):
        assert rec["graph"]["integer_only"] and rec["graph"]["float_tensors"] == []
        assert set(rec["graph"]["tensor_types"]) <= {"INT8", "UINT8", "INT32"}
    assert fixed_rec["graph"] == ptq_rec["graph"]              # same ops, same tensor types
    p, f = TFLiteGraph(ptq_path.read_bytes()), TFLiteGraph(fixed_path.read_bytes())
    assert [(o.kind, o.inputs, o.outputs, o.activation) for o in p.ops()] == \
           [(o.kind, o.inputs, o.outputs, o.activation) for o in f.ops()]
    biases = {o.inputs[2] for o in p.ops() if o.kind in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}
    changed = set()
    for op in p.ops():
        for i in op.inputs:
            tp, tf_ = p.tensor(i), f.tensor(i)
            if tp.buffer and tp.type in ("INT8", "INT32") and i not in changed:
                try:
                    a, b = p.buffer(tp), f.buffer(tf_)
                except ValueError:
                    continue
                if not np.array_equal(a, b):
                    changed.add(i)
    assert changed and changed <= biases                        # only biases moved, and some did
    assert fixed_rec["route"]["bias_correction"]["ops"] == len(biases)
    page = (fixed_path.parents[1] / "report.html").read_text(encoding="utf-8")
    assert "model_int8.tflite: INT8 route bias-corrected (asked for (--int8-route bias-correction)); integer-only" in page


@pytest.mark.slow
def test_the_corrected_model_moves_the_float_margins_less_and_mediapipe_runs_it(routes, tmp_path):
    from conftest import make_subset
    from mediapipe_client import agreement

    from edgecnn.core import contract as C
    from edgecnn.agent.runtimes import runner_for
    from edgecnn.export.route import litert_scores

    photos = make_subset(tmp_path / "photos", "products", (0, 4, 6), 1000, 0, splits=("test",))
    paths = sorted(str(p) for p in (photos / "test").rglob("*.jpg"))
    run = routes["ptq"][0].parents[1]
    x = C.preprocess_batch(paths, C.load(run / "contract.json"))
    with runner_for(run / "model.keras") as keras_ref:
        ref_p = keras_ref.probabilities(x)
    probs = {route: litert_scores(path.read_bytes(), x) for route, (path, _) in routes.items()}
    changed = {route: int((p.argmax(1) != ref_p.argmax(1)).sum()) for route, p in probs.items()}
    error = {route: margin_error(ref_p, p) for route, p in probs.items()}
    print(json.dumps({"photos": len(paths), "changed": changed, "margin_error": error}))
    # what the correction does, on photos it was not fitted to: the float model's decision margins move
    # less (here 0.033 -> 0.022). Which of 75 photos flip is not asserted: on this weak 8-epoch model
    # one or two borderline photos flip either way between any two INT8 models (1 vs 2 here), which is
    # why the route is chosen on the margins and the changes of the held-out split together.
    assert error["bias-correction"] < 0.8 * error["ptq"], error
    pytest.importorskip("mediapipe", reason="mediapipe (the MediaPipe Tasks client) is not installed")
    f = agreement(routes["bias-correction"][0], photos / "test")
    assert f["contract-resized"]["agreement"] >= 0.98, f


# ------------------------------------------------------ why the route is not chosen by the verdict
def _false_pass(n: int, sims: int, sequential: bool, seed: int = 30) -> float:
    """Two INT8 models whose true drop is the budget's edge (1 pp: 2% of images lost, 1% gained), half of
    their changed images shared. Plain: the first model alone is judged. Sequential: the second is judged
    too whenever the first is not PASS, and whichever passes ships (a route chosen by the verdict)."""
    rng = np.random.default_rng(seed)
    passed = 0
    for _ in range(sims):
        shared = rng.multinomial(n, [0.01, 0.005, 0.985])[:2]
        own = rng.multinomial(n, [0.01, 0.005, 0.01, 0.005, 0.97])[:4]
        first = (int(shared[0] + own[0]), int(shared[1] + own[1]))
        second = (int(shared[0] + own[2]), int(shared[1] + own[3]))
        ok = V.drop_interval(*first, n)[1] <= 1.0
        if sequential and not ok:
            ok = V.drop_interval(*second, n)[1] <= 1.0
        passed += ok
    return passed / sims


def test_choosing_the_route_by_the_verdict_would_break_its_95_percent():
    sims, n = 20000, 400
    plain, chosen = _false_pass(n, sims, False), _false_pass(n, sims, True)
    se = np.sqrt(0.025 * 0.975 / sims)
    print(json.dumps({"images": n, "false_pass_one_look": plain, "false_pass_route_by_verdict": chosen}))
    assert plain <= 0.025 + 3 * se
    assert chosen > plain + 3 * se and chosen > 0.025 + 3 * se
