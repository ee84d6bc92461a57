"""Rules pinned on exact values, fast, from a third independent hand-mutation audit: a uint8 input needs
its quantization like an int8 one, unknown contract fields named at most five and 40 characters each, an
input reached through a symlink compared by where it points (a run folder never inside the user's data),
the calibration round robin's class order, the agreement interval pooling labelled and unlabeled images,
two workers' shards, and a default reference without provenance refused rather than noted. Then the
rules whose mutants survived the per-module and uniform draws (benchmarks/results/mutation_*.json) and a
fourth audit: messages, the plan's budgets, the unlabeled photos counted in what would decide a budget,
adb's device lines, a spec's text options, the work folders a local agent leaves, what belongs to a run."""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgecnn import bench as B
from edgecnn import distribute as D
from edgecnn import fleet as F
from edgecnn import recipe as R
from edgecnn import results
from edgecnn import rundir as RD
from edgecnn import verdict as V
from edgecnn.core import contract as C
from edgecnn.core.errors import EdgecnnError, InputError
from edgecnn.core.images import Sample
from edgecnn.core.io import sha256_file
from edgecnn.core.protocol import (AgentRequest, AgentResult, Evaluation, Predictions, ProtocolError, Tensor,
                                   from_wire)
from edgecnn.devices import device_class
from edgecnn.devices.adb import parse_devices
from edgecnn.devices.base import LocalTransport, agent_zip, run_agent_locally
from edgecnn.devices.emulated import list_profiles, load_profile
from edgecnn.devices.host import HostDevice, agent_environment
from edgecnn.evaluate import changes_without_labels, versus
from edgecnn.export import calibration as CAL
from edgecnn.export.budget import decision
from edgecnn.results import (BenchDocument, CalibrationUsed, ExportRecord, ExportReport, Judged, KerasReference,
                             Paired, PooledChanges, UnlabeledChanges, Versus)
from edgecnn.rundir import budgets_for, run_of_artifact
from results_helpers import record

# -------------------------------------------------------------------------------- a uint8 input needs its quantization
def test_a_uint8_input_needs_its_quantization_like_int8():
    base = {"schema": C.SCHEMA, "input_size": [32, 32], "labels": ["a", "b"]}
    for dtype in ("int8", "uint8"):
        with pytest.raises(C.ContractError) as e:
            C.Contract.from_dict({**base, "input_dtype": dtype}, source="c.json")
        assert str(e.value) == f"c.json: input_dtype {dtype} needs input_quantization (scale, zero_point)"
    ok = C.Contract.from_dict({**base, "input_dtype": "uint8",
                               "input_quantization": {"scale": 0.5, "zero_point": 128}})
    assert ok.input_quantization == C.Quantization(0.5, 128)


# ------------------------------------------------------------------------------------ unknown contract fields
def test_unknown_contract_fields_are_named_at_most_five_and_forty_characters_each():
    d = {"schema": C.SCHEMA, "input_size": [32, 32], "labels": ["a", "b"],
         **{f"k{i}" + "z" * 50: 1 for i in range(7)}}
    with pytest.raises(C.ContractError) as e:
        C.Contract.from_dict(d, source="c.json")
    names = ", ".join(f"k{i}" + "z" * 38 for i in range(5))
    assert str(e.value) == f"c.json: unknown field(s) {names}"


# ------------------------------------------------------------------------------------ an input given through a symlink
def test_an_input_given_through_a_symlink_is_compared_by_where_it_points(tmp_path):
    real = tmp_path / "photos"
    (real / "cats").mkdir(parents=True)
    link = tmp_path / "data_link"
    link.symlink_to(real, target_is_directory=True)
    out = real / "run"
    with pytest.raises(InputError) as e:
        RD.check_out_dir(out, {"--data": link})
    assert str(e.value) == (f"--out {out} lies inside the --data folder {link}: a run folder is replaced whole, "
                            f"so it must lie apart from its inputs; choose an --out outside {link}")
    with pytest.raises(InputError, match=r" is the --calibration folder "):
        RD.check_out_dir(real, {"--calibration": link})
    RD.check_out_dir(tmp_path / "elsewhere", {"--data": link})      # apart from it: accepted


# ------------------------------------------------------------------------------------ the calibration round robin
def test_the_round_robin_gives_leftover_images_to_the_lowest_classes_first():
    samples = [Sample(path=Path(f"/d/{c}/{i}.jpg"), label=c, load_path=Path(f"/d/{c}/{i}.jpg"))
               for c in range(3) for i in range(10)]
    for n, counts in ((1, {0: 1}), (4, {0: 2, 1: 1, 2: 1}), (5, {0: 2, 1: 2, 2: 1}), (6, {0: 2, 1: 2, 2: 2})):
        got = CAL.stratified_sample(samples, n, seed=0)
        assert dict(Counter(s.label for s in got)) == counts, n


# ------------------------------------------------------------------------------------ the pooled agreement interval
def test_the_agreement_interval_pools_labelled_and_unlabeled_images():
    y = np.zeros(10, int)
    ref, pred = y.copy(), y.copy()
    pred[0] = 1                                     # 1 of 10 labelled images changed
    s = V.paired(y, pred, ref, UnlabeledChanges(n=90, changed=0, flips=[]))
    assert s.agreement == 0.99                      # 99 of 100 unchanged
    assert s.agreement_ci == _clopper_pearson(99, 100)                   # pooled: 99/100, not 9/10
    assert V.paired(y, pred, ref).agreement_ci == _clopper_pearson(9, 10)  # labelled alone: 9/10


def _clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import beta
    lo = beta.ppf(0.025, k, n - k + 1) if k else 0.0
    hi = beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return round(float(lo), 6), round(float(hi), 6)


# ------------------------------------------------------------------------------------ two workers' shards
def test_each_of_two_workers_takes_every_second_item_from_its_index():
    items = list(range(7))
    two = [D.Replicas(cluster=D.Cluster(("a:1", "b:2"), i)).shard(items) for i in (0, 1)]
    assert two == [[0, 2, 4, 6], [1, 3, 5]]                    # disjoint, together every item once
    three = [D.Replicas(cluster=D.Cluster(("a:1", "b:2", "c:3"), i)).shard(items) for i in (0, 1, 2)]
    assert three == [[0, 3, 6], [1, 4], [2, 5]]
    assert D.Replicas().shard(items) == items and D.Replicas(cluster=D.Cluster(("a:1",), 0)).shard(items) == items


# ---------------------------------------------------------------------- a default reference without provenance
def _run(tmp_path):
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"model bytes " * 100)
    (run / "recipe.json").write_text(RD.recipe_json(R.load("products")))
    prov = C.Provenance(sha256_file(run / "model.keras"), sha256_file(run / "recipe.json"))
    c = C.Contract(input_size=(32, 32), labels=("cat", "dog"), provenance=prov)
    C.save(c, run / "contract.json")
    for name, p in (("m_int8.tflite", prov), ("model_fp32.tflite", None)):   # the float one copied in
        (run / "export" / name).write_bytes(b"not read by the plan")
        C.save(C.Contract(input_size=(32, 32), labels=("cat", "dog"), provenance=p),
               run / "export" / f"{name}.contract.json")
    return run


def test_a_default_reference_without_provenance_is_refused_not_noted(tmp_path):
    run = _run(tmp_path)
    (tmp_path / "data").mkdir()
    with pytest.raises(RD.ProvenanceError) as e:
        B.plan(B.BenchOptions(target=run / "export" / "m_int8.tflite", data=tmp_path / "data"))
    assert str(e.value) == "m_int8.tflite or its reference model_fp32.tflite records no provenance: re-export the run"
    p = B.plan(B.BenchOptions(target=run / "export" / "m_int8.tflite", data=tmp_path / "data",
                              reference=run / "export" / "model_fp32.tflite"))      # chosen by the user: a note
    assert p.notes == ["m_int8.tflite vs model_fp32.tflite: provenance not recorded on both, so not checked "
                       "(the reference was chosen with --reference)"]


# ==================================================================================== from a per-module draw
# Rules whose mutants survived a draw of 30 mutants from each module (benchmarks/mutation_per_module.json).

def test_an_input_left_unset_does_not_end_the_check_of_the_others(tmp_path):
    data = tmp_path / "photos"
    data.mkdir()
    with pytest.raises(InputError, match=r"lies inside the --data folder"):
        RD.check_out_dir(data / "run", {"--calibration": None, "--unlabeled": None, "--data": data})


def test_different_unlabeled_photos_are_refused_naming_the_artifact():
    c = C.Contract(input_size=(8, 8), labels=("a", "b"))

    def result(paths):
        return AgentResult(artifact="m.tflite", format="tflite", size_mb=1.0, runtime="litert", runtime_version="1",
                           platform={}, tensorflow_imported=False, threads=1, input=Tensor("in", (1, 8, 8, 3), "int8"),
                           contract=c, latency_ms=None, evaluation=None,
                           unlabeled=Predictions(tuple(paths), (0,) * len(paths)))
    with pytest.raises(InputError) as e:
        B.versus_reference(Path("/runs/m_int8.tflite"), result(["u/1.jpg"]), result(["u/1.jpg", "u/2.jpg"]))
    assert str(e.value) == ("m_int8.tflite: the reference and the artifact saw different unlabeled photos (2 vs 1)")


def test_an_emulated_boards_description_of_another_version_is_named_by_its_place():
    with pytest.raises(ProtocolError) as e:
        B.emulation_notes([record(device_info={"emulated": {"schema": "x"}, "host": "b"})])
    assert str(e.value).startswith("device_info.emulated: schema 'x', expected 'edgecnn.board-emulation/1'")


def test_a_pixel_mode_without_an_rgb_meaning_is_refused_by_name():
    from PIL import Image
    with pytest.raises(C.ImageError) as e:
        C._to_rgb8(Image.new("HSV", (2, 2)), Path("a.png"))
    assert str(e.value) == ("a.png: pixel mode HSV (unsupported) has no defined 8-bit RGB meaning: save it as 8-bit "
                            "RGB or 16-bit greyscale")


@pytest.mark.parametrize("kind, value, message", [
    ("int|None", "x", "r.f: expected an integer, got str 'x'"),
    ("int|float", "z", "r.f: expected int or float, got str 'z'"),
    ("None", 1, "r.f: expected null, got int '1'"),
    ("float", float("nan"), "r.f: expected a finite number, got float 'nan'"),
    ("Quantization", {"scale": "a", "zero_point": 1}, "r.f.scale: expected a number, got str 'a'"),
])
def test_a_wrong_wire_value_is_named_by_its_path_and_the_expected_type(kind, value, message):
    t = {"int|None": int | None, "int|float": int | float, "None": type(None), "float": float,
         "Quantization": C.Quantization}[kind]
    with pytest.raises(ProtocolError) as e:
        from_wire(t, value, "r.f")
    assert str(e.value) == message


def test_a_profile_is_refused_naming_the_available_ones_and_an_incomplete_anchor(tmp_path):
    with pytest.raises(InputError) as e:
        load_profile("no-such-phone")
    assert str(e.value) == f"unknown device profile 'no-such-phone'; available: {', '.join(list_profiles())}"
    assert len(list_profiles()) >= 2
    bad = tmp_path / "p.yaml"
    bad.write_text("name: p\ndevice: d\nqemu_cpu: cortex-a76\nthreads: 4\nanchors:\n  - {model: m, ms: 3}\n")
    with pytest.raises(InputError) as e:
        load_profile(str(bad))
    assert str(e.value) == "profile p.yaml: each anchor needs model, precision, ms and source"


def test_a_host_agents_failure_says_it_happened_on_the_host(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with HostDevice(timeout=120) as host, pytest.raises(InputError) as e:
        host.run(AgentRequest(model=str(bad)))
    assert str(e.value).startswith(f"{bad}: not a loadable TFLite model") and str(e.value).endswith(" (on the host)")


def test_a_document_that_is_not_ours_is_refused_naming_its_file(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text("[]")
    with pytest.raises(InputError) as e:
        results.read(path, BenchDocument)
    assert str(e.value) == (f"{path}: not a result of this version (schema edgecnn.bench/4, found None); "
                            f"run the command again or delete it")


def test_an_export_report_finds_an_artifacts_record_by_name():
    def rec(name):
        return ExportRecord(artifact=name, format="tflite", precision="int8", size_mb=1.0, sha256="0" * 64,
                            provenance={}, export_s=1.0, n=10, accuracy=0.9, runtime={})
    a, b = rec("model_fp32.tflite"), rec("model_int8.tflite")
    report = ExportReport(run="r", recipe="products", provenance={}, eval_data="d", eval_images=10, unlabeled=None,
                          skipped=[], calibration=CalibrationUsed(source=None, list=None, images=0),
                          reference=KerasReference(artifact="model.keras", format="keras", accuracy=0.9,
                                                   sha256="0" * 64), artifacts=[a, b], budget=None, tensorrt=None,
                          export_s=1.0)
    assert report.record("model_int8.tflite") is b and report.record("model_fp32.tflite") is a
    assert report.record("model.onnx") is None


def test_a_point_estimate_without_labelled_images_is_a_programming_error():
    unlabeled_only = Paired(n=0, ref_only_right=0, artifact_only_right=0, changed=0, drop_pp=None,
                            drop_ci_pp=(-100.0, 100.0), agreement=1.0, agreement_ci=(0.0, 1.0), confidence=0.95)
    with pytest.raises(ValueError) as e:
        V.drop_budget(unlabeled_only, 1.0, point_estimate=True)
    assert str(e.value) == "a point estimate of the drop needs labelled images"


def test_the_int8_line_names_the_unlabeled_photos_it_pooled():
    j = Judged.of(1.0, 0.2, "PASS", interval=(-0.5, 0.9))
    pooled = PooledChanges(n=400, changed=3, changed_bound_pp=1.9, labelled_ci_pp=(-0.5, 1.2), pooled_changed=5,
                           pooled_images=520)
    assert decision(j, 1.0, 120, pooled) == (
        "drop +0.20 pp, 95% interval -0.50 to +0.90 pp on 120 images + 400 unlabeled photos (3 changed), budget "
        "1.0 pp: PASS (the whole interval is within the budget)")


def test_a_calibration_list_starts_with_its_recipe_size_seed_and_columns(tmp_path):
    (tmp_path / "a").mkdir()
    img = tmp_path / "a" / "1.jpg"
    img.write_bytes(b"jpeg bytes")
    out = tmp_path / "calibration.txt"
    CAL.write_list(out, tmp_path, [Sample(path=img, label=0, load_path=img)], "products", 7)
    assert out.read_text().splitlines() == [
        "# edgecnn calibration set: recipe=products n=1 seed=7",
        "# class-stratified sample of the training split; paths relative to the data root",
        "# path\tsha256",
        f"a/1.jpg\t{sha256_file(img)}"]


def test_litert_scores_of_a_float_model_are_its_outputs_unscaled():
    from ai_edge_litert.interpreter import Interpreter
    from tiny_model import tiny_float_tflite

    from edgecnn.export.route import litert_scores
    flat = tiny_float_tflite()
    x = np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    it = Interpreter(model_content=flat)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    want = []
    for img in x:
        it.set_tensor(i["index"], img[None])
        it.invoke()
        want.append(it.get_tensor(o["index"])[0].copy())
    np.testing.assert_allclose(litert_scores(flat, x), np.stack(want), rtol=1e-5, atol=1e-6)


def test_recipe_json_is_indented_sorted_json_of_the_recipe():
    text = RD.recipe_json(R.load("products"))
    assert text.startswith('{\n  "') and text.endswith("}\n")
    d = json.loads(text)
    assert list(d) == sorted(d) and d == R.load("products").model_dump(mode="json")


def test_the_resize_is_float32_whatever_the_image_type():
    for img in (np.arange(48, dtype=np.uint8).reshape(4, 4, 3), np.arange(48, dtype=np.float64).reshape(4, 4, 3)):
        out = C.resize_bilinear(img, (3, 5))
        assert out.shape == (3, 5, 3) and out.dtype == np.float32


def test_a_bench_documents_wall_time_is_rounded_to_two_decimals(tmp_path):
    """The wall time lies between what the test saw from outside and the span of the lines logged inside,
    at two decimals: a span of about 0.7 s that no whole second fits."""
    art = tmp_path / "m.engine"                      # the host refuses an engine: no agent runs
    art.write_bytes(b"engine")
    stamps = []

    def log(msg):
        stamps.append(time.perf_counter())
        time.sleep(0.337)
        stamps.append(time.perf_counter())
    t0 = time.perf_counter()
    doc = B.bench(B.BenchOptions(target=art), log=log)
    outside = time.perf_counter() - t0
    assert doc.devices[0].status == "refused" and len(stamps) == 4
    assert stamps[-1] - stamps[0] - 0.005 <= doc.wall_s <= outside + 0.005
    assert abs(doc.wall_s * 100 - round(doc.wall_s * 100)) < 1e-9


# ==================================================================================== from a second uniform draw
def test_the_plan_keeps_every_budget_given_on_the_command_line(tmp_path):
    prov = C.Provenance("1" * 64, "2" * 64)
    for name in ("m_int8.tflite", "f.tflite"):
        (tmp_path / name).write_bytes(b"not read by the plan")
        C.save(C.Contract(input_size=(32, 32), labels=("cat", "dog"), provenance=prov),
               tmp_path / f"{name}.contract.json")
    (tmp_path / "data").mkdir()
    p = B.plan(B.BenchOptions(target=tmp_path / "m_int8.tflite", data=tmp_path / "data",
                              reference=tmp_path / "f.tflite", budget_mb=5.0, max_drop=0.5, max_p90_ms=40.0,
                              min_agreement_pct=99.5))
    b = p.budgets
    assert (b.size_mb, b.max_drop_pp, b.max_p90_ms, b.min_agreement_pct) == (5.0, 0.5, 40.0, 99.5)


def _with_unlabeled(n, changed, un, uchanged):
    total, total_changed = n + un, changed + uchanged
    return Paired(n=n, ref_only_right=changed, artifact_only_right=0, changed=changed, drop_pp=100.0 * changed / n,
                  drop_ci_pp=(-1.0, 3.0), agreement=1 - total_changed / total, agreement_ci=(0.9, 1.0), confidence=0.95,
                  unlabeled=PooledChanges(n=un, changed=uchanged, changed_bound_pp=1.0, labelled_ci_pp=(-1.0, 3.0),
                                          pooled_changed=total_changed, pooled_images=total))


def _labelled(n, changed):
    return Paired(n=n, ref_only_right=changed, artifact_only_right=0, changed=changed, drop_pp=100.0 * changed / n,
                  drop_ci_pp=(-1.0, 3.0), agreement=1 - changed / n, agreement_ci=(0.9, 1.0), confidence=0.95)


def test_the_unlabeled_photos_to_decide_count_those_already_pooled():
    """100 labelled images with 1 change and 300 unlabeled photos with 1 weigh as 400 images with 2 changes:
    the photos still needed are those 400 images' count plus the 300 already given."""
    pooled, as_labelled = V.unlabeled_to_decide(_with_unlabeled(100, 1, 300, 1), 1.0), V.unlabeled_to_decide(
        _labelled(400, 2), 1.0)
    assert as_labelled is not None and pooled == as_labelled + 300
    assert pooled != V.unlabeled_to_decide(_labelled(100, 1), 1.0)


def test_the_images_to_decide_an_agreement_budget_count_the_unlabeled_photos():
    got = V.images_to_decide_agreement(_with_unlabeled(100, 1, 300, 1), 0.99)   # 2 changed of 400
    assert got is not None and got == V.images_to_decide_agreement(_labelled(400, 2), 0.99)
    assert got != V.images_to_decide_agreement(_labelled(100, 2), 0.99)


def test_an_adb_propertys_value_keeps_everything_after_its_first_colon():
    out = "List of devices attached\nR58M device usb:1-1:2 product:a model:Pixel_7 transport_id:4\n"
    (d,) = parse_devices(out)
    assert d["usb"] == "1-1:2" and d["model"] == "Pixel_7" and d["transport_id"] == "4"


def test_a_flag_no_device_takes_is_named_as_typed():
    with pytest.raises(InputError) as e:
        F.from_command_line(("host",), {"accept_new_host_key": True})
    assert str(e.value) == "--accept-new-host-key does not apply to --device host"


def test_a_result_with_an_evaluation_but_no_contract_is_refused_as_the_result():
    r = AgentResult(artifact="m.tflite", format="tflite", size_mb=1.0, runtime="litert", runtime_version="1",
                    platform={}, tensorflow_imported=False, threads=1, input=Tensor("in", (1, 8, 8, 3), "int8"),
                    contract=None, latency_ms=None, evaluation=Evaluation(("a/1.png",), (0,), (0,)))
    with pytest.raises(ProtocolError) as e:
        r.check()
    assert str(e.value) == "result: an evaluation needs the contract that labels it"
    with pytest.raises(ProtocolError, match=r"^reply: an evaluation"):
        r.check("reply")


# ==================================================================================== from a fourth audit
def test_several_stray_options_name_the_first_in_name_order():
    # DeviceOptions.parse sorts the keys that do not apply and names the first one
    with pytest.raises(InputError) as e:
        device_class("host").Options.parse({"zeta": 1, "alpha": 2}, "host", "the fleet")
    assert str(e.value) == "the fleet: 'alpha' does not apply to device host (it takes: timeout)"


def test_each_local_agent_run_leaves_no_work_folder_behind(tmp_path):
    # run_agent_locally runs the real agent in a fresh work folder under `parent`, removed when it returns
    # (here the agent fails: the model does not exist); nothing of the run stays under parent
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(agent_zip())
    parent = tmp_path / "runs"
    parent.mkdir()
    request = AgentRequest(model=str(tmp_path / "missing.tflite"))
    for _ in range(2):
        with pytest.raises(EdgecnnError):
            run_agent_locally(LocalTransport(), [sys.executable, "-I", str(pyz)], request, parent=parent,
                              env=agent_environment(os.environ), timeout=120, where="the host")
    assert list(parent.iterdir()) == []


def test_an_unknown_kind_lists_the_kinds_in_name_order():
    with pytest.raises(InputError) as e:
        device_class("toaster")
    assert str(e.value) == "unknown device 'toaster'; available: host, jetson, phone, phone-emulated"


def test_a_device_line_without_long_fields_is_still_a_device():
    # `adb devices -l` prints only "SERIAL<TAB>STATE" for a device it has no details of (an older adb, or
    # an offline/unauthorized one): it is still listed, so choose_device can say why it cannot be used
    text = "List of devices attached\nemulator-5554\tdevice\nR58M123ABC\tunauthorized\n\n"
    assert parse_devices(text) == [{"serial": "emulator-5554", "state": "device"},
                                   {"serial": "R58M123ABC", "state": "unauthorized"}]


def test_only_a_file_in_a_runs_export_folder_belongs_to_the_run(tmp_path):
    # RUN/export/FILE is the run's artifact; a copy kept elsewhere under the run folder (RUN/old/FILE)
    # is a file outside a run: no run is loaded for it and the budgets are the defaults
    run = tmp_path / "run"
    (run / "old").mkdir(parents=True)
    (run / "contract.json").write_text("{}")
    art = run / "old" / "model_int8.tflite"
    art.write_bytes(b"not read")
    assert run_of_artifact(art) is None
    assert budgets_for(art).source == "defaults (no run)"


def test_a_text_option_of_a_device_spec_stays_text():
    # KIND:key=value reads a value as its field's type: a text field (a phone's serial) stays the text given,
    # even when it looks like a number
    (d,) = F.from_command_line(("phone:serial=0123",), {})
    assert d.options.serial == "0123"                      # not 83, as YAML would read it
    (d,) = F.from_command_line(("phone:serial=123",), {})
    assert d.options.serial == "123" and d.name == "phone 123"


def test_a_comparison_hands_a_record_all_its_fields_the_unlabeled_changes_included():
    labels = ["a", "b"]
    unlabeled = changes_without_labels([0, 1, 1, 0], [0, 0, 1, 0], labels, ["u1", "u2", "u3", "u4"])
    c = versus([0, 1, 1], [0, 1, 0], [0, 1, 1], labels, ["p1", "p2", "p3"], unlabeled)
    fields = c.versus()
    assert set(fields) == set(Versus.model_fields)
    assert fields["unlabeled"].n == 4 and fields["unlabeled"].changed == 1
    assert [f.path for f in fields["unlabeled"].flips] == ["u2"]


def test_images_to_decide_agreement_counts_the_unlabeled_photos():
    # agreement is judged on labelled + unlabeled images together, so the images that would decide it are
    # counted on both: with only unlabeled photos (400, 12 changed: 97% agreement, 95% interval
    # 0.9482..0.9844 against a 95% minimum) the answer is a number, not None
    n, changed = 400, 12
    u = changes_without_labels([1] * changed + [0] * (n - changed), [0] * n, ["a", "b"],
                               [f"u{i}" for i in range(n)])
    stats = V.paired([], [], [], u)
    j = V.agreement_budget(stats, 95.0)
    assert j.verdict == V.INCONCLUSIVE
    assert j.images_to_decide == 465
    # and it is the fewest such number at the observed rate (3%)
    decides = lambda size: V.judge_lower(V.agreement_interval(round(changed * size / n), size),  # noqa: E731
                                       0.95) != V.INCONCLUSIVE
    assert decides(465) and not decides(465 - 1)
