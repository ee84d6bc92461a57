"""A verdict that cannot pass on a wrong number: budgets from the run, provenance, skipped images,
capabilities declared by devices, and the typed agent protocol through every device kind here.

Each test below stands for one observation that printed PASSED (or refused a valid request) before:
custom-recipe budgets ignored, a stale float reference trusted, symlinked --data shipped as links to a
board, unreadable images dropped from the verdict, --baseline refused on jetson.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from devices_helpers import TOOLS, Sshd, image_folder, missing_tools, need_ssh, shared_tiny_model
from edgecnn import recipe as R
from edgecnn.core.errors import InputError
from edgecnn.core.protocol import AgentRequest, AgentResult, ProtocolError, read_reply
from edgecnn.bench import BenchOptions, bench
from edgecnn.cli import main
from edgecnn.devices import available_devices, get_device
from edgecnn.devices import host as host_module
from edgecnn.devices.base import agent_zip
from edgecnn.fleet import Fleet, device

QUICK = ["--runs", "10", "--warmup", "1", "--min-seconds", "0", "--threads", "1"]


def _cli(*args, env=None):
    r = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in r.output, r.output
    return r


def _test_dir(run: Path) -> str:
    return json.loads((run / "metrics.json").read_text())["data"]["root"] + "/test"


@pytest.fixture(scope="session")
def ssh_board(tmp_path_factory):
    need_ssh()
    s = Sshd(tmp_path_factory.mktemp("verdict-sshd")).start()
    yield {"host": s.user_host, "port": s.port, "identity": str(s.client_key), "known_hosts": str(s.known_hosts)}
    s.stop()


# ------------------------------------------------------------------ 1. budgets come from the run
@pytest.mark.slow
def test_custom_recipe_budgets_are_enforced(products_subset, tmp_path, monkeypatch):
    """A recipe file named like a built-in, with a 1 MB size and a 0.001 ms p90 budget: bench fails on both."""
    rec = R.load("products").model_dump(mode="json")
    rec["budgets"].update(size_mb=1.0, max_p90_ms=0.001)
    (tmp_path / "products.yaml").write_text(yaml.safe_dump(rec))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "products").mkdir()     # a folder named like the built-in: the bare name still means it
    assert R.load("products").budgets.size_mb == 20.0
    run = tmp_path / "run"
    r = _cli("train", "--recipe", "./products.yaml", "--data", products_subset, "--out", run, "--image-size", "96",
             "--epochs", "2", "--quiet", env={"EDGECNN_CALIBRATION_DIR": str(tmp_path / "calib")})
    assert r.exit_code == 0, r.output
    assert json.loads((run / "recipe.json").read_text())["budgets"]["size_mb"] == 1.0
    r = _cli("export", run, "--int8", env={"EDGECNN_CALIBRATION_DIR": str(tmp_path / "calib")})
    assert r.exit_code in (0, 1, 3), r.output
    out = tmp_path / "bench.json"
    r = _cli("bench", run / "export" / "model_int8.tflite", *QUICK, "--json", out)
    assert r.exit_code == 1, r.output
    b = json.loads(out.read_text())["devices"][0]["records"][0]["budgets"]
    assert b["size_mb"]["limit"] == 1.0 and b["size_mb"]["pass"] is False
    assert b["p90_ms"]["limit"] == 0.001 and b["p90_ms"]["pass"] is False
    # the command line overrides the run's budgets
    r = _cli("bench", run / "export" / "model_int8.tflite", *QUICK, "--budget-mb", "20", "--max-p90-ms", "1000")
    assert r.exit_code == 0, r.output
    assert "budgets: recipe products of" in r.output and "command line (size, p90)" in r.output


def test_bare_recipe_name_is_a_builtin_and_a_path_is_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "products").mkdir()
    r = _cli("recipes", "show", "products")
    assert r.exit_code == 0 and "name: products" in r.output, r.output
    r = _cli("recipes", "show", "./products")
    assert r.exit_code == 2 and "recipe file not found" in r.output


# ------------------------------------------------------------------ 2. stale artifacts are never trusted
@pytest.fixture(scope="session")
def other_run(products_subset, tmp_path_factory):
    """Another model with the same labels and size (random init, 1 epoch), exported to float."""
    run = tmp_path_factory.mktemp("other") / "run"
    r = _cli("train", "--recipe", "products", "--data", products_subset, "--out", run, "--image-size", "96",
             "--epochs", "1", "--quiet", "--weights", "none")
    assert r.exit_code == 0, r.output
    r = _cli("export", run, "--float")
    assert r.exit_code == 0, r.output
    return run


def test_a_float_reference_from_another_model_is_refused(exported_run, other_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    shutil.copyfile(other_run / "export" / "model_fp32.tflite", run / "export" / "model_fp32.tflite")
    r = _cli("bench", run, "--data", _test_dir(run), *QUICK)
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("Error: ")
    assert "model_fp32.tflite was made from another model" in r.output
    # the same stale file given explicitly as the reference of a good artifact
    r = _cli("bench", exported_run / "export" / "model_int8.tflite", "--reference", run / "export" / "model_fp32.tflite",
             "--data", _test_dir(run), *QUICK)
    assert r.exit_code == 2 and "were made from different models" in r.output, r.output
    # bundle refuses it too
    r = _cli("bundle", run, "--android", Path(__file__).resolve().parents[1] / "android_demo", "--precision", "fp32")
    assert r.exit_code == 2 and "made from another model" in r.output, r.output


def test_retraining_into_a_run_never_keeps_its_old_export(exported_run, products_subset, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    args = ["train", "--recipe", "products", "--data", products_subset, "--out", run, "--image-size", "96",
            "--epochs", "1", "--quiet", "--seed", "3"]
    r = _cli(*args)
    assert r.exit_code == 2 and "--overwrite" in r.output, r.output
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before   # untouched
    r = _cli(*args, "--overwrite")
    assert r.exit_code == 0, r.output
    assert not (run / "export").exists() and (run / "recipe.json").is_file()
    assert (run / "model.keras").read_bytes() != before["model.keras"]
    assert not list(tmp_path.glob(".run.*"))       # no staging or old folder left beside it


def test_a_model_keras_swapped_under_its_contract_is_refused(exported_run, other_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported_run, run, symlinks=True)
    shutil.copyfile(other_run / "model.keras", run / "model.keras")
    r = _cli("bench", run, *QUICK)
    assert r.exit_code == 2 and "not the model its contract.json was written for" in r.output, r.output


def test_artifacts_record_their_provenance(exported_run):
    from edgecnn.core.artifact import read_contract
    from edgecnn.core.io import sha256_file
    run_prov = json.loads((exported_run / "contract.json").read_text())["provenance"]
    assert run_prov["model_sha256"] == sha256_file(exported_run / "model.keras")
    assert run_prov["recipe_sha256"] and (exported_run / "recipe.json").is_file()
    report = json.loads((exported_run / "export" / "export_report.json").read_text())
    for rec in report["artifacts"]:
        assert rec["provenance"] == run_prov and rec["sha256"] == sha256_file(exported_run / "export" / rec["artifact"])
        assert read_contract(exported_run / "export" / rec["artifact"]).provenance.to_dict() == run_prov


# ------------------------------------------------------------------ 3. symlinked --data on a board
def _symlinked_data(tmp_path: Path) -> Path:
    real = image_folder(tmp_path / "real", per_class=4)
    links = tmp_path / "links"
    for d in sorted(real.iterdir()):
        (links / d.name).mkdir(parents=True)
        for f in sorted(d.iterdir()):
            (links / d.name / f.name).symlink_to(os.path.relpath(f, links / d.name))
    return links


def test_symlinked_data_is_evaluated_the_same_on_a_board(ssh_board, tmp_path_factory, tmp_path):
    model = shared_tiny_model(tmp_path_factory)
    data = _symlinked_data(tmp_path)
    req = AgentRequest(model=str(model), data=str(data), latency=False)
    with get_device("host") as h:
        on_host = h.run(req)
    with get_device("jetson", **ssh_board) as dev:
        on_board = dev.run(req)
    assert on_host.evaluation.images == 12
    assert on_board.evaluation == on_host.evaluation


# ------------------------------------------------------------------ 4. skipped images are in the verdict
def test_unreadable_images_are_part_of_the_verdict(exported_run, tmp_path):
    data = tmp_path / "test"
    shutil.copytree(_test_dir(exported_run), data, symlinks=False)
    cls = sorted(data.iterdir())[0]
    (cls / "empty.jpg").write_bytes(b"")
    (cls / "notes.jpg").write_text("not an image")
    good = sorted(cls.glob("*.jpg"))[0]
    (cls / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    out = tmp_path / "bench.json"
    r = _cli("bench", exported_run, "--data", data, *QUICK, "--json", out, "--max-drop", "15")   # 30 images bound 11.4 pp
    assert r.exit_code == 0, r.output
    assert "3 image(s) of --data could not be read and are not counted" in r.output
    assert "(+3 unread)" in r.output
    for rec in json.loads(out.read_text())["devices"][0]["records"]:
        assert sorted(Path(s["path"]).name for s in rec["skipped"]) == ["empty.jpg", "notes.jpg", "truncated.jpg"]
        assert rec["images"] == 30
    report = json.loads((exported_run / "export" / "export_report.json").read_text())
    assert report["skipped"] == []      # the export's own test split: nothing unreadable


def test_data_with_no_readable_image_is_an_error(exported_run, tmp_path):
    cls = tmp_path / "d" / "00_tshirts"
    cls.mkdir(parents=True)
    (cls / "a.jpg").write_bytes(b"")
    r = _cli("bench", exported_run / "export" / "model_int8.tflite", "--data", tmp_path / "d", *QUICK)
    assert r.exit_code == 2 and "none of its 1 images could be read" in r.output, r.output


# ------------------------------------------------------------------ 5. capabilities are declared data
def test_devices_declare_what_they_can_do():
    kinds = available_devices()
    assert {n for n, c in kinds.items() if c.capabilities.baseline} == {"host", "jetson"}
    assert kinds["phone-emulated"].capabilities.latency_estimated and not kinds["phone"].capabilities.accuracy
    r = _cli("bench", "x.tflite", "--device", "phone-emulated", "--host", "a@b")
    assert r.exit_code == 2 and "--host does not apply to --device phone-emulated" in r.output


def test_baseline_on_jetson_is_timed_on_the_board(ssh_board, tmp_path_factory, tmp_path):
    model = shared_tiny_model(tmp_path_factory)
    twin = tmp_path / "twin.tflite"
    shutil.copyfile(model, twin)
    doc = bench(BenchOptions(model, runs=10, warmup=1, min_seconds=0.0, threads=1, baseline=twin,
                             max_slowdown_pct=50.0), Fleet((device("jetson", ssh_board),)), log=lambda m: None)
    rec = doc.devices[0].records[0]
    assert rec.device == "jetson" and rec.vs_baseline.p50_ratio > 0
    assert rec.budgets["slowdown_pct"].limit == 50.0


# ------------------------------------------------------------------ the typed protocol
def _round_trip(res: AgentResult) -> None:
    back = AgentResult.from_json(res.to_json())
    assert back == res and back.to_json() == res.to_json()


def test_request_and_result_round_trip_through_every_device(ssh_board, tmp_path_factory, tmp_path):
    model = shared_tiny_model(tmp_path_factory)
    data = image_folder(tmp_path / "data")
    req = AgentRequest(model=str(model), data=str(data), runs=10, warmup=1, min_seconds=0.0, threads=1)
    assert AgentRequest.from_json(req.to_json()) == req
    results = {}
    with get_device("host") as d:
        results["host"] = d.run(req)
    with get_device("jetson", **ssh_board) as d:
        results["jetson"] = d.run(req)
    if not missing_tools(TOOLS["qemu"][0]):
        with get_device("phone-emulated", profile="pixel3", rounds=1, log=lambda m: None) as d:
            results["phone-emulated"] = d.run(req)
    for name, res in results.items():
        _round_trip(res)
        assert res.evaluation.images == 9, name
    assert results["jetson"].evaluation == results["host"].evaluation


@pytest.mark.parametrize("bad,message", [
    ({"runs": 0}, "runs: must be at least 1"),
    ({"runs": True}, "expected an integer"),
    ({"min_seconds": "2"}, "expected a number"),
    ({"colour": "red"}, "unknown field(s) colour"),
    ({"schema": "edgecnn.agent.request/1"}, "different edgecnn versions"),
])
def test_malformed_requests_are_refused_by_name(bad, message):
    d = {**AgentRequest(model="m.tflite").to_dict(), **bad}
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        AgentRequest.from_dict(d)
    with pytest.raises(ProtocolError, match="finite"):
        read_reply('{"schema": "edgecnn.agent.result/3", "artifact": "m", "format": "tflite", "size_mb": NaN}',
                   AgentResult, "test")


def _old_agent(replace_request: bool, replace_result: bool) -> bytes:
    """The agent zip with its protocol as an older edgecnn had it (the previous schema version)."""
    src = zipfile.ZipFile(io.BytesIO(agent_zip()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in src.namelist():
            data = src.read(name)
            if name == "edgecnn/core/protocol.py":
                if replace_request:
                    data = data.replace(b'"edgecnn.agent.request/3"', b'"edgecnn.agent.request/2"')
                if replace_result:
                    data = data.replace(b'"edgecnn.agent.result/3"', b'"edgecnn.agent.result/2"')
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("old_request,old_result,message", [
    (True, False, "schema 'edgecnn.agent.request/3', expected 'edgecnn.agent.request/2'"),
    (False, True, "schema 'edgecnn.agent.result/2', expected 'edgecnn.agent.result/3'"),
])
def test_an_older_agent_is_a_clear_error(monkeypatch, tmp_path_factory, old_request, old_result, message):
    model = shared_tiny_model(tmp_path_factory)
    monkeypatch.setattr(host_module, "agent_zip", lambda: _old_agent(old_request, old_result))
    with get_device("host") as d:
        with pytest.raises(InputError, match=message) as e:   # a ProtocolError, or the old agent's own refusal
            d.run(AgentRequest(model=str(model), runs=5, warmup=0, min_seconds=0.0))
    assert "different edgecnn versions" in str(e.value)


def test_the_agent_zip_is_the_agent_and_the_core_whole():
    names = set(zipfile.ZipFile(io.BytesIO(agent_zip())).namelist())
    root = Path(__file__).resolve().parents[1] / "edgecnn"
    for sub in ("agent", "core"):
        assert {f"edgecnn/{p.relative_to(root).as_posix()}" for p in (root / sub).rglob("*.py")} <= names
    assert not any(n.startswith("edgecnn/") and not n.startswith(("edgecnn/agent/", "edgecnn/core/"))
                   and n != "edgecnn/__init__.py" for n in names)


def test_the_host_agent_ignores_the_callers_folder(tmp_path_factory, tmp_path, monkeypatch):
    """A numpy.py in the working directory (or on PYTHONPATH) is never imported by the host agent."""
    model = shared_tiny_model(tmp_path_factory)
    (tmp_path / "numpy.py").write_text("raise SystemExit('the local numpy.py was imported')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with get_device("host") as d:
        res = d.run(AgentRequest(model=str(model), runs=5, warmup=0, min_seconds=0.0))
    assert res.latency_ms.n >= 5 and dataclasses.is_dataclass(res)
