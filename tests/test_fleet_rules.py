"""The fleet's rules on hand-built inputs (no device runs): a bench's verdict is the worst of its devices' in
the order PASS < INCONCLUSIVE < ERROR < UNREACHABLE < FAIL, its exit status follows that verdict
(0, 3, 2, 2, 1) for every mix, and a fleet file or entry is validated field by field.
The same bench over real boards and emulated phones: tests/test_fleet.py (needs OpenSSH and QEMU)."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_helpers as R  # noqa: E402

from edgecnn import bench as B  # noqa: E402
from edgecnn import fleet as F  # noqa: E402
from edgecnn import verdict as V  # noqa: E402
from edgecnn.core.errors import BudgetError, InconclusiveError, InputError  # noqa: E402
from edgecnn.results import BENCH_SCHEMA, BenchDocument, DeviceEntry, Paired  # noqa: E402

ORDER = ["PASS", "INCONCLUSIVE", "ERROR", "UNREACHABLE", "FAIL"]     # bench's docstring order
EXIT = {"PASS": 0, "INCONCLUSIVE": 3, "ERROR": 2, "UNREACHABLE": 2, "FAIL": 1}
BUDGET = {"PASS": ("size_mb", 2.0, 20.0), "FAIL": ("size_mb", 3.0, 1.0), "INCONCLUSIVE": ("accuracy_drop_pp", 0.5, 1.0)}


def _entry(i: int, v: str, **kw) -> DeviceEntry:
    """A device of verdict v: benched (one record whose budget has that verdict), or not, with its reason
    (status "refused" for ERROR, "unreachable" for UNREACHABLE). kw: the entry's fields to set instead
    (records=, notes=, device=, error=)."""
    name = f"d{i}-{v.lower()}"
    if v not in BUDGET:
        return R.entry(name=name, verdict=v, **{"error": f"{name} said no", **kw})
    budget, value, limit = BUDGET[v]
    records = kw.pop("records", None) or [R.record("m.tflite", budgets={budget: R.judged(v, value, limit)},
                                                   throughput_ips=None, peak_rss_mb=None)]
    return R.entry(*records, name=name, verdict=v, **kw)


def _doc(*verdicts: str, changed: dict[int, dict] | None = None) -> BenchDocument:
    """A bench of one device per verdict; changed: {index: fields} for the devices built otherwise."""
    changed = changed or {}
    return R.document(*(_entry(i, v, **changed.get(i, {})) for i, v in enumerate(verdicts)), parallel=2,
                      wall_s=1.25)


def _exit_of(doc: BenchDocument) -> tuple[int, str]:
    """What the CLI makes of B.check: (exit status, the one line)."""
    try:
        B.check(doc)
    except (BudgetError, InconclusiveError, B.DeviceUnreachable) as e:
        return type(e).exit_code, str(e)
    return 0, ""


def test_the_verdict_is_the_worst_in_the_stated_order():
    assert list(V.SEVERITY) == ORDER
    assert V.worst([]) == "PASS"
    for a, b in itertools.product(ORDER, repeat=2):
        assert V.worst([a, b]) == V.worst([b, a]) == ORDER[max(ORDER.index(a), ORDER.index(b))]
    for combo in itertools.combinations(ORDER, 3):
        assert V.worst(list(combo)) == combo[-1]             # combinations keep ORDER's order


@pytest.mark.parametrize("verdicts", [
    *([v] for v in ORDER),
    *(list(p) for p in itertools.combinations(ORDER, 2)),
    ["PASS", "PASS", "INCONCLUSIVE", "PASS"],
    ["UNREACHABLE", "ERROR", "PASS"],
    ["INCONCLUSIVE", "ERROR", "UNREACHABLE", "FAIL", "PASS"],
])
def test_every_mix_of_device_verdicts_exits_with_the_worst_ones_status(verdicts):
    doc = _doc(*verdicts)
    worst = max(verdicts, key=ORDER.index)
    assert doc.verdict == worst
    code, line = _exit_of(doc)
    assert code == EXIT[worst]
    if worst == "PASS":
        assert line == ""
        return
    down = ("ERROR", "UNREACHABLE")
    named = [d for d in doc.devices if (d.verdict in down if worst in down else d.verdict == worst)]
    who = (lambda d: f"{d.name}: ") if len(verdicts) > 1 else (lambda d: "")
    if worst == "FAIL":
        expected = "budget failed: " + "; ".join(f"{who(d)}m.tflite: size_mb 3.00 > 1.0" for d in named)
    elif worst == "INCONCLUSIVE":
        expected = ("the images cannot decide " + "; ".join(f"{who(d)}m.tflite: accuracy_drop_pp 0.50 vs 1.0"
                                                            for d in named)
                    + " (add images, or judge point estimates with --point-estimate)")
    else:
        expected = "; ".join(f"{d.name} could not be benched: {d.name} said no" for d in named) + (
            " (the others' results are above)" if len(named) < len(verdicts) else "")
    assert line == expected
    others = [d.name for d in doc.devices if d not in named]
    assert not any(o in line for o in others) or len(verdicts) == 1


def test_exit_statuses_of_the_error_kinds_are_the_documented_ones():
    assert (BudgetError.exit_code, B.DeviceUnreachable.exit_code, InconclusiveError.exit_code) == (1, 2, 3)


def test_the_table_counts_each_verdict_and_lists_why_a_device_was_not_benched():
    doc = _doc("PASS", "UNREACHABLE", "UNREACHABLE", "FAIL",
               changed={1: {"error": "cannot reach b: connection refused"}})
    assert [d.status for d in doc.devices] == ["ok", "unreachable", "unreachable", "ok"]
    text = B.render(doc)
    assert text.splitlines()[-1] == ("FAILED (1 PASS, 2 UNREACHABLE, 1 FAIL; 4 devices, at most 2 at once, 1.2 s; "
                                     "accuracy budgets judged on 95% intervals; ~ = estimated latency)")
    assert "d1-unreachable: unreachable: cannot reach b: connection refused" in text.splitlines()
    assert text.splitlines()[0].split() == ["device", "artifact", "format", "precision", "MB", "images", "accuracy",
                                            "drop", "pp", "[95%]", "agree", "p50", "ms", "p90", "ms", "p99", "ms",
                                            "img/s", "RSS", "MB", "budgets", "verdict"]
    rows = [ln.split() for ln in text.splitlines() if ln[:1] == "d" and ln[1:2].isdigit()]
    assert [r[0] for r in rows[:4]] == ["d0-pass", "d1-unreachable", "d2-unreachable", "d3-fail"]
    assert [r[-1] for r in rows[:4]] == ["PASS", "UNREACHABLE", "UNREACHABLE", "FAIL"]
    assert rows[1] == ["d1-unreachable", *["-"] * 14, "UNREACHABLE"]       # no bench: every column a dash


def test_a_device_entry_takes_its_own_timeout_else_the_commands():
    own = F.device("host", {"timeout": 7})
    assert own.device_options(300.0).given() == {"timeout": 7}
    assert F.device("host", {}).device_options(300.0).given() == {"timeout": 300.0}
    assert F.device("phone-emulated", {"profile": "pixel3"}).device_options(42.0).given() == {"timeout": 42.0,
                                                                                     "profile": "pixel3"}


def test_entries_are_named_by_kind_and_their_identifying_options():
    assert F.device("host", {}).name == "host"
    assert F.device("phone-emulated", {"profile": "pixel3"}).name == "phone-emulated pixel3"
    assert F.device("jetson", {"host": "u@b1", "port": 22}).name == "jetson u@b1"
    assert F.device("phone", {"serial": "R58"}, name="lab phone").name == "lab phone"
    d = F.device("jetson", {"port": 2222, "host": "u@b"})
    assert d.options.given() == {"host": "u@b", "port": 2222}                # typed: only what the entry set
    assert d == F.device("jetson", {"host": "u@b", "port": 2222})             # equal entries compare equal


@pytest.mark.parametrize("kind,options,name,says", [
    ("toaster", {}, None, "the fleet: unknown device 'toaster'; available: "),
    ("host", {"serial": "X"}, None, "the fleet: 'serial' does not apply to device host (it takes: "),
    ("jetson", {"host": "u@b", "port": 0}, None, "the fleet: port must be a whole number from 1 to 65535, got 0"),
    ("jetson", {"host": "u@b", "port": 65536}, None, "port must be a whole number from 1 to 65535, got 65536"),
    ("jetson", {"host": "u@b", "port": 22.5}, None, "port must be a whole number from 1 to 65535, got 22.5"),
    ("jetson", {"host": "u@b", "port": True}, None, "port must be a whole number from 1 to 65535, got True"),
    ("host", {"timeout": 0.5}, None, "timeout must be a number of seconds from 1 to 86400, got 0.5"),
    ("host", {"timeout": 86401}, None, "timeout must be a number of seconds from 1 to 86400, got 86401"),
    ("host", {"timeout": "60"}, None, "timeout must be a number of seconds from 1 to 86400, got '60'"),
    ("jetson", {"host": "u@b", "accept_new_host_key": "yes"}, None, "must be true or false, got 'yes'"),
    ("jetson", {"host": " "}, None, "host must be a text value, got ' '"),
    ("host", {}, "  ", "the fleet: name must be a text value, got '  '"),
    ("host", {}, 5, "the fleet: name must be a text value, got 5"),
])
def test_a_bad_entry_is_one_line_naming_the_field(kind, options, name, says):
    with pytest.raises(InputError) as e:
        F.device(kind, options, name)
    assert says in str(e.value)


def test_a_device_spec_on_the_command_line_is_typed_like_a_fleet_entry():
    (d,) = F.from_command_line(("jetson:host=u@b,port=2222,accept-new-host-key=true,identity=k",), {})
    assert (d.name, d.kind) == ("jetson u@b", "jetson")
    assert d.options.given() == {"host": "u@b", "port": 2222, "accept_new_host_key": True, "identity": "k"}
    # a flag fills what a spec leaves unset, on the kinds that take it; a repeated one makes a device per value
    got = F.from_command_line(("jetson:port=2", "phone-emulated:profile=lowcost-a53"), {"host": ("u@a", "u@b"),
                                                                                      "port": 22})
    assert [(e.name, e.options.given()) for e in got] == [
        ("jetson u@a", {"host": "u@a", "port": 2}), ("jetson u@b", {"host": "u@b", "port": 2}),
        ("phone-emulated lowcost-a53", {"profile": "lowcost-a53"})]
    assert F.from_command_line(("host:timeout=60",), {})[0].options.timeout == 60.0


@pytest.mark.parametrize("specs,flags,says", [
    (("jetson:host=u@b,port=abc",), {}, "--device jetson:host=u@b,port=abc: port must be a whole number from 1 to "
                                        "65535, got 'abc'"),
    (("jetson:host=u@b,port=22.5",), {}, "port must be a whole number from 1 to 65535, got 22.5"),
    (("jetson:host=u@b,accept_new_host_key=maybe",), {}, "accept_new_host_key must be true or false, got 'maybe'"),
    (("host:timeout=0",), {}, "timeout must be a number of seconds from 1 to 86400, got 0"),
    (("host:serial=X",), {}, "'serial' does not apply to device host (it takes: timeout)"),
    (("jetson:port",), {}, "--device jetson:port: expected KIND:key=value,... (got 'port')"),
    (("toaster:x=1",), {}, "unknown device 'toaster'"),
    (("phone-emulated",), {"host": ("a@b",)}, "--host does not apply to --device phone-emulated"),
    (("host", "phone-emulated"), {"serial": "X"}, "--serial applies to none of --device host, phone-emulated"),
])
def test_a_bad_device_spec_is_one_line(specs, flags, says):
    with pytest.raises(InputError) as e:
        F.from_command_line(specs, flags)
    assert says in str(e.value)


def test_the_edges_of_the_ranges_are_accepted():
    F.device("jetson", {"host": "u@b", "port": 1, "timeout": 1.0})
    F.device("jetson", {"host": "u@b", "port": 65535, "timeout": 86400})
    F.device("jetson", {"host": "u@b", "accept_new_host_key": False})


def test_a_fleet_needs_devices_unique_names_and_a_parallel_in_range():
    one = F.device("host", {})
    assert F.Fleet((one,)).parallel == F.DEFAULT_PARALLEL == 4
    for parallel in (1, 64):
        assert F.Fleet((one,), parallel).parallel == parallel
    for parallel in (0, 65):
        with pytest.raises(InputError, match=f"fleet parallel {parallel} is not in 1..64"):
            F.Fleet((one,), parallel)
    with pytest.raises(InputError, match="the fleet lists no devices"):
        F.Fleet(())
    with pytest.raises(InputError, match="the fleet names 'host' twice: give each device its own name"):
        F.Fleet((one, F.device("phone-emulated", {}), one))


def test_a_fleet_file_is_read_with_paths_relative_to_it(tmp_path):
    (tmp_path / "keys").mkdir()
    f = tmp_path / "fleet.yaml"
    f.write_text("parallel: 3\ndevices:\n  - device: jetson\n    host: u@b\n    identity: keys/lab\n"
                 "    known_hosts: /etc/kh\n  - {device: phone-emulated, profile: pixel3, name: emu}\n")
    fleet = F.load(f)
    assert fleet.parallel == 3
    assert [(d.name, d.kind) for d in fleet.devices] == [("jetson u@b", "jetson"), ("emu", "phone-emulated")]
    assert fleet.devices[0].options.given() == {"host": "u@b", "identity": str((tmp_path / "keys" / "lab").resolve()),
                                              "known_hosts": "/etc/kh"}
    assert fleet.devices[1].options.given() == {"profile": "pixel3"}
    f.write_text("devices:\n  - device: host\n")
    assert F.load(f).parallel == F.DEFAULT_PARALLEL


@pytest.mark.parametrize("text,says", [
    ("devices: [", "not valid YAML"),
    ("- host\n", "expected a mapping with a 'devices' list"),
    ("devices: host\n", "expected a mapping with a 'devices' list"),
    ("devices: []\nspeed: 3\n", "unknown key 'speed' (expected devices, parallel)"),
    ("devices:\n  - host\n", "fleet.yaml, device 1: expected a mapping with 'device: KIND'"),
    ("devices:\n  - device: host\n  - {name: x}\n", "fleet.yaml, device 2: expected a mapping with 'device: KIND'"),
    ("devices:\n  - device: host\nparallel: two\n", "parallel must be a whole number"),
    ("devices:\n  - device: host\nparallel: true\n", "parallel must be a whole number"),
    ("devices: []\n", "the fleet lists no devices"),
])
def test_a_bad_fleet_file_is_one_line(tmp_path, text, says):
    f = tmp_path / "fleet.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        F.load(f)
    assert says in str(e.value)
    with pytest.raises(InputError, match="fleet file .*nope.yaml: "):
        F.load(tmp_path / "nope.yaml")


def test_a_fleet_bench_keeps_the_results_of_devices_that_answer(tmp_path_factory):
    """Two host entries at once, one with a deadline its run cannot meet: that one is unreachable with its
    reason, the other's bench stands, and the fleet's verdict and exit status are the unreachable one's."""
    from devices_helpers import shared_tiny_model
    model = shared_tiny_model(tmp_path_factory)
    fleet = F.Fleet((F.device("host", {}, "quick"), F.device("host", {"timeout": 1}, "slow")), parallel=2)
    said: list[str] = []
    # every run times for at least 3 s: 100,000 runs of the tiny model take about 1 s, and the agent's cap of
    # 100 x runs (10 million) is far beyond 3 s, so the entry with a 1 s deadline cannot answer in time on any
    # machine (with runs=1000 the cap, 100,000 inferences, could end a run within 1 s on a quick one)
    o = B.BenchOptions(model, runs=100_000, warmup=0, min_seconds=3.0, threads=1, timeout=600.0)
    doc = B.bench(o, fleet, log=said.append)
    quick, slow = doc.devices
    assert (doc.schema_, doc.target, doc.run, doc.data, doc.parallel) == (
        "edgecnn.bench/4", str(model), None, None, 2)
    assert json.loads(doc.to_json())["schema"] == BENCH_SCHEMA == "edgecnn.bench/4"  # the JSON key is "schema"
    assert (quick.name, quick.device, quick.status, quick.error, quick.verdict) == (
        "quick", "host", "ok", None, "PASS")
    assert quick.records[0].artifact == model.name and quick.records[0].device == "host"
    assert (slow.name, slow.status, slow.verdict, slow.records, slow.options) == (
        "slow", "unreachable", "UNREACHABLE", [], {"timeout": 1})
    assert slow.error.startswith("command timed out after 1 s: python")
    assert doc.verdict == "UNREACHABLE" and quick.wall_s >= 0 and slow.wall_s >= 0
    assert f"[slow] unreachable: {slow.error}" in said
    assert any(m.startswith("[quick] bench ") for m in said)
    assert _exit_of(doc) == (2, f"slow could not be benched: {slow.error} (the others' results are above)")


def test_a_benched_device_is_one_row_per_record_with_its_numbers():
    def rec(name: str, **kw):
        fields = dict(format="tflite", precision="int8", size_mb=2.5, images=40, accuracy=0.925, accuracy_drop_pp=1.25,
                      paired=Paired(n=80, ref_only_right=1, artifact_only_right=0, changed=2, drop_pp=1.25,
                                    drop_ci_pp=(-0.5, 3.25), agreement=0.975, agreement_ci=(0.87, 1.0),
                                    confidence=0.95),
                      top1_agreement=0.975, latency_ms=R.latency(12.345, 20.0, 25.0), latency_estimated=True,
                      throughput_ips=None, peak_rss_mb=None, device="phone-emulated", device_info={},
                      budgets={"size_mb": R.judged("PASS", 2.5, 20.0),
                               "accuracy_drop_pp": R.judged("INCONCLUSIVE", 1.25, 1.0)})
        return R.record(name, **{**fields, **kw})

    int8 = rec("m_int8.tflite")
    fp32 = rec("m_fp32.tflite", precision="fp32", latency_estimated=False, paired=None,
               budgets={"size_mb": R.judged("PASS", 2.5, 20.0)})
    assert (int8.verdict, fp32.verdict) == ("INCONCLUSIVE", "PASS")
    doc = _doc("INCONCLUSIVE", "PASS", changed={0: dict(records=[int8, fp32], notes=["a note"],
                                                         device="phone-emulated")})
    lines = B.render(doc).splitlines()
    row = next(ln for ln in lines if "m_int8.tflite" in ln).split()
    assert row == ["d0-inconclusive", "m_int8.tflite", "tflite", "int8", "2.50", "40", "92.50%", "+1.25", "[-0.5,",
                   "+3.2]", "97.5%", "~12.35", "~20.00", "~25.00", "-", "-", "size_mb:ok",
                   "accuracy_drop_pp:INCONCLUSIVE", "INCONCLUSIVE"]
    row = next(ln for ln in lines if "m_fp32.tflite" in ln).split()
    assert row[6:12] == ["92.50%", "+1.25", "97.5%", "12.35", "20.00", "25.00"]
    assert "d0-inconclusive: a note" in lines
    assert "d0-inconclusive: m_int8.tflite: accuracy_drop_pp 1.25 vs budget 1.0: INCONCLUSIVE on 40 images" in lines
    assert lines[-1] == ("INCONCLUSIVE (1 PASS, 1 INCONCLUSIVE; 2 devices, at most 2 at once, 1.2 s; accuracy "
                         "budgets judged on 95% intervals; ~ = estimated latency)")
    md = B.render(doc, markdown=True)
    assert "\n\nd0-inconclusive: a note\n\n" in md and md.count("|") > 20
