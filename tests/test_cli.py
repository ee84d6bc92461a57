"""The README's first command (`edgecnn demo`) and the `bundle` command, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.cli import main

ANDROID = Path(__file__).resolve().parents[1] / "android_demo"


@pytest.mark.slow
def test_demo_runs_the_whole_flow_and_names_what_to_deploy(products_subset, tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--recipe", "products", "--data", str(products_subset), "--out", str(out),
                                  "--epochs", "2"], env={"EDGECNN_CALIBRATION_DIR": str(tmp_path / "lists")})
    assert "Traceback" not in r.output
    doc = json.loads((out / "bench.json").read_text())
    int8 = [x for x in doc["devices"][0]["records"] if x["precision"].startswith("int8")]
    passing = sorted((x for x in int8 if x["verdict"] == "PASS"), key=lambda x: x["size_mb"])
    undecided = [x for x in int8 if x["verdict"] == "INCONCLUSIVE"]
    lines = r.output.strip().splitlines()
    verdicts = [i for i, ln in enumerate(lines) if ln.startswith("verdict: ")]
    assert len(verdicts) == 1, r.output                       # one verdict, near the end
    verdict, tail = lines[verdicts[0]], lines[verdicts[0] + 1:]
    assert tail[-1] == f"report:  {out / 'report.html'}" and all(t.startswith(("next:", "report:")) for t in tail)
    if passing:     # the one verdict names the artifact to ship, and the exit status means exactly that
        assert r.exit_code == 0 and verdict.startswith(f"verdict: PASS: deploy {passing[0]['artifact']}"), r.output
    elif undecided:
        assert r.exit_code == 3 and verdict.startswith("verdict: INCONCLUSIVE"), r.output
    else:
        assert r.exit_code == 1 and verdict.startswith("verdict: FAIL"), r.output
    chosen = (passing or sorted(undecided, key=lambda x: x["size_mb"]) or [None])[0]
    for x in int8:
        if x["verdict"] != "PASS" and x is not chosen:       # shown as rejected, with the reason
            assert f"rejected: {x['artifact']}" in r.output
    page = (out / "report.html").read_text()
    assert f'data-verdict="{doc["verdict"]}"' in page
    for name in ("model.keras", "recipe.json", "contract.json", "metrics.json", "export/export_report.json",
                 "bench.md", "bench/host.json"):
        assert (out / name).is_file(), name


def test_bundle_command_uses_the_runs_budget(exported_run, tmp_path):
    app = tmp_path / "android_demo"
    (app / "app" / "src" / "main").mkdir(parents=True)
    shutil.copy(ANDROID / "app" / "src" / "main" / "AndroidManifest.xml", app / "app" / "src" / "main")
    r = CliRunner().invoke(main, ["bundle", str(exported_run), "--android", str(app)])
    assert r.exit_code == 0, r.output
    assert "of 20.0 MB budget" in r.output and "model_int8.tflite" in r.output
    assets = app / "app" / "src" / "main" / "assets"
    assert {p.name for p in assets.iterdir()} >= {"model.tflite"}
    umask = os.umask(0)
    os.umask(umask)
    assert assets.stat().st_mode & 0o777 == 0o777 & ~umask     # not mkdtemp's 0700
    r = CliRunner().invoke(main, ["bundle", str(exported_run), "--android", str(app), "--budget-mb", "0.5"])
    assert r.exit_code == 1 and "over the 0.5 MB size budget" in r.output, r.output
    r = CliRunner().invoke(main, ["bundle", str(exported_run), "--android", str(tmp_path / "nope")])
    assert r.exit_code == 2 and r.output.startswith("Error: ") and "Traceback" not in r.output

