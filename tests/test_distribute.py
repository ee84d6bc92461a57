"""Multi-worker training: real worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgecnn.activations import MARK_FILE
from edgecnn.core.errors import InputError
from edgecnn.cli import main
from edgecnn.distribute import Cluster
from tests.conftest import make_subset
from tests.devices_helpers import free_port, image_folder

EDGECNN = [sys.executable, "-c", "from edgecnn.cli import run; run()"]


def workers(n: int = 2) -> str:
    return ",".join(f"127.0.0.1:{free_port()}" for _ in range(n))


def start_worker(args: list[str], addresses: str, index: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    return subprocess.Popen([*EDGECNN, "train", *args, "--quiet", "--workers", addresses, "--worker-index", str(index)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def finish(p: subprocess.Popen, timeout: float = 600) -> int:
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise


# ------------------------------------------------------------------------------------ the cluster
def test_tf_config_is_read_the_standard_way():
    c = Cluster.from_tf_config(json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]},
                                           "task": {"type": "worker", "index": 1}}))
    assert c.workers == ("a:1", "b:2", "c:3") and c.index == 2 and not c.is_chief
    c = Cluster.from_tf_config(json.dumps({"cluster": {"worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 0}}))
    assert c.is_chief and Cluster.from_tf_config(c.tf_config()) == c
    for bad in ("{", json.dumps({"cluster": {"worker": ["b:2"]}, "task": {"type": "ps", "index": 0}}),
                json.dumps({"cluster": {"worker": ["b:2"]}, "task": {"type": "worker", "index": 3}}),
                json.dumps({"cluster": {"worker": ["b"]}, "task": {"type": "worker", "index": 0}})):
        with pytest.raises(InputError):
            Cluster.from_tf_config(bad)


@pytest.mark.parametrize("args,message", [
    (["--workers", "127.0.0.1:1,127.0.0.1:2"], "--workers and --worker-index go together"),
    (["--workers", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "2"], "worker index 2 is not in 0..1"),
    (["--workers", "localhost,127.0.0.1:2", "--worker-index", "0"], "is not HOST:PORT"),
])
def test_bad_cluster_options_are_one_line(tmp_path, args, message):
    r = CliRunner().invoke(main, ["train", "--recipe", "products", "--data", str(tmp_path), "--out",
                                  str(tmp_path / "o"), *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_a_worker_that_never_comes_ends_the_wait(tmp_path):
    """The chief alone: waiting for the cluster blocks inside TensorFlow; the deadline still ends it."""
    addresses = workers()
    t = time.monotonic()
    p = start_worker(["--recipe", "products", "--data", str(image_folder(tmp_path / "d")), "--out",
                      str(tmp_path / "run"), "--worker-timeout", "5"], addresses, 0, tmp_path / "chief.log")
    rc = finish(p, 120)
    out = (tmp_path / "chief.log").read_text()
    assert rc != 0 and "Error: worker 0: the cluster did not come together within 5 s" in out, out[-2000:]
    assert time.monotonic() - t < 90 and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_workers_that_see_different_things_refuse_to_train(tmp_path):
    data = image_folder(tmp_path / "d", per_class=6)
    addresses = workers()
    common = ["--recipe", "products", "--data", str(data), "--weights", "none", "--image-size", "32"]
    ps = [start_worker([*common, "--out", str(tmp_path / f"run{i}"), "--seed", str(i)], addresses, i,
                       tmp_path / f"w{i}.log") for i in (0, 1)]
    rcs = [finish(p, 300) for p in ps]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in (0, 1)]
    assert rcs == [1, 1], logs
    assert all("Error: worker 1 does not see what worker 0 sees" in lg for lg in logs), logs
    assert not (tmp_path / "run0").exists() and not (tmp_path / "run1").exists()


# ------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def two_phase_task(tmp_path_factory):
    """4 classes of crop_disease_34 at 96 px; the crop_disease recipe with a short phase 2 as well."""
    root = tmp_path_factory.mktemp("mw")
    data = make_subset(root / "d", "crop_disease_34", (0, 9, 17, 29), 30, 10)
    r = yaml.safe_load(CliRunner().invoke(main, ["recipes", "show", "crop_disease"]).output)
    r["name"], r["image_size"] = "crop_disease_two_phase", 96
    r["training"]["head"].update(epochs=4, augmented_views=1)
    r["training"]["fine_tune"].update(epochs=2, unfreeze_layers=20)
    (root / "recipe.yaml").write_text(yaml.safe_dump(r))
    return root, data


def two_workers(task, tmp_path) -> tuple[list[str], list[subprocess.Popen]]:
    """Workers 0 and 1 training the task on 127.0.0.1, logging to tmp_path/w{i}.log, writing run{i}."""
    root, data = task
    args = ["--recipe", str(root / "recipe.yaml"), "--data", str(data)]
    addresses = workers()
    return args, [start_worker([*args, "--out", str(tmp_path / f"run{i}")], addresses, i, tmp_path / f"w{i}.log")
                  for i in (0, 1)]


def wait_for(text: str, log: Path, p: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.2)


def test_two_workers_stay_in_sync_and_match_one_process(two_phase_task, tmp_path):
    args, ps = two_workers(two_phase_task, tmp_path)
    rcs = [finish(p) for p in ps]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in (0, 1)]
    assert rcs == [0, 0], [lg[-3000:] for lg in logs]
    digests = [re.search(r"all 2 workers hold identical weights \(sha256 (\w+)\)", lg) for lg in logs]
    assert all(digests) and digests[0].group(1) == digests[1].group(1)
    assert not (tmp_path / "run1").exists()          # the other worker writes nothing
    run = tmp_path / "run0"
    for name in ("model.keras", "labels.txt", "contract.json", "history.json", "metrics.json", "report/confusion.png"):
        assert (run / name).is_file(), name
    m = json.loads((run / "metrics.json").read_text())
    d = m["distribution"]
    assert (d["strategy"], d["workers"], d["replicas"], d["global_batch"], d["per_replica_batch"]) == \
        ("MultiWorkerMirroredStrategy", 2, 2, 32, 16)
    h = json.loads((run / "history.json").read_text())
    assert len(h["head"]["val_accuracy"]) == 4 and len(h["fine_tune"]["loss"]) == 2

    one = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / "one"), "--quiet"])
    assert one.exit_code == 0, one.output
    single = json.loads((tmp_path / "one" / "metrics.json").read_text())["test_accuracy"]
    # 40 test photos; the same seed and global batch, a different (sharded) data order: within noise
    assert m["test_accuracy"] >= 0.8 and abs(m["test_accuracy"] - single) <= 0.1, (m["test_accuracy"], single)


def test_a_killed_worker_ends_the_run_with_nothing_written(two_phase_task, tmp_path):
    args, ps = two_workers(two_phase_task, tmp_path)
    chief_log = tmp_path / "w0.log"
    wait_for("epoch 2/4", chief_log, ps[0])
    os.killpg(ps[1].pid, signal.SIGKILL)
    t = time.monotonic()
    rc = finish(ps[0], 180)
    out = chief_log.read_text()
    assert rc == 1 and "Error: worker 0: training stopped, another worker stopped or cannot be reached" in out, out[-2000:]
    assert time.monotonic() - t < 120
    # no run, no staging folder, no chief's activation cache; the SIGKILLed worker could not remove its
    # own work folder (it carries edgecnn's mark: its next run there takes it over)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".run1.worker1.activations", "w0.log", "w1.log"]
    assert (tmp_path / ".run1.worker1.activations" / MARK_FILE).is_file()


def test_ctrl_c_on_one_worker_stops_all_and_the_chief_keeps_the_best(two_phase_task, tmp_path):
    """Ctrl-C reaches one worker only: every worker stops at the same step (the request travels with
    the next step's all-reduce), phase 2 is skipped everywhere, and the chief still writes the run."""
    args, ps = two_workers(two_phase_task, tmp_path)
    wait_for("epoch 2/4", tmp_path / "w0.log", ps[0])
    os.kill(ps[1].pid, signal.SIGINT)
    rcs = [finish(p, 300) for p in ps]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in (0, 1)]
    assert rcs == [130, 0], [lg[-2000:] for lg in logs]      # the chief reports the interrupted run
    assert all("interrupted: keeping the best head so far" in lg and "phase 2:" not in lg for lg in logs), logs
    m = json.loads((tmp_path / "run0" / "metrics.json").read_text())
    assert m["interrupted"] and len(json.loads((tmp_path / "run0" / "history.json").read_text())["head"]["loss"]) < 4
