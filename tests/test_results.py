"""The typed result documents (edgecnn.results) on hand-built values: what is written is read back
equal, optional keys stay absent, a file of another version or shape is one InputError naming the field,
and a run keeps one bench document per device kind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn import results as R
from edgecnn import verdict as V
from edgecnn.core.errors import InputError
from edgecnn.rundir import bench_file, read_benches, record_bench
from results_helpers import document, entry, judged, one_device, record


def test_a_bench_document_reads_back_equal_with_its_version():
    doc = one_device(record(), record("n.tflite", budgets={"accuracy_drop_pp": judged(
        "INCONCLUSIVE", 0.5, 1.0, interval=(-0.25, 2.5), images_to_decide=400)}))
    raw = json.loads(doc.to_json())
    assert raw["schema"] == "edgecnn.bench/4" and raw["verdict"] == "INCONCLUSIVE"
    assert R.parse(raw, R.BenchDocument, "x") == doc


def test_optional_keys_are_absent_and_pass_is_spelled_as_in_the_file():
    b = json.loads(judged("PASS", 2.0, 20.0).to_json())
    assert b == {"limit": 20.0, "value": 2.0, "verdict": "PASS", "pass": True}
    u = json.loads(judged("INCONCLUSIVE", 0.5, 1.0, interval=(-1.0, 2.0), unlabeled_to_decide=30).to_json())
    assert u == {"limit": 1.0, "value": 0.5, "verdict": "INCONCLUSIVE", "pass": False, "interval": [-1.0, 2.0],
                 "unlabeled_to_decide": 30}
    assert "unlabeled" not in json.loads(V.paired([0, 1], [0, 1], [0, 0]).to_json())


def test_numpy_values_in_a_producers_description_are_written_as_numbers():
    doc = one_device(record(device_info={"cores": np.int64(4), "ghz": np.float32(1.5)}))
    info = json.loads(doc.to_json())["devices"][0]["records"][0]["device_info"]
    assert info == {"cores": 4, "ghz": 1.5}


@pytest.mark.parametrize("raw,says", [
    ({"schema": "edgecnn.bench/3"}, "not a result of this version (schema edgecnn.bench/4, found edgecnn.bench/3)"),
    ([], "not a result of this version (schema edgecnn.bench/4, found None)"),
    ("edgecnn.bench/4", "found None"),
])
def test_another_version_is_refused_before_its_fields_are_read(raw, says):
    with pytest.raises(InputError) as e:
        R.parse(raw, R.BenchDocument, "b.json")
    assert str(e.value).startswith("b.json: ") and says in str(e.value)


def test_a_wrong_or_unknown_field_is_named():
    raw = json.loads(one_device(record()).to_json())
    raw["devices"][0]["records"][0]["size_mb"] = "big"
    with pytest.raises(InputError, match=r"^b.json: not as edgecnn writes it \(devices.0.records.0.size_mb: "):
        R.parse(raw, R.BenchDocument, "b.json")
    raw = json.loads(one_device(record()).to_json())
    raw["devices"][0]["surprise"] = 1
    with pytest.raises(InputError, match=r"devices.0.surprise: Extra inputs are not permitted"):
        R.parse(raw, R.BenchDocument, "b.json")
    raw = json.loads(one_device(record()).to_json())
    raw["devices"][0]["verdict"] = "MAYBE"
    with pytest.raises(InputError, match=r"devices.0.verdict: "):
        R.parse(raw, R.BenchDocument, "b.json")


def test_reading_a_file_that_is_not_json_is_one_error(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match=r"b.json: cannot be read as JSON"):
        R.read(bad, R.BenchDocument)
    with pytest.raises(InputError, match=r"cannot be read as JSON"):
        R.read(tmp_path / "missing.json", R.BenchDocument)


def test_a_run_keeps_the_latest_bench_per_device_kind_and_only_devices_with_records(tmp_path):
    host = entry(record(), name="host")
    board = entry(record(device="jetson"), name="lab board", device="jetson")
    down = entry(name="phone", device="phone", verdict=V.UNREACHABLE, error="no adb client")
    record_bench(document(host, board, down), tmp_path)
    assert sorted(p.name for p in (tmp_path / "bench").iterdir()) == ["host.json", "jetson.json"]
    kept = {d.devices[0].device: d for d in read_benches(tmp_path)}
    assert set(kept) == {"host", "jetson"}
    assert kept["jetson"].devices == [board] and kept["jetson"].verdict == board.verdict
    assert kept["host"].verdict == "PASS" and bench_file(tmp_path, "host").is_file()
    newer = entry(record("n.tflite", budgets={"size_mb": judged("FAIL", 30.0, 20.0)}), name="host")
    record_bench(document(newer), tmp_path)
    again = {d.devices[0].device: d for d in read_benches(tmp_path)}
    assert again["host"].verdict == "FAIL" and again["host"].devices[0].records[0].artifact == "n.tflite"
    assert again["jetson"] == kept["jetson"]


def test_one_device_of_a_document_carries_that_devices_verdict():
    a, b = entry(record(), name="a"), entry(record(budgets={"size_mb": judged("FAIL", 30.0, 20.0)}), name="b")
    doc = document(a, b)
    assert doc.verdict == "FAIL"
    assert doc.of_device(a).verdict == "PASS" and doc.of_device(a).devices == [a]
    assert doc.of_device(b).verdict == "FAIL" and doc.verdict == "FAIL"      # the original is unchanged
