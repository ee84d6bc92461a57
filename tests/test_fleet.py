"""`edgecnn bench --fleet`: real sshd boards on loopback, emulated phones and an unreachable board, at once."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from devices_helpers import Sshd, free_port, image_folder, need_qemu, need_ssh, shared_tiny_model
from edgecnn.cli import main

QUICK = ["--runs", "20", "--warmup", "2", "--min-seconds", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def boards(tmp_path_factory):
    need_ssh()
    root = tmp_path_factory.mktemp("boards")
    started = [Sshd(root / f"board{i}").start() for i in range(3)]
    yield started
    for s in started:
        s.stop()


def board_entry(s: Sshd, name: str) -> dict:
    return {"name": name, "device": "jetson", "host": s.user_host, "port": s.port, "identity": str(s.client_key),
            "known_hosts": str(s.known_hosts)}


def test_a_fleet_of_boards_phones_and_an_unreachable_one(boards, tmp_path_factory, tmp_path):
    need_qemu()
    model = shared_tiny_model(tmp_path_factory)
    data = image_folder(tmp_path / "images")
    dead = {"name": "board-down", "device": "jetson", "host": boards[0].user_host, "port": free_port(),
            "identity": str(boards[0].client_key), "known_hosts": str(boards[0].known_hosts)}
    fleet = {"parallel": 3, "devices": [
        *(board_entry(s, f"board-{i}") for i, s in enumerate(boards)), dead,
        {"device": "phone-emulated", "profile": "pixel3"}, {"device": "phone-emulated", "profile": "lowcost-a53"}]}
    (tmp_path / "fleet.yaml").write_text(yaml.safe_dump(fleet))
    r = CliRunner().invoke(main, ["bench", str(model), "--fleet", str(tmp_path / "fleet.yaml"), "--data", str(data),
                                  "--json", str(tmp_path / "fleet.json"), *QUICK])
    assert r.exit_code == 2, r.output       # the worst: one board could not be reached
    doc = json.loads((tmp_path / "fleet.json").read_text())
    by = {e["name"]: e for e in doc["devices"]}
    assert list(by) == ["board-0", "board-1", "board-2", "board-down", "phone-emulated pixel3",
                        "phone-emulated lowcost-a53"]
    assert by["board-down"]["status"] == "unreachable" and by["board-down"]["verdict"] == "UNREACHABLE"
    assert "Connection refused" in by["board-down"]["error"] or "refused" in by["board-down"]["error"]
    ok = [e for e in doc["devices"] if e["name"] != "board-down"]
    assert all(e["status"] == "ok" and e["verdict"] == "PASS" for e in ok), [e["error"] for e in ok]
    ports = {e["records"][0]["device_info"]["host"] for e in ok if e["device"] == "jetson"}
    assert ports == {f"{s.user_host}:{s.port}" for s in boards}           # three distinct boards really ran
    accuracies = {e["records"][0]["accuracy"] for e in ok}
    assert len(accuracies) == 1 and all(e["records"][0]["images"] == 9 for e in ok)
    for name in ("phone-emulated pixel3", "phone-emulated lowcost-a53"):
        rec = by[name]["records"][0]
        assert rec["agreement_with_host"]["top1_agreement"] == 1.0
    assert doc["verdict"] == "UNREACHABLE" and doc["parallel"] == 3
    table = r.output[r.output.index("device "):]
    for name in by:
        assert name in table
    assert "board-down: unreachable:" in table and "\nUNREACHABLE (5 PASS, 1 UNREACHABLE; 6 devices, at most 3 at once" in table


def test_the_same_device_twice_is_refused(tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    r = CliRunner().invoke(main, ["bench", str(model), "--device", "host", "--device", "host", *QUICK])
    assert r.exit_code == 2 and "names 'host' twice" in r.output


@pytest.mark.slow                    # end to end over a real sshd
@pytest.mark.needs_tools("openssh")
def test_repeated_devices_make_a_fleet(tmp_path_factory, tmp_path):
    model = shared_tiny_model(tmp_path_factory)
    need_ssh()                       # a missing sshd skips with its reason (it failed with a TypeError)
    s = Sshd(tmp_path / "b").start()
    try:
        r = CliRunner().invoke(main, ["bench", str(model), "--device", "host", "--device", "jetson", "--host",
                                      s.user_host, "--port", str(s.port), "--identity", str(s.client_key),
                                      "--accept-new-host-key", "--json", "-", *QUICK])
    finally:
        s.stop()
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    assert [e["device"] for e in doc["devices"]] == ["host", "jetson"] and doc["verdict"] == "PASS"


@pytest.mark.parametrize("fleet,message", [
    ({"devices": []}, "the fleet lists no devices"),
    ({"devices": [{"device": "toaster"}]}, "unknown device 'toaster'"),
    ({"devices": [{"device": "host", "serial": "x"}]}, "'serial' does not apply to device host"),
    ({"devices": [{"device": "host"}, {"device": "host"}]}, "names 'host' twice"),
    ({"devices": [{"device": "host"}], "parallel": 0}, "parallel 0 is not in 1..64"),
    ({"devices": [{"device": "host"}], "retries": 2}, "unknown key 'retries'"),
    ("devices: [", "not valid YAML"),
])
def test_bad_fleet_files_are_one_line(tmp_path_factory, tmp_path, fleet, message):
    model = shared_tiny_model(tmp_path_factory)
    f = tmp_path / "fleet.yaml"
    f.write_text(fleet if isinstance(fleet, str) else yaml.safe_dump(fleet))
    r = CliRunner().invoke(main, ["bench", str(model), "--fleet", str(f)])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_options_that_apply_to_no_chosen_device_are_refused(tmp_path_factory):
    model = shared_tiny_model(tmp_path_factory)
    r = CliRunner().invoke(main, ["bench", str(model), "--device", "host", "--device", "phone-emulated",
                                  "--serial", "X"])
    assert r.exit_code == 2 and "--serial applies to none of --device host, phone-emulated" in r.output
