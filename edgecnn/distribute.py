"""Training beyond one process, on TensorFlow's own distribution engine.

- Several machines: ``tf.distribute.MultiWorkerMirroredStrategy`` (collective all-reduce over gRPC),
  configured the standard way by ``TF_CONFIG`` (``edgecnn train --workers A:P,B:P --worker-index N``
  writes it). Worker 0 (or the task of type "chief") is the chief: it alone evaluates and writes the
  run directory; the others write nothing but their log.
- Several GPUs of one machine: ``tf.distribute.MirroredStrategy``, under which Keras' ``fit`` works.
- Otherwise nothing here is used and training runs Keras' ``fit`` as always.

Keras 3's ``fit`` fails under MultiWorkerMirroredStrategy ("unsupported type PerReplica to a Tensor",
an open Keras issue), so :func:`fit` is a drop-in for it under a strategy: a custom step with
``strategy.run`` and ``tf.nn.compute_average_loss`` that drives the very same Keras callbacks
(best-weights keeping, early stopping, ReduceLROnPlateau, Ctrl-C as a request) with the same logs
(loss, accuracy, val_loss, val_accuracy). Everything around the loop stays one code path.

Every worker sees the same, identical numbers: the validation metrics are all-reduced sums, so
every worker takes the same early-stopping and learning-rate decisions and stops at the same step.
A worker that dies ends every other's next collective at once ("connection refused"); one that
hangs or cannot be reached ends it within the collective timeout; a worker that never shows up
ends the wait for the cluster at its deadline. Each ends the run with one error line and writes
nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import subprocess
import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .core.errors import EdgecnnError, InputError

TF_CONFIG = "TF_CONFIG"
DEFAULT_TIMEOUT_S = 300.0   # waiting for the cluster, and for any one collective (a peer's slowest step)


class DistributeError(EdgecnnError):
    """A worker stopped or cannot be reached, or the workers disagree: exit 1, nothing written."""


# ------------------------------------------------------------------------------------ the cluster
@dataclass(frozen=True)
class Cluster:
    """Who trains together, read from (or written as) TF_CONFIG: worker addresses and this one's index.

    A task of type "chief" comes first (index 0), then the "worker" tasks in order."""

    workers: tuple[str, ...]
    index: int
    chief_task: bool = False   # the cluster names a separate "chief" task (index 0)

    def __post_init__(self):
        if len(self.workers) < 1:
            raise InputError("a cluster needs at least one worker")
        if not 0 <= self.index < len(self.workers):
            raise InputError(f"worker index {self.index} is not in 0..{len(self.workers) - 1}")
        for w in self.workers:
            host, _, port = w.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise InputError(f"worker address {w!r} is not HOST:PORT")
        if len(set(self.workers)) != len(self.workers):
            raise InputError("a worker address is listed twice")

    @property
    def size(self) -> int:
        return len(self.workers)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @classmethod
    def from_option(cls, workers: str, index: int) -> "Cluster":
        return cls(tuple(w.strip() for w in workers.split(",") if w.strip()), index)

    @classmethod
    def from_tf_config(cls, text: str) -> "Cluster":
        try:
            cfg = json.loads(text)
            spec, task = cfg["cluster"], cfg["task"]
            chief, workers = list(spec.get("chief", [])), list(spec.get("worker", []))
            kind, index = task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError(f"{TF_CONFIG} is not valid: expected JSON with cluster.worker (and optionally "
                             f"cluster.chief) lists and task.type / task.index") from None
        if kind not in ("chief", "worker") or len(chief) > 1:
            raise InputError(f"{TF_CONFIG}: task type {kind!r} (or several chiefs) is not supported: "
                             f"use one optional chief and workers")
        if kind == "chief" and not chief:
            raise InputError(f"{TF_CONFIG}: task type 'chief' but cluster.chief is empty")
        return cls(tuple(chief + workers), index + (len(chief) if kind == "worker" else 0), bool(chief))

    @classmethod
    def from_env(cls) -> "Cluster | None":
        text = os.environ.get(TF_CONFIG)
        return cls.from_tf_config(text) if text else None

    def tf_config(self) -> str:
        return json.dumps({"cluster": {"worker": list(self.workers)}, "task": {"type": "worker", "index": self.index}})


# ------------------------------------------------------------------------------------ replicas
@dataclass
class Replicas:
    """The strategy training runs under, with the few collectives training needs.

    With no strategy (one process, at most one GPU) every method is the identity: one code path."""

    strategy: object = None
    cluster: Cluster | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    kind: str = "none"
    _tf: object = field(default=None, repr=False)
    _gather_fns: dict = field(default_factory=dict, repr=False)

    @property
    def multi(self) -> bool:
        return self.strategy is not None

    @property
    def own_loop(self) -> bool:
        """Whether training needs :func:`fit` instead of Keras' own: across workers only. Keras' fit works
        under MirroredStrategy (one machine's GPUs), while this loop does not run there (TensorFlow fails on
        a placeholder inside the optimizer's cond with two local replicas: measured on two logical CPUs)."""
        return self.workers > 1

    @property
    def workers(self) -> int:
        return self.cluster.size if self.cluster else 1

    @property
    def index(self) -> int:
        return self.cluster.index if self.cluster else 0

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync) if self.multi else 1

    @property
    def local_replicas(self) -> int:
        return self.replicas // self.workers

    def scope(self):
        return self.strategy.scope() if self.multi else contextlib.nullcontext()

    def per_replica_batch(self, global_batch: int) -> int:
        if global_batch % self.replicas:
            raise InputError(f"the batch size {global_batch} (the global batch) does not divide among "
                             f"{self.replicas} replicas: choose a multiple of {self.replicas}")
        return global_batch // self.replicas

    def shard(self, items):
        """This worker's share of a list: every N-th item from its index."""
        return items[self.index::self.workers] if self.workers > 1 else items

    # -- collectives (every worker must call them in the same order)
    def _all_gather(self, x) -> np.ndarray:
        """Every worker's `x` (once per worker: its first local replica gives it) concatenated in worker
        order. Rows travel flattened, so one traced function per dtype serves every call."""
        x = np.asarray(x)
        tf, key = self._tf, x.dtype.str
        if key not in self._gather_fns:
            k, strategy = self.local_replicas, self.strategy

            def replica(v):
                ctx = tf.distribute.get_replica_context()
                keep = tf.equal(ctx.replica_id_in_sync_group % k, 0)
                return ctx.all_gather(v[:tf.where(keep, tf.shape(v)[0], 0)], axis=0)

            self._gather_fns[key] = tf.function(
                lambda v: strategy.experimental_local_results(strategy.run(replica, args=(v,)))[0],
                input_signature=[tf.TensorSpec([None, None], tf.as_dtype(x.dtype))])
        flat = x.reshape(len(x), int(np.prod(x.shape[1:])))
        return np.asarray(self._gather_fns[key](flat)).reshape(-1, *x.shape[1:])

    def all_sum(self, values) -> np.ndarray:
        """Element-wise sums over the workers, identical on every worker."""
        v = np.asarray(values, np.float64)
        return v if self.workers == 1 else self._all_gather(v[None]).sum(0)

    def barrier(self) -> None:
        """Wait until every worker gets here."""
        self.all_sum([0.0])

    def farewell(self, log=print) -> None:
        """The chief's last barrier, after the run is written: a worker gone by then is only noted."""
        if self.workers == 1:
            return
        try:
            self.barrier()
        except self._tf.errors.OpError as e:
            why = peer_reason(str(e.message)) or type(e).__name__
            log(f"distributed: not every worker waited for the end ({why}); "
                f"the run is complete")

    def all_counts(self, n: int) -> list[int]:
        return [int(c) for c in self._all_gather(np.array([n], np.int32))]

    def differing(self, digest: str) -> list[int]:
        """The workers whose `digest` (a hex string) differs from worker 0's."""
        if self.workers == 1:
            return []
        return differing_rows(self._all_gather(digest_row(digest)[None]))

    def agree(self, what: dict) -> None:
        """Refuse to train when the workers do not see the same recipe, classes, splits and seed."""
        bad = self.differing(setup_sha256(what))
        if bad:
            raise DistributeError(f"worker {bad[0]} does not see what worker 0 sees (recipe, classes, split sizes "
                                  f"or seed differ): give every worker the same recipe, data and options")

    def check_in_sync(self, model, log=print) -> None:
        """Every worker holds bit-identical weights after training, or the run ends with an error."""
        if self.workers == 1:
            return
        digest = weights_sha256(model.get_weights())
        bad = self.differing(digest)
        if bad:
            raise DistributeError(f"worker {bad[0]}'s trained weights differ from worker 0's: the replicas "
                                  f"diverged; nothing was written")
        log(f"distributed: all {self.workers} workers hold identical weights (sha256 {digest[:16]})")

    def describe(self, global_batch: int, seed: int) -> dict:
        return {"strategy": self.kind, "workers": self.workers, "worker_index": self.index,
                "replicas": self.replicas, "global_batch": global_batch,
                "per_replica_batch": global_batch // self.replicas, "seed": seed,
                "learning_rate_scaling": "none: the recipe's batch size is the global batch, so the "
                                         "recipe's learning rate applies unchanged",
                "collective_timeout_s": self.timeout_s,
                "cluster": list(self.cluster.workers) if self.cluster else None}


DIGEST_BYTES = 16   # of a sha256, compared across workers (one collective row of int32)


def weights_sha256(weights) -> str:
    """sha256 over the bytes of every weight array, in order: equal only for bit-identical weights."""
    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def setup_sha256(what: dict) -> str:
    """sha256 of what a worker sees (recipe, classes, splits, seed), independent of the keys' order."""
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def digest_row(digest: str) -> np.ndarray:
    """The first DIGEST_BYTES of a hex digest as one int32 row, for a collective."""
    return np.frombuffer(bytes.fromhex(digest)[:DIGEST_BYTES], np.uint8).astype(np.int32)


def differing_rows(rows: np.ndarray) -> list[int]:
    """The workers (rows, in worker order) whose row differs from worker 0's."""
    return [w for w in range(len(rows)) if not np.array_equal(rows[w], rows[0])]


@contextlib.contextmanager
def _deadline(seconds: float, message: str):
    """End this process (one error line on stderr, then SIGKILL) if the block still runs after `seconds`.

    Waiting for the cluster blocks inside TensorFlow's C++ runtime holding the GIL, where neither a
    Python timer thread nor a signal handler runs (and SIGTERM is ignored), so the watch is a separate
    small process, stopped as soon as the block ends."""
    code = ("import os, sys, time\n"
            "time.sleep(float(sys.argv[1]))\n"
            "print('Error: ' + sys.argv[2], file=sys.stderr, flush=True)\n"
            "os.kill(int(sys.argv[3]), 9)\n")
    watch = subprocess.Popen([sys.executable, "-c", code, str(seconds), message, str(os.getpid())],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        watch.kill()
        watch.wait()


def start(cluster: Cluster | None, timeout_s: float = DEFAULT_TIMEOUT_S, log=print) -> Replicas:
    """The strategy for this process: multi-worker for a cluster of 2+, mirrored for 2+ local GPUs,
    none otherwise. Must run before TensorFlow executes anything else (TensorFlow's rule)."""
    import tensorflow as tf

    if cluster is not None and cluster.size > 1:
        os.environ[TF_CONFIG] = cluster.tf_config()
        log(f"distributed: worker {cluster.index} of {cluster.size} ({cluster.workers[cluster.index]}), "
            f"waiting up to {timeout_s:.0f} s for the others")
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout_s)
        with _deadline(timeout_s, f"worker {cluster.index}: the cluster did not come together within "
                                  f"{timeout_s:.0f} s (workers {', '.join(cluster.workers)}): start every worker, "
                                  f"check the addresses and that the ports are reachable; nothing was written"):
            strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
        return Replicas(strategy, cluster, timeout_s, "MultiWorkerMirroredStrategy", tf)
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log(f"distributed: {len(gpus)} GPUs on this machine (MirroredStrategy)")
        return Replicas(tf.distribute.MirroredStrategy(), None, timeout_s, "MirroredStrategy", tf)
    return Replicas(None, cluster, timeout_s, "none", tf)


PEER_ERRORS = ("UnavailableError", "DeadlineExceededError", "AbortedError", "CancelledError", "InternalError",
               "FailedPreconditionError", "UnknownError")


@contextlib.contextmanager
def peers_guarded(rep: Replicas):
    """TensorFlow's errors from a failed collective as one DistributeError line naming this worker."""
    if not rep.multi:
        yield
        return
    import tensorflow as tf
    try:
        yield
    except tf.errors.OpError as e:
        if type(e).__name__ not in PEER_ERRORS:
            raise
        why = peer_reason(str(e.message)) or type(e).__name__
        raise DistributeError(f"worker {rep.index}: training stopped, another worker stopped or cannot be "
                              f"reached ({why}); nothing was written") from None


def peer_reason(message: str) -> str | None:
    """The useful words of TensorFlow's collective error (its first line is often "Graph execution error")."""
    import re

    if "stopped sending heartbeats" in message:
        task = re.search(r"heartbeats\):\s*(/job:\S+)", message)
        return f"{task.group(1) if task else 'a worker'} stopped sending heartbeats: hung, or cut off from the network"
    m = re.search(r'grpc_message:"([^"]+)"', message) or re.search(r"aborted by:?\s*(.+)", message) \
        or re.search(r"(Connection [a-z ]+|Deadline Exceeded|timed out[^\n]*)", message, re.I)
    return m.group(1).strip()[:200] if m else None


# ------------------------------------------------------------------------------------ fit
def fit(rep: Replicas, model, *, train: Callable, examples: int, val: Callable, epochs: int, callbacks: list,
        global_batch: int, log=print):
    """Keras' fit(), under a strategy: `train(per_replica_batch, input_context)` gives this input
    pipeline's endless (x, one-hot y, sample weight) batches; `val()` this worker's share of the
    validation set, (x, one-hot y) batches. Returns the History callback, like fit(), with
    `interrupted` True when a worker asked to stop (Ctrl-C there): every worker then stops at the same
    step and treats the run as interrupted, so all of them take the same path afterwards."""
    import keras
    import tensorflow as tf

    steps = -(-examples // global_batch)
    per = rep.per_replica_batch(global_batch)
    data = iter(rep.strategy.distribute_datasets_from_function(lambda ctx: train(per, ctx)))
    step = _train_step(rep, model, global_batch)
    cbs = keras.callbacks.CallbackList(callbacks, add_history=True, model=model, epochs=epochs, steps=steps,
                                       verbose=0)
    model.stop_training, interrupted = False, False
    cbs.on_train_begin()
    for epoch in range(epochs):
        cbs.on_epoch_begin(epoch)
        totals = np.zeros(3)
        for i in range(steps):
            cbs.on_train_batch_begin(i)
            out = step(data, tf.constant(float(model.stop_training)))
            s = np.asarray(rep.strategy.experimental_local_results(out)[0])
            totals += s[:3]
            cbs.on_train_batch_end(i, {"loss": totals[0] / totals[2], "accuracy": totals[1] / totals[2]})
            if s[3] > 0:   # a worker asked to stop (Ctrl-C): all stop at this step
                model.stop_training = interrupted = True
                break
        logs = {"loss": totals[0] / max(totals[2], 1), "accuracy": totals[1] / max(totals[2], 1),
                **evaluate(rep, model, val)}
        cbs.on_epoch_end(epoch, logs)
        if rep.is_chief:
            log(f"  epoch {epoch + 1}/{epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
        if model.stop_training:
            break
    cbs.on_train_end()
    model.history.interrupted = interrupted
    return model.history


_VAL_FNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _val_sums(model):
    """One traced [loss sum, correct, examples] function per model (evaluate runs every epoch)."""
    import tensorflow as tf

    if model not in _VAL_FNS:
        loss_fn = model.loss

        @tf.function(reduce_retracing=True)
        def sums(x, y):
            p = model(x, training=False)
            return tf.stack([tf.reduce_sum(loss_fn.call(y, p)),
                             tf.reduce_sum(tf.cast(tf.equal(tf.argmax(p, 1), tf.argmax(y, 1)), tf.float32)),
                             tf.cast(tf.shape(x)[0], tf.float32)])
        _VAL_FNS[model] = sums
    return _VAL_FNS[model]


def _train_step(rep: Replicas, model, global_batch: int):
    """One step on every replica: weighted loss averaged over the GLOBAL batch, gradients all-reduced
    by the optimizer under the strategy; returns all-reduced [loss sum, correct, examples, stop]."""
    import tensorflow as tf

    loss_fn, opt = model.loss, model.optimizer

    def replica_step(x, y, w, stop):
        with tf.GradientTape() as tape:
            p = model(x, training=True)
            per_example = loss_fn.call(y, p) * w
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        variables = model.trainable_variables
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(p, 1), tf.argmax(y, 1)), tf.float32))
        n = tf.cast(tf.shape(x)[0], tf.float32)
        stats = tf.stack([tf.reduce_sum(per_example), correct, n, stop])
        return tf.distribute.get_replica_context().all_reduce("SUM", stats)

    @tf.function(reduce_retracing=True)
    def step(iterator, stop):
        x, y, w = next(iterator)
        return rep.strategy.run(replica_step, args=(x, y, w, stop))

    return step


def evaluate(rep: Replicas, model, val: Callable) -> dict:
    """val_loss and val_accuracy over every worker's share, all-reduced: the same on every worker."""
    sums = _val_sums(model)
    total = np.zeros(3)
    for x, y in val():
        total += np.asarray(sums(x, y), np.float64)
    loss, correct, n = rep.all_sum(total)
    return {"val_loss": loss / max(n, 1), "val_accuracy": correct / max(n, 1)}
