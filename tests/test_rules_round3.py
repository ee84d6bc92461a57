"""Rules pinned on exact values, fast: how repeats' latencies combine, what a bench record and its notes
carry, the unlabeled photos' note and comparison, the files a bench writes, the refusal of a reference of
another model and of unlabeled photos the model has seen, the device's wall time, the resize's edge
clamping and float32 normalisation, a contract's and a profile's messages, the host agent's environment,
LiteRT's class scores of an INT8 model, and the unlabeled bound's rounding and images to decide."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from edgecnn import bench as B  # noqa: E402
from edgecnn import fleet as F  # noqa: E402
from edgecnn import recipe as R  # noqa: E402
from edgecnn import results  # noqa: E402
from edgecnn import rundir as RD  # noqa: E402
from edgecnn import verdict as V  # noqa: E402
from edgecnn.core import contract as C  # noqa: E402
from edgecnn.core.contract import Contract, ContractError, Provenance  # noqa: E402
from edgecnn.core.errors import InputError  # noqa: E402
from edgecnn.core.io import sha256_file  # noqa: E402
from edgecnn.core.protocol import (AgentResult, BaselineTiming, Evaluation, Latency, Predictions,  # noqa: E402
                                   Tensor, VsBaseline)
from edgecnn.devices.base import Capabilities  # noqa: E402
from edgecnn.evaluate import changes_without_labels, refuse_seen_photos, seen_by_the_model  # noqa: E402
from edgecnn.results import (BaselineRecord, BenchDocument, Change, Paired, PooledChanges,  # noqa: E402
                             UnlabeledChanges)
from edgecnn.rundir import Budgets, ProvenanceError  # noqa: E402
from results_helpers import latency, one_device, record  # noqa: E402

PROV = Provenance("1" * 64, "2" * 64)
OTHER = Provenance("3" * 64, "2" * 64)


def _lat(p50, p90=None, p99=None, mean=None, lo=1.0, hi=20.0, n=10):
    return Latency(p50, p90 or p50 + 1, p99 or p50 + 2, mean or p50, 0.1, lo, hi, n)


def _agent(lat=None, *, top1=(0, 1, 0, 0), unlabeled=None, evaluation=True, baseline=None, vs=None,
           source=None) -> AgentResult:
    c = Contract(input_size=(8, 8), labels=("a", "b"), provenance=PROV)
    return AgentResult(
        artifact="m.tflite", format="tflite", size_mb=2.0, runtime="litert", runtime_version="1",
        platform={}, tensorflow_imported=False, threads=2, input=Tensor("in", (1, 8, 8, 3), "int8"), contract=c,
        latency_ms=lat,
        evaluation=Evaluation(("d/a/1.png", "d/b/2.png", "d/a/3.png", "d/b/4.png"), (0, 1, 0, 1), tuple(top1))
        if evaluation else None,
        unlabeled=unlabeled, baseline=baseline, vs_baseline=vs, latency_source=source, peak_rss_mb=50.0)


class _Dev:
    name = "fake"
    capabilities = Capabilities(formats=("tflite",), accuracy=True, baseline=True)

    def describe(self) -> dict:
        return {"device": "fake"}


def _plan(art: Path) -> B.Plan:
    return B.Plan([art], None, Budgets(size_mb=20.0, max_drop_pp=None, max_p90_ms=None, source="t"), None, [])


# ------------------------------------------------------------------------------------ repeats combined
def test_repeats_combine_into_the_median_latency_with_each_p50_and_their_spread():
    first = _agent(_lat(2.0, 3.0, 4.0, 2.5, lo=1.0, hi=9.0, n=10))
    runs = [first, _agent(_lat(10.0, 12.0, 14.0, 11.0, lo=0.5, hi=30.0, n=20)),
            _agent(_lat(3.0, 5.0, 6.0, 3.5, lo=2.0, hi=8.0, n=30))]
    out = B.combine_runs(first, runs)
    lat = out.latency_ms
    assert (lat.p50, lat.p90, lat.p99, lat.mean) == (3.0, 5.0, 6.0, 3.5)           # median of each statistic
    assert (lat.min, lat.max, lat.n) == (0.5, 30.0, 60)
    assert lat.repeats == 3 and lat.p50_per_repeat == (2.0, 10.0, 3.0)
    assert lat.p50_spread_pct == round(100 * 8.0 / 3.0, 2) == 266.67
    assert out.evaluation == first.evaluation and out.contract == first.contract   # the first's accuracy kept
    assert B.combine_latency([first.latency_ms]) == first.latency_ms              # one run: as it is


def test_repeats_combine_the_baselines_latency_and_the_median_ratios():
    def with_base(p50, bp50, r50, r90):
        return _agent(_lat(p50), baseline=BaselineTiming("f.tflite", "tflite", 8.0, "litert", _lat(bp50)),
                      vs=VsBaseline(r50, r90, "timed in turns in one process"))
    runs = [with_base(2.0, 4.0, 0.5, 0.6), with_base(3.0, 5.0, 0.7, 0.9), with_base(2.5, 4.5, 0.55, 0.65)]
    out = B.combine_runs(runs[0], runs)
    assert out.vs_baseline == VsBaseline(0.55, 0.65, "timed in turns in one process", (0.5, 0.7, 0.55))
    assert out.baseline.latency_ms.p50 == 4.5 and out.baseline.latency_ms.repeats == 3
    assert out.latency_ms.p50 == 2.5 and out.latency_ms.p50_per_repeat == (2.0, 3.0, 2.5)


# ------------------------------------------------------------------------------------ records and notes
def test_a_record_carries_the_agents_latency_and_its_source(tmp_path):
    art = tmp_path / "m.tflite"
    art.write_bytes(b"not read")
    lat = _lat(2.0, 3.0, 4.0, 2.5)
    rec = B._record(art, _agent(lat, source="host-side timing of the phone"), _Dev(), None, _plan(art))
    assert rec.latency_ms == lat and rec.latency_source == "host-side timing of the phone"
    assert rec.throughput_ips == 400.0
    bare = B._record(art, _agent(None), _Dev(), None, _plan(art))
    assert (bare.latency_ms, bare.latency_source, bare.throughput_ips) == (None, None, None)


def test_the_baseline_note_says_nan_for_a_record_without_latency_and_reads_exactly():
    base = BaselineRecord(artifact="f.tflite", format="tflite", size_mb=8.0, latency_ms=latency(4.0, 5.0, 6.0))
    vs = VsBaseline(0.5, 0.625, "timed in turns in one process")
    timed = record("m.tflite", baseline=base, vs_baseline=vs, latency_ms=latency(2.0, 3.0, 4.0))
    assert B._record_notes(timed) == [
        "m.tflite vs f.tflite: p50 x0.500, p90 x0.625 (2.00 vs 4.00 ms, timed in turns in one process)"]
    untimed = record("m.tflite", baseline=base, vs_baseline=vs, latency_ms=None)
    assert B._record_notes(untimed) == [
        "m.tflite vs f.tflite: p50 x0.500, p90 x0.625 (nan vs 4.00 ms, timed in turns in one process)"]
    rep = record("m.tflite", latency_ms=latency(2.0, repeats=3, p50_per_repeat=(2.0, 2.1, 1.9), p50_spread_pct=10.0))
    assert B._record_notes(rep) == ["m.tflite: p50 is the median of 3 agent runs, which spread 10.0%: a busy "
                                    "machine; gate on a ratio instead (--baseline)"]


def _paired_with_unlabeled() -> Paired:
    return V.paired([0, 1, 0], [0, 1, 1], [0, 1, 0], UnlabeledChanges(n=7, changed=1, flips=[]))


def test_the_unlabeled_note_states_the_bound_and_both_confidences_exactly():
    rec = record("m.tflite", paired=_paired_with_unlabeled())
    assert B.unlabeled_note(rec) == (
        "m.tflite: 1 of 7 unlabeled photos changed prediction; with the labelled images' changes, 2 of 10: the "
        "drop is at most 59.90 pp (one-sided 98.75%; labelled interval alone at 97.5%: -50.15 to +82.50 pp)")
    assert B._record_notes(rec)[0] == B.unlabeled_note(rec)
    assert B._record_notes(record("m.tflite", paired=V.paired([0, 1], [0, 1], [0, 1]))) == []


def test_the_unlabeled_bound_is_rounded_to_4_decimals():
    from scipy.stats import beta
    u = _paired_with_unlabeled().unlabeled
    exact = 100 * float(beta.ppf(1 - V.ALPHA / 4, 2 + 1, 10 - 2))            # 2 of 10 changed, one-sided 98.75%
    assert exact != round(exact, 4)
    assert u == PooledChanges(n=7, changed=1, changed_bound_pp=round(exact, 4), labelled_ci_pp=(-50.1488, 82.5019),
                              pooled_changed=2, pooled_images=10)
    assert u.changed_bound_pp == 59.9039


def test_unlabeled_photos_to_decide_with_one_labelled_image_and_none():
    one = V.paired([0], [0], [0])                                   # m = 1 image, no change
    # fewest images s with 100 (1 - 0.0125^(1/s)) <= limit, less the labelled one
    assert V.unlabeled_to_decide(one, 50.0) == 7 - 1
    assert V.unlabeled_to_decide(one, 10.0) == 42 - 1
    assert V.unlabeled_to_decide(V.paired([], [], []), 50.0) is None
    assert V.unlabeled_to_decide(V.paired([0], [1], [0]), 50.0) is None         # 100% changed: never below


# ------------------------------------------------------------------------------------ unlabeled vs reference
def test_only_unlabeled_predictions_give_a_comparison_of_their_changes(tmp_path):
    paths = ("u/1.jpg", "u/2.jpg", "u/3.jpg")
    res = _agent(None, evaluation=False, unlabeled=Predictions(paths, (0, 1, 1)))
    ref = _agent(None, evaluation=False, unlabeled=Predictions(paths, (0, 0, 1)))
    c = B.versus_reference(tmp_path / "m.tflite", res, ref)
    assert c.n == 0 and c.accuracy is None
    assert c.unlabeled == UnlabeledChanges(n=3, changed=1, flips=[Change(path="u/2.jpg", reference="a",
                                                                         prediction="b")])
    assert (c.paired.n, c.paired.drop_pp) == (0, None)
    assert (c.paired.unlabeled.n, c.paired.unlabeled.changed, c.paired.unlabeled.pooled_images) == (3, 1, 3)
    assert B.versus_reference(tmp_path / "m.tflite", res, None) is None
    assert B.versus_reference(tmp_path / "m.tflite", _agent(None, evaluation=False), ref) is None


def test_changes_without_labels_count_and_name_each_change():
    u = changes_without_labels([0, 2, 1, 1], [0, 1, 1, 2], ("a", "b", "c"), ["p0", "p1", "p2", "p3"])
    assert u == UnlabeledChanges(n=4, changed=2, flips=[Change(path="p1", reference="b", prediction="c"),
                                                        Change(path="p3", reference="c", prediction="b")])
    assert changes_without_labels([1], [1], ("a", "b"), ["x"]) == UnlabeledChanges(n=1, changed=0, flips=[])


# ------------------------------------------------------------------------------------ outputs
def test_the_markdown_file_is_the_rendered_table_and_the_json_reads_back(tmp_path):
    doc = one_device(record("m.tflite"))
    js, md = tmp_path / "o" / "bench.json", tmp_path / "o" / "bench.md"
    B.write_outputs(doc, js, md)
    assert md.read_text() == B.render(doc, markdown=True)
    assert md.read_text().startswith("| device | artifact |")
    assert results.read(js, BenchDocument) == doc
    only = tmp_path / "only.json"
    B.write_outputs(doc, only, None)
    assert results.read(only, BenchDocument) == doc and sorted(p.name for p in tmp_path.iterdir()) == ["o", "only.json"]


# ------------------------------------------------------------------------------------ a device's wall time
def test_a_devices_wall_time_is_rounded_to_two_decimals(tmp_path):
    art = tmp_path / "m.xyz"                             # refused before any agent runs: no such model format
    art.write_bytes(b"model")
    said = []

    def log(msg):                                        # the refusal is logged before the wall time is taken
        said.append(msg)
        time.sleep(0.337)

    e = B._bench_device(B.BenchOptions(target=art), _plan(art), None, F.device("host", {}), log)
    assert (e.status, e.verdict, e.records) == ("refused", V.ERROR, [])
    assert said == [f"refused: {art}: unknown model format (expected one of .engine, .keras, .onnx, .plan, .tflite)"]
    assert 0.33 <= e.wall_s < 3.0                        # 0.34 or so: never rounded to a whole second
    assert e.wall_s == round(e.wall_s, 2) and abs(e.wall_s * 100 - round(e.wall_s * 100)) < 1e-9


# ------------------------------------------------------------------------------------ provenance in the plan
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny INT8 model (bytes without a contract) and its contract."""
    from devices_helpers import LABELS, shared_tiny_model
    from edgecnn.core.artifact import read_contract
    from tiny_model import tiny_int8_tflite
    return tiny_int8_tflite(False), read_contract(shared_tiny_model(tmp_path_factory)), LABELS


def _with(tiny, path: Path, prov: Provenance | None) -> Path:
    from edgecnn.core.artifact import tflite_with_contract
    flat, c, _ = tiny
    path.write_bytes(tflite_with_contract(flat, dataclasses.replace(c, provenance=prov)))
    return path


def _photos(folder: Path, n: int = 2, seed: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_the_plan_compares_each_artifact_with_the_references_own_provenance(tiny, tmp_path):
    (tmp_path / "a").mkdir()
    art = _with(tiny, tmp_path / "a" / "m_int8.tflite", PROV)
    photos = _photos(tmp_path / "photos")
    other = _with(tiny, tmp_path / "other.tflite", OTHER)
    with pytest.raises(ProvenanceError) as e:
        B.plan(B.BenchOptions(target=art, unlabeled=photos, reference=other))
    assert str(e.value) == (f"m_int8.tflite and the reference other.tflite were made from different models (model "
                            f"sha256 {'1' * 12} vs {'3' * 12}): the accuracy drop between them means nothing; "
                            f"pass the matching --reference")
    same = _with(tiny, tmp_path / "same.tflite", PROV)
    p = B.plan(B.BenchOptions(target=art, unlabeled=photos, reference=same))
    assert (p.reference, p.notes, p.run) == (same, [], None)
    unknown = _with(tiny, tmp_path / "unknown.tflite", None)
    p = B.plan(B.BenchOptions(target=art, unlabeled=photos, reference=unknown))
    assert p.notes == ["m_int8.tflite vs unknown.tflite: provenance not recorded on both, so not checked "
                       "(the reference was chosen with --reference)"]


def test_check_comparable_reads_both_contracts():
    a = Contract(input_size=(8, 8), labels=("a", "b"), provenance=PROV)
    b = Contract(input_size=(16, 16), labels=("a", "b"), mean=(0.0, 0.0, 0.0), provenance=OTHER)
    with pytest.raises(ProvenanceError, match=f"made from different models \\(model sha256 {'1' * 12} vs {'3' * 12}"):
        RD.check_comparable("m.tflite", a, "f.tflite", b, True)
    assert RD.check_comparable("m.tflite", a, "f.tflite", dataclasses.replace(b, provenance=PROV), False) is None
    with pytest.raises(ProvenanceError, match="^m.tflite or its reference f.tflite records no provenance"):
        RD.check_comparable("m.tflite", a, "f.tflite", None, False)


# ------------------------------------------------------------------------------------ photos the model has seen
def _run_dir(root: Path, data: Path) -> Path:
    run = root / "run"
    (run / "export").mkdir(parents=True)
    (run / "model.keras").write_bytes(b"model bytes " * 100)
    (run / "recipe.json").write_text(RD.recipe_json(R.load("products")))
    prov = Provenance(sha256_file(run / "model.keras"), sha256_file(run / "recipe.json"))
    C.save(Contract(input_size=(32, 32), labels=("cat", "dog"), provenance=prov), run / "contract.json")
    (run / "metrics.json").write_text(json.dumps({"data": {"root": str(data)}}))
    (run / "export" / "m_int8.tflite").write_bytes(b"never read: the photos are refused first")
    return run


def test_seen_by_the_model_lists_training_and_calibration_images(tmp_path):
    data = tmp_path / "data"
    _photos(data / "train" / "cat", 1, seed=1)
    _photos(data / "train" / "dog", 1, seed=2)
    _photos(data / "test" / "cat", 1, seed=9)
    export = tmp_path / "export"
    export.mkdir()
    (export / "calibration.txt").write_text("# name\tsha256\ncal one.png\t" + "c" * 64 + "\n\nbad line\n")
    seen = seen_by_the_model(SimpleNamespace(export_dir=export, data_root=data))
    assert seen == {"c" * 64: "calibration image cal one.png",
                    sha256_file(data / "train" / "cat" / "p0.png"): "training image train/cat/p0.png",
                    sha256_file(data / "train" / "dog" / "p0.png"): "training image train/dog/p0.png"}
    assert seen_by_the_model(SimpleNamespace(export_dir=tmp_path / "none", data_root=None)) == {}


def test_refuse_seen_photos_names_the_first_and_what_it_is(tmp_path):
    photos = _photos(tmp_path / "u", 3, seed=4)
    ps = sorted(photos.iterdir())
    seen = {sha256_file(ps[1]): "training image train/cat/x.png", sha256_file(ps[2]): "calibration image y.png"}
    with pytest.raises(InputError) as e:
        refuse_seen_photos(ps, seen)
    assert str(e.value) == ("--unlabeled: 2 photo(s) are images the model was fitted to or calibrated on, e.g. "
                            "p1.png is training image train/cat/x.png; unlabeled evidence must be new photos of "
                            "the domain")
    refuse_seen_photos(ps[:1], seen)                     # a new photo: nothing to refuse
    refuse_seen_photos(ps, {})


def test_a_bench_of_a_run_refuses_its_training_images_as_unlabeled_photos(tmp_path):
    data = tmp_path / "data"
    _photos(data / "train" / "cat", 2, seed=5)
    run = _run_dir(tmp_path, data)
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(data / "train" / "cat" / "p1.png", photos / "renamed.png")
    _photos(photos / "new", 1, seed=6)
    with pytest.raises(InputError) as e:
        B.plan(B.BenchOptions(target=run, unlabeled=photos))
    assert str(e.value) == ("--unlabeled: 1 photo(s) are images the model was fitted to or calibrated on, e.g. "
                            "renamed.png is training image train/cat/p1.png; unlabeled evidence must be new photos "
                            "of the domain")
    B._check_unlabeled(B.BenchOptions(target=run, unlabeled=photos / "new"), RD.load_run(run))   # new: accepted
    B._check_unlabeled(B.BenchOptions(target=run, unlabeled=photos), None)       # no run: nothing to compare
    B._check_unlabeled(B.BenchOptions(target=run), RD.load_run(run))             # no photos: nothing to check


# ------------------------------------------------------------------------------------ contract
def test_the_resize_clamps_source_positions_to_the_image():
    lo, hi, frac = C._axis(4, 8)                          # 2x up: positions -0.25 .. 3.25 clamped to 0 .. 3
    assert lo.tolist() == [0, 0, 0, 1, 1, 2, 2, 3]
    assert hi.tolist() == [1, 1, 1, 2, 2, 3, 3, 3]
    assert frac.tolist() == [0.0, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.0]
    lo, hi, frac = C._axis(8, 4)                          # 2x down: no clamping needed
    assert (lo.tolist(), hi.tolist(), frac.tolist()) == ([0, 2, 4, 6], [1, 3, 5, 7], [0.5] * 4)

    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0] = [[0, 30, 60], [90, 120, 150]]
    img[..., 1] = 200
    img[..., 2] = [[255, 0, 255], [0, 255, 0]]
    out = C.resize_bilinear(img, (4, 6))

    def independent(src, oh, ow):                          # half-pixel bilinear, edges clamped
        src = src.astype(np.float64)
        ih, iw = src.shape[:2]
        res = np.zeros((oh, ow, 3))
        for y in range(oh):
            sy = min(max((y + 0.5) * ih / oh - 0.5, 0), ih - 1)
            y0, fy = int(np.floor(sy)), sy - np.floor(sy)
            y1 = min(y0 + 1, ih - 1)
            for x in range(ow):
                sx = min(max((x + 0.5) * iw / ow - 0.5, 0), iw - 1)
                x0, fx = int(np.floor(sx)), sx - np.floor(sx)
                x1 = min(x0 + 1, iw - 1)
                top = src[y0, x0] + (src[y0, x1] - src[y0, x0]) * fx
                bot = src[y1, x0] + (src[y1, x1] - src[y1, x0]) * fx
                res[y, x] = top + (bot - top) * fy
        return res

    np.testing.assert_allclose(out, independent(img, 4, 6), atol=1e-4)
    assert out[0, 0].tolist() == [0.0, 200.0, 255.0]       # the corners are the source's corners
    assert out[-1, -1].tolist() == [150.0, 200.0, 0.0]
    assert out[0, :, 1].tolist() == [200.0] * 6


def test_normalisation_is_float32_whatever_the_input():
    c = Contract(input_size=(8, 8), labels=("a", "b"), mean=(0.0, 127.5, 255.0), std=(255.0, 127.5, 1.0))
    px = np.array([[[0, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    for arr in (px, px.astype(np.float64), px.astype(np.float32)):
        x = C.normalize(arr, c)
        assert x.dtype == np.float32
        assert x.tolist() == [[[0.0, 1.0, 0.0], [1.0, -1.0, -255.0]]]
    rgb = np.full((10, 10, 3), 255, np.uint8)
    assert C.preprocess_array(rgb, c).dtype == np.float32


@pytest.mark.parametrize("field,name", [("resize", "resize must be one of ('bilinear',)"),
                                        ("color_order", "color_order must be RGB"), ("layout", "layout must be NHWC"),
                                        ("input_dtype", "input_dtype must be one of ('float32', 'int8', 'uint8')")])
def test_a_bad_text_field_is_shown_by_its_first_20_characters(field, name):
    value = "abcdefghijklmnopqrstuvwxyz"
    with pytest.raises(ContractError) as e:
        Contract(input_size=(8, 8), labels=("a", "b"), **{field: value}).validate("c.json")
    assert str(e.value) == f"c.json: {name}, got 'abcdefghijklmnopqrst'"


# ------------------------------------------------------------------------------------ profiles
@pytest.mark.parametrize("key", ["name", "device", "qemu_cpu", "threads", "anchors"])
def test_a_profile_lacking_a_key_is_refused_naming_it(tmp_path, key):
    from edgecnn.devices.emulated import load_profile
    full = {"name": "x", "device": "X", "qemu_cpu": "cortex-a53", "threads": 4, "anchors": []}
    import yaml
    p = tmp_path / "myphone.yaml"
    p.write_text(yaml.safe_dump({k: v for k, v in full.items() if k != key}))
    with pytest.raises(InputError) as e:
        load_profile(str(p))
    assert str(e.value) == f"profile myphone.yaml: missing '{key}'"


# ------------------------------------------------------------------------------------ LiteRT scores
def test_litert_scores_quantize_the_input_and_dequantize_the_output(tiny):
    from ai_edge_litert.interpreter import Interpreter

    from edgecnn.export.route import litert_scores
    flat = tiny[0]
    x = np.random.default_rng(7).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    got = litert_scores(flat, x)
    it = Interpreter(model_content=flat)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = i["quantization"], o["quantization"]
    assert i["dtype"] == np.int8 and o["dtype"] == np.int8
    want = []
    for img in x:
        q = np.clip(np.rint(img / np.float32(si)) + zi, -128, 127).astype(np.int8)
        it.set_tensor(i["index"], q[None])
        it.invoke()
        want.append((it.get_tensor(o["index"])[0].astype(np.float32) - zo) * np.float32(so))
    assert got.shape == (2, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, np.stack(want), atol=1e-6, rtol=0)
    assert not np.allclose(got[0], got[1])                 # two images, two answers


# ------------------------------------------------------------------------------------ the host agent's environment
def test_the_host_agent_gets_only_the_allowed_environment_and_repeats_combine(tiny, tmp_path, monkeypatch):
    """An environment variable that breaks `import numpy` (disabling a baseline CPU feature) stays out of
    the agent: the runs succeed (were the environment passed whole, the agent could not import numpy; PATH,
    LANG, LC_ALL and HOME reaching it change nothing the agent reports, so their presence is not observable
    here). The same real host runs the artifact twice (--repeat 2): its latency is the two runs combined."""
    import os

    from edgecnn.devices.host import HostDevice
    breaking = {"NPY_DISABLE_CPU_FEATURES": "X86_V2" if os.uname().machine == "x86_64" else "ASIMD"}
    probe = subprocess.run([sys.executable, "-I", "-c", "import numpy"], capture_output=True, text=True,
                           env={**os.environ, **breaking})
    art = _with(tiny, tmp_path / "m_int8.tflite", PROV)
    for k, v in breaking.items():
        monkeypatch.setenv(k, v)
    said: list[str] = []
    o = B.BenchOptions(target=art, runs=2, warmup=1, min_seconds=0.0, threads=1, repeat=2)
    with HostDevice(timeout=120) as host:
        (res,) = B._run_all(o, _plan(art), host, said.append).values()
    assert said == ["bench m_int8.tflite on host...", "latency repeat 2/2..."]
    assert res.format == "tflite" and res.input.dtype == "int8" and res.contract.provenance == PROV
    lat = res.latency_ms
    assert lat.repeats == 2 and len(lat.p50_per_repeat) == 2
    assert lat.p50 == pytest.approx(sum(lat.p50_per_repeat) / 2, abs=1e-3)          # the median of two
    assert lat.p50_spread_pct == pytest.approx(100 * abs(lat.p50_per_repeat[0] - lat.p50_per_repeat[1]) / lat.p50,
                                               abs=0.011 + 100 * 2e-4 / lat.p50)     # p50s listed at 4 decimals
    if probe.returncode == 0:
        pytest.skip("no environment variable breaks numpy's import on this machine: the filter is not observed")
