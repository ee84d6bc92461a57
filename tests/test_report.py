"""The run's report page: built by train, export and bench, rebuilt by `edgecnn report`, opened in a
real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecnn.cli import main

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("EDGECNN_TEST_ARTIFACTS", REPO / "test-artifacts"))


def _browser():
    """Chromium driven by Selenium (a test that calls this is marked needs_tools("chromium"))."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium not installed (pip install -e '.[test]')")
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        o.add_argument(a)
    o.binary_location = shutil.which("chromium")
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)
    d.set_page_load_timeout(60)
    d.set_script_timeout(30)
    return d


@pytest.fixture(scope="module")
def benched_run(exported_run, products_subset, tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("report") / "products"
    shutil.copytree(exported_run, run, symlinks=True)
    out = run.parent / "bench.json"
    r = CliRunner().invoke(main, ["bench", str(run), "--data", str(products_subset / "test"), "--runs", "30",
                                  "--min-seconds", "0", "--json", str(out)])
    assert r.exit_code in (0, 1, 3), r.output
    return run, json.loads(out.read_text())


def test_train_export_and_bench_each_leave_the_page_current(trained_run, benched_run):
    trained = (trained_run / "report.html").read_text()
    assert "not exported yet" in trained and "not benchmarked yet" in trained
    run, doc = benched_run
    page = (run / "report.html").read_text()
    assert "not exported yet" not in page and "not benchmarked yet" not in page
    assert json.loads((run / "bench" / "host.json").read_text())["verdict"] == doc["verdict"]
    for r in doc["devices"][0]["records"]:
        assert r["artifact"] in page
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must not load anything from outside itself"
    assert "<script" not in page


@pytest.mark.needs_tools("chromium")
def test_the_page_renders_in_a_headless_browser(benched_run):
    run, doc = benched_run
    d = _browser()
    try:
        d.get((run / "report.html").as_uri())
        images = d.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        errors = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        shown = d.find_element("id", "verdict").get_attribute("data-verdict")
        sections = [s.get_attribute("id") for s in d.find_elements("tag name", "section")]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        d.set_window_size(1200, d.execute_script("return document.body.scrollHeight") + 50)
        assert d.save_screenshot(str(ARTIFACTS / "report.png"))
    finally:
        d.quit()
    assert errors == [], errors
    assert all(ok and width > 0 for _, ok, width in images), images          # every image decoded
    alts = [alt for alt, _, _ in images]
    assert {"training curves", "confusion matrix", "latency per artifact and device"} <= set(alts), alts
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(name in alts for name in metrics["gradcam"])                    # each Grad-CAM overlay shown
    assert shown == doc["verdict"]
    assert sections == ["data", "training", "export", "bench"]


def test_report_command_rebuilds_a_page_and_refuses_what_is_not_a_run(benched_run, tmp_path):
    run, _ = benched_run
    (run / "report.html").unlink()
    r = CliRunner().invoke(main, ["report", str(run)])
    assert r.exit_code == 0 and (run / "report.html").is_file(), r.output
    r = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert r.exit_code == 2 and r.output.startswith("Error: ") and "no metrics.json" in r.output


def test_a_result_file_that_edgecnn_did_not_write_is_one_error_and_never_blocks_a_bench(benched_run, products_subset):
    run, _ = benched_run
    stale = run / "bench" / "jetson.json"
    for text, says in (('{"schema": "edgecnn.bench/3", "device": "jetson"}',
                        "not a result of this version (schema edgecnn.bench/4, found edgecnn.bench/3)"),
                       ('{"schema": "edgecnn.bench/4", "notes": [], "devices": [{"name": "jetson", "notes": [], '
                        '"records": [{"artifact": 1}]}]}',
                        "not as edgecnn writes it (")):
        stale.write_text(text)
        r = CliRunner().invoke(main, ["report", str(run)])
        assert r.exit_code == 2 and r.output.startswith("Error: ") and says in r.output, r.output
        assert "Traceback" not in r.output
    before = (run / "report.html").read_bytes()
    r = CliRunner().invoke(main, ["bench", str(run / "export" / "model_int8.tflite"), "--runs", "10",
                                  "--min-seconds", "0"])
    assert r.exit_code == 0, r.output                      # the bench itself is whole and judged
    assert "report.html not rebuilt" in r.output and (run / "report.html").read_bytes() == before
    stale.unlink()
    assert CliRunner().invoke(main, ["report", str(run)]).exit_code == 0
