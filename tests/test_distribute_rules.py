"""Multi-worker training's rules without starting a cluster: which clusters are valid, how TF_CONFIG maps
to worker indices, the digests that decide whether workers see the same setup and hold identical
weights (over every input, in order), and how a single process shares work. Two real workers:
tests/test_distribute.py (slow)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgecnn import distribute as D
from edgecnn.core.errors import InputError


# ------------------------------------------------------------------------------------ the cluster
def test_a_worker_list_option_is_split_trimmed_and_indexed():
    c = D.Cluster.from_option(" a:1, b:2 ,,c:3 ", 2)
    assert (c.workers, c.index, c.size, c.is_chief, c.chief_task) == (("a:1", "b:2", "c:3"), 2, 3, False, False)
    assert D.Cluster.from_option("a:1", 0).is_chief
    assert D.Cluster(("[::1]:80", "h:65535", "h:1"), 1).size == 3


@pytest.mark.parametrize("workers,index,says", [
    ((), 0, "a cluster needs at least one worker"),
    (("a:1", "b:2"), 2, "worker index 2 is not in 0..1"),
    (("a:1", "b:2"), -1, "worker index -1 is not in 0..1"),
    (("a:1",), 1, "worker index 1 is not in 0..0"),
    (("a:1", "b"), 0, "worker address 'b' is not HOST:PORT"),
    (("a:1", ":2"), 0, "worker address ':2' is not HOST:PORT"),
    (("a:1", "b:"), 0, "worker address 'b:' is not HOST:PORT"),
    (("a:1", "b:x"), 0, "worker address 'b:x' is not HOST:PORT"),
    (("a:1", "b:0"), 0, "worker address 'b:0' is not HOST:PORT"),
    (("a:1", "b:65536"), 0, "worker address 'b:65536' is not HOST:PORT"),
    (("a:1", "b:-5"), 0, "worker address 'b:-5' is not HOST:PORT"),
    (("a:1", "b:2", "a:1"), 0, "a worker address is listed twice"),
])
def test_an_invalid_cluster_is_one_line(workers, index, says):
    with pytest.raises(InputError) as e:
        D.Cluster(workers, index)
    assert str(e.value) == says


def _tf_config(cluster: dict, kind: str, index) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})


@pytest.mark.parametrize("cluster,kind,index,workers,expected_index,chief", [
    ({"worker": ["w0:1", "w1:2"]}, "worker", 1, ("w0:1", "w1:2"), 1, False),
    ({"chief": ["c:9"], "worker": ["w0:1", "w1:2"]}, "chief", 0, ("c:9", "w0:1", "w1:2"), 0, True),
    ({"chief": ["c:9"], "worker": ["w0:1", "w1:2"]}, "worker", 0, ("c:9", "w0:1", "w1:2"), 1, True),
    ({"chief": ["c:9"], "worker": ["w0:1", "w1:2"]}, "worker", 1, ("c:9", "w0:1", "w1:2"), 2, True),
    ({"worker": ["w0:1"]}, "worker", "0", ("w0:1",), 0, False),
])
def test_tf_config_puts_the_chief_first(cluster, kind, index, workers, expected_index, chief):
    c = D.Cluster.from_tf_config(_tf_config(cluster, kind, index))
    assert (c.workers, c.index, c.chief_task) == (workers, expected_index, chief)
    back = json.loads(c.tf_config())
    assert back == {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": expected_index}}
    assert D.Cluster.from_tf_config(c.tf_config()) == D.Cluster(workers, expected_index)


@pytest.mark.parametrize("text,says", [
    ("{", "TF_CONFIG is not valid: expected JSON with cluster.worker (and optionally cluster.chief) lists and "
          "task.type / task.index"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), "TF_CONFIG is not valid"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "x"}}), "TF_CONFIG is not valid"),
    (json.dumps({"cluster": [], "task": {"type": "worker", "index": 0}}), "TF_CONFIG is not valid"),
    (_tf_config({"worker": ["a:1"]}, "ps", 0), "TF_CONFIG: task type 'ps' (or several chiefs) is not supported: "
                                               "use one optional chief and workers"),
    (_tf_config({"chief": ["c:1", "d:2"], "worker": ["a:1"]}, "worker", 0),
     "TF_CONFIG: task type 'worker' (or several chiefs) is not supported"),
    (_tf_config({"worker": ["a:1"]}, "chief", 0), "TF_CONFIG: task type 'chief' but cluster.chief is empty"),
    (_tf_config({"worker": ["a:1"]}, "worker", 1), "worker index 1 is not in 0..0"),
])
def test_an_invalid_tf_config_is_one_line(text, says):
    with pytest.raises(InputError) as e:
        D.Cluster.from_tf_config(text)
    assert str(e.value).startswith(says)


def test_tf_config_is_read_from_the_environment_only_when_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert D.Cluster.from_env() is None
    monkeypatch.setenv("TF_CONFIG", "")
    assert D.Cluster.from_env() is None
    monkeypatch.setenv("TF_CONFIG", _tf_config({"worker": ["a:1", "b:2"]}, "worker", 1))
    assert D.Cluster.from_env() == D.Cluster(("a:1", "b:2"), 1)


# ------------------------------------------------------------------------------------ the digests
def _weights():
    rng = np.random.default_rng(3)
    return [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32),
            np.arange(6, dtype=np.int64).reshape(2, 3)]


def test_the_weights_digest_is_sha256_over_every_array_in_order():
    w = _weights()
    expected = hashlib.sha256(b"".join(a.tobytes() for a in w)).hexdigest()
    assert D.weights_sha256(w) == expected
    assert D.weights_sha256([a.copy() for a in w]) == expected
    assert D.weights_sha256([]) == hashlib.sha256(b"").hexdigest()
    for i in range(len(w)):                                  # one value of any one array changes it
        changed = [a.copy() for a in w]
        flat = changed[i].reshape(-1)
        flat[-1] = np.nextafter(flat[-1], np.inf) if flat.dtype.kind == "f" else flat[-1] + 1
        assert D.weights_sha256(changed) != expected, i
    assert D.weights_sha256(w[::-1]) != expected             # the order of the arrays counts
    assert D.weights_sha256(w[:-1]) != expected and D.weights_sha256(w[1:]) != expected


def test_the_weights_digest_reads_a_strided_array_by_its_values():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert D.weights_sha256([a.T]) == hashlib.sha256(np.ascontiguousarray(a.T).tobytes()).hexdigest()
    assert D.weights_sha256([a.T]) != D.weights_sha256([a])


def test_the_setup_digest_covers_every_field_but_not_their_order():
    what = {"recipe": "{...}", "classes": ["a", "b"], "splits": {"train": 10, "val": 2}, "seed": 0}
    d = D.setup_sha256(what)
    assert d == hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
    assert D.setup_sha256(dict(reversed(list(what.items())))) == d
    for key, other in (("recipe", "{..}"), ("classes", ["b", "a"]), ("splits", {"train": 10, "val": 3}),
                       ("seed", 1)):
        assert D.setup_sha256({**what, key: other}) != d, key
    # values JSON has no type for (a folder, a count type of its own) are compared by their text
    assert D.setup_sha256({"root": Path("/data/x")}) == D.setup_sha256({"root": "/data/x"}) == hashlib.sha256(
        b'{"root": "/data/x"}').hexdigest()


def test_workers_differ_by_the_leading_bytes_of_their_digests():
    a, b = D.weights_sha256(_weights()), D.weights_sha256(_weights()[:2])
    row = D.digest_row(a)
    assert row.dtype == np.int32 and row.tolist() == list(bytes.fromhex(a)[:D.DIGEST_BYTES])
    assert D.DIGEST_BYTES == 16
    rows = np.stack([row, row, D.digest_row(b), row, D.digest_row(b)])
    assert D.differing_rows(rows) == [2, 4]
    assert D.differing_rows(np.stack([D.digest_row(b), row, row])) == [1, 2]
    assert D.differing_rows(np.stack([row, row])) == []
    assert D.differing_rows(row[None]) == []


# ------------------------------------------------------------------------------------ one process
def test_one_process_is_every_collective_as_the_identity():
    rep = D.Replicas()
    assert (rep.multi, rep.own_loop, rep.workers, rep.index, rep.is_chief, rep.replicas) == (
        False, False, 1, 0, True, 1)
    assert rep.shard([1, 2, 3]) == [1, 2, 3] and rep.per_replica_batch(6) == 6
    assert rep.differing("ab" * 32) == [] and rep.all_sum([1, 2]).tolist() == [1.0, 2.0]
    rep.check_in_sync(None)                                   # one worker: nothing to compare


def test_a_worker_takes_every_nth_item_from_its_index():
    items = list(range(10))
    for index, share in ((0, [0, 3, 6, 9]), (1, [1, 4, 7]), (2, [2, 5, 8])):
        rep = D.Replicas(cluster=D.Cluster(("a:1", "b:2", "c:3"), index))
        assert (rep.workers, rep.index, rep.is_chief, rep.own_loop) == (3, index, index == 0, True)
        assert rep.shard(items) == share


def test_the_run_records_how_it_was_distributed():
    rep = D.Replicas(cluster=D.Cluster(("a:1", "b:2"), 1), timeout_s=30.0)
    assert rep.describe(64, 7) == {
        "strategy": "none", "workers": 2, "worker_index": 1, "replicas": 1, "global_batch": 64,
        "per_replica_batch": 64, "seed": 7,
        "learning_rate_scaling": "none: the recipe's batch size is the global batch, so the recipe's learning "
                                 "rate applies unchanged",
        "collective_timeout_s": 30.0, "cluster": ["a:1", "b:2"]}
    assert D.Replicas().describe(32, 0)["cluster"] is None
    assert type(rep.describe(64, 7)["per_replica_batch"]) is int


def test_a_chief_only_cluster_and_a_long_reason_cut_at_200_characters():
    assert D.Cluster.from_tf_config(_tf_config({"chief": ["c:1"]}, "chief", 0)) == D.Cluster(("c:1",), 0, True)
    assert D.peer_reason("rpc failed: connection refused by peer") == "connection refused by peer"
    assert D.peer_reason("call TIMED OUT after 30 s\nmore") == "TIMED OUT after 30 s"
    assert D.peer_reason("aborted by: " + "y" * 300) == "y" * 200


@pytest.mark.parametrize("message,reason", [
    ("Graph execution error:\n... /job:worker/replica:0/task:1 stopped sending heartbeats): /job:worker/task:1 "
     "more", "/job:worker/task:1 stopped sending heartbeats: hung, or cut off from the network"),
    ("worker stopped sending heartbeats", "a worker stopped sending heartbeats: hung, or cut off from the network"),
    ('failed {grpc_message:"Socket closed", grpc_status:14}', "Socket closed"),
    ("Collective ops is aborted by: peer went away\nmore", "peer went away"),
    ("the connection: Connection reset by peer", "Connection reset by peer"),
    ("rpc: Deadline Exceeded", "Deadline Exceeded"),
    ("Graph execution error", None),
])
def test_a_collective_failure_is_said_in_its_useful_words(message, reason):
    assert D.peer_reason(message) == reason
