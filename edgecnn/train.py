"""Two-phase fine-tuning of MobileNetV2 for a recipe task.

Phase 1 trains on cached activations. The frozen part of the backbone (BatchNorm in inference mode)
runs once per image and augmented view and its output is cached on disk, out of core (see
edgecnn.activations; each worker caches and trains on its own share): the pooled features, on which the
new head trains alone, or the activations below the backbone's last N blocks (recipe
`head.top_blocks`), on which those blocks train with the head. Either way phase 1 then trains for
many epochs without decoding, augmenting or recomputing the frozen layers.
Phase 2 unfreezes the last N backbone layers (BatchNorm stays frozen) and fine-tunes end to end on
augmented images with a small learning rate. Both phases use early stopping with the best weights
restored, and ReduceLROnPlateau or a warm-up + cosine schedule. Ctrl-C keeps the best weights so far
and still writes the run.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .core import contract as C
from . import data as D
from . import model as M
from . import distribute as dist
from . import activations as A
from .core.io import atomic_path, atomic_write_json, atomic_write_text, check_can_create_folder, sha256_file
from .checks import default_store as default_checks_store
from .recipe import Recipe
from .core.io import staged
from .rundir import RECIPE_FILE, check_out_dir, recipe_json, refuse_existing, write_marker



@dataclass
class TrainOptions:
    data_dir: Path
    out_dir: Path
    weights: str | None = None
    image_size: int | None = None
    epochs: int | None = None      # caps the epochs of each phase
    seed: int = 0
    gradcam: int = 0
    progress: bool = True
    overwrite: bool = False        # replace an existing run directory whole (export/ included)
    cluster: dist.Cluster | None = None    # train with other workers (default: TF_CONFIG if set)
    worker_timeout: float = dist.DEFAULT_TIMEOUT_S
    command: str = "train"         # recorded in the run's marker; "demo" replaces only a demo's run
    keep_cache: bool = False       # keep phase 1's activation cache beside the run for a re-run
    cache_shard_bytes: int = A.DEFAULT_SHARD_BYTES
    free_space: Callable[[Path], int] = A.disk_free    # bytes free on the disk of a folder


def check_destination(opts: TrainOptions) -> None:
    """Before anything trains: --out lies apart from the data, may be replaced, and can be written."""
    out = Path(opts.out_dir)
    check_out_dir(out, {"--data": opts.data_dir})
    refuse_existing(out, opts.overwrite, opts.command)
    check_can_create_folder(out)


FEATURE_BATCH = 64     # images per batch through the frozen layers while caching (inference only)


def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _keep_best(monitor: str):
    """A Keras callback that remembers the best weights, so Ctrl-C can restore them."""
    import keras

    class KeepBest(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best, self.weights, self.epoch = None, None, None
            self.mode_max = "acc" in monitor

        def start_from(self, value: float, weights) -> None:
            """The phase's starting point competes too: fine-tuning must not end worse than it began."""
            self.best, self.weights, self.epoch = value, weights, -1

        def on_train_begin(self, logs=None):
            # before the first epoch ends, "the best so far" is what the phase started from
            if self.weights is None:
                self.weights = self.model.get_weights()

        def on_epoch_end(self, epoch, logs=None):
            v = (logs or {}).get(monitor)
            if v is None:
                return
            if self.best is None or (v > self.best if self.mode_max else v < self.best):
                self.best, self.epoch = v, epoch
                self.weights = self.model.get_weights()

        def restore(self):
            # fit() never ran (Ctrl-C while measuring the starting point): the model still holds those weights
            if self.weights is not None and getattr(self, "_model", None) is not None:
                self.model.set_weights(self.weights)

    return KeepBest()


class _Interrupt:
    """Ctrl-C during fit() as a request, not an exception.

    A KeyboardInterrupt raised at an arbitrary bytecode can land inside a library callback (a weakref
    finaliser, a tf.data thread) where it is printed and swallowed, and training silently goes on.
    So the first Ctrl-C only sets a flag; a Keras callback stops training at the next batch and the
    best weights so far are kept. A second Ctrl-C raises KeyboardInterrupt as usual.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)   # a second Ctrl-C aborts at once
        print("interrupt: stopping after this batch (Ctrl-C again to abort)", file=sys.stderr, flush=True)

    def callback(self):
        import keras

        outer = self

        class StopOnInterrupt(keras.callbacks.Callback):
            def _check(self, *_, **__):
                if outer.requested:
                    self.model.stop_training = True

            on_train_batch_end = on_epoch_end = _check

        return StopOnInterrupt()


def _callbacks(recipe: Recipe, interrupt: _Interrupt, schedule: str):
    import keras

    es, rl = recipe.training.early_stopping, recipe.training.reduce_lr
    keep = _keep_best(es.monitor)
    mode = "max" if keep.mode_max else "min"     # said, not inferred from compiled metrics
    # KeepBest restores the best weights (also on Ctrl-C); EarlyStopping only stops
    cbs = [keep, interrupt.callback(), keras.callbacks.EarlyStopping(monitor=es.monitor, patience=es.patience,
                                                                      mode=mode)]
    if schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=es.monitor, factor=rl.factor, patience=rl.patience,
                                                     min_lr=rl.min_lr, mode=mode, verbose=0))
    return keep, cbs


def learning_rate(rate: float, schedule: str, epochs: int, examples: int, batch: int):
    """The optimizer's learning rate: constant ("plateau": reduce_lr cuts it) or warm-up + cosine over
    the phase's steps (linear from 0 over the first 10%, then cosine decay to 0 at the last step)."""
    import keras

    if schedule == "plateau":
        return rate
    steps = epochs * -(-examples // batch)
    warmup = max(1, steps // 10)
    return keras.optimizers.schedules.CosineDecay(0.0, max(1, steps - warmup), warmup_target=rate,
                                                  warmup_steps=warmup)


def class_weights(labels: np.ndarray, n: int, mode: str) -> dict[int, float] | None:
    if mode != "balanced":
        return None
    counts = np.bincount(labels, minlength=n).astype(float)
    return {i: float(len(labels) / (n * c)) if c else 0.0 for i, c in enumerate(counts)}


def _fit_verbose() -> int:
    return 1 if sys.stdout.isatty() else 2


def _history(h) -> dict[str, list[float]]:
    return {k: [float(v) for v in vals] for k, vals in (h.history if h else {}).items()}


def predict_at(model, x, batch: int) -> np.ndarray:
    """model.predict_on_batch with every call at one input shape: a short last batch is padded and the
    padding's outputs dropped, so the predict function is traced once (each new batch size would
    trace it again, and TensorFlow warns about retracing in the middle of the output)."""
    x = np.asarray(x)
    n = len(x)
    if n < batch:
        x = np.concatenate([x, np.zeros((batch - n, *x.shape[1:]), x.dtype)])
    return np.asarray(model.predict_on_batch(x))[:n]


def feature_batches(feature_model, ds, batch: int, desc: str, progress: bool):
    """(outputs, labels) of the feature model, one batch of the image dataset at a time."""
    from tqdm.auto import tqdm

    for x, y in tqdm(ds, desc=desc, unit="batch", disable=not progress, leave=False):
        yield predict_at(feature_model, x, batch), y.numpy()


def predict_samples(model, samples: list[D.Sample], contract: C.Contract, batch: int = 64) -> np.ndarray:
    """Class probabilities through the deployment preprocessing (numpy contract), in chunks."""
    out = []
    for i in range(0, len(samples), batch):
        x = C.preprocess_batch([s.path for s in samples[i:i + batch]], contract)
        out.append(predict_at(model, x, batch))
    return np.concatenate(out) if out else np.zeros((0, contract.num_classes), np.float32)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict:
    from sklearn.metrics import classification_report, confusion_matrix

    y_pred = probs.argmax(1)
    idx = list(range(len(labels)))
    rep = classification_report(y_true, y_pred, labels=idx, target_names=labels, output_dict=True,
                                zero_division=0)
    per_class = {name: {"precision": rep[name]["precision"], "recall": rep[name]["recall"],
                        "f1": rep[name]["f1-score"], "support": int(rep[name]["support"])} for name in labels}
    return {
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else None,
        "macro_f1": rep["macro avg"]["f1-score"],
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=idx).tolist(),
    }


@dataclass
class _Session:
    """What the phases of one training run share."""

    recipe: Recipe
    opts: TrainOptions
    ds: D.Dataset
    contract: C.Contract
    model: object
    weights: M.WeightsChoice
    class_weight: dict | None
    loss: object
    augment: object
    log: Callable[[str], None]
    timings: dict[str, float]
    history: dict[str, dict[str, list[float]]]
    rep: dist.Replicas
    work: A.WorkFolder
    interrupted: bool = False

    def cap(self, epochs: int) -> int:
        return min(epochs, self.opts.epochs) if self.opts.epochs else epochs

    @property
    def num_classes(self) -> int:
        return len(self.ds.classes)


def train(recipe: Recipe, opts: TrainOptions, log: Callable[[str], None] = print) -> dict | None:
    """Scan, build, phase 1 (head), phase 2 (fine-tune), evaluate, and write the run whole.

    With other workers (opts.cluster or TF_CONFIG) every worker trains; only the chief evaluates
    and writes the run, and only the chief returns its metrics (the others return None)."""
    _quiet_tf()
    t_start = time.perf_counter()
    if opts.image_size:
        recipe = recipe.with_overrides(image_size=opts.image_size)
    cluster = opts.cluster or dist.Cluster.from_env()
    if cluster is None or cluster.is_chief:
        check_destination(opts)
    import keras
    import tensorflow as tf

    rep = dist.start(cluster, opts.worker_timeout, log)    # before TensorFlow runs anything else
    keras.utils.set_random_seed(opts.seed)
    tf.config.experimental.enable_op_determinism()
    with tempfile.TemporaryDirectory(prefix="edgecnn-norm-") as cache, _work_folder(opts, rep) as work:
        with dist.peers_guarded(rep):
            s = _start(recipe, opts, cache, log, rep, work)
            _phase1_head(s)
            _phase2_fine_tune(s)
            rep.check_in_sync(s.model, log)
        if not rep.is_chief:
            log(f"worker {rep.index}: training done; worker 0 (the chief) evaluates and writes the run")
            with dist.peers_guarded(rep):
                rep.barrier()     # leave with the chief: a worker gone early alarms the chief's health checks
            return None
        _leave_strategy(s)
        M.set_trainable(s.model, 0)
        evals = _evaluate(s)
        with staged(Path(opts.out_dir)) as out:
            s.timings["total_s"] = time.perf_counter() - t_start
            metrics = _write_run(s, evals, out)
    rep.farewell(log)
    return metrics


def _work_folder(opts: TrainOptions, rep: dist.Replicas) -> A.WorkFolder:
    """Phase 1's activation cache beside the run (one per worker); removed when the run is written
    unless kept."""
    return A.WorkFolder(A.work_folder(opts.out_dir, rep.index if rep.workers > 1 else None), keep=opts.keep_cache,
                        shard_bytes=opts.cache_shard_bytes, free_space=opts.free_space)


def _start(recipe: Recipe, opts: TrainOptions, cache: str, log, rep: dist.Replicas, work: A.WorkFolder) -> _Session:
    """Scan the data (unreadable files listed), build the model, settle class weights and loss."""
    import keras

    timings: dict[str, float] = {}
    t = time.perf_counter()
    ds = D.scan(opts.data_dir, val_fraction=recipe.training.validation_split, seed=opts.seed,
                cache_dir=cache, progress=opts.progress, checks=default_checks_store())
    timings["scan_s"] = time.perf_counter() - t
    log(f"data: {len(ds.classes)} classes, train {len(ds.train)}, val {len(ds.val)} ({ds.val_source}), "
        f"test {len(ds.test)}; skipped {len(ds.skipped)} unreadable, normalised {len(ds.normalized)}; "
        f"{ds.checked.summary()}")
    for sk in ds.skipped[:5]:
        log(f"  skipped {sk['path']}: {sk['reason']}")
    if len(ds.skipped) > 5:
        log(f"  ... and {len(ds.skipped) - 5} more (all listed in metrics.json)")
    for warning in ds.warnings():
        log(warning)
    size = recipe.image_size
    contract = C.Contract(input_size=(size, size), labels=tuple(ds.classes),
                          model={"arch": recipe.model.arch, "alpha": recipe.model.alpha, "recipe": recipe.name})
    wch = M.resolve_weights(opts.weights, recipe.model.alpha)
    log(wch.message)
    tr = recipe.training
    if rep.multi:
        rep.agree({"recipe": recipe_json(recipe), "classes": ds.classes, "splits": ds.counts(), "seed": opts.seed})
        log(f"distributed: {rep.replicas} replicas ({rep.kind}), global batch {tr.batch_size} = "
            f"{rep.replicas} x {rep.per_replica_batch(tr.batch_size)}, learning rates as in the recipe, seed {opts.seed}")
    with rep.scope():
        model = M.build(len(ds.classes), size, alpha=recipe.model.alpha, dropout=recipe.model.dropout, weights=wch)
    y_train = np.array([sm.label for sm in ds.train])
    return _Session(recipe, opts, ds, contract, model, wch,
                    class_weights(y_train, len(ds.classes), tr.class_weight),
                    keras.losses.CategoricalCrossentropy(label_smoothing=tr.label_smoothing),
                    D.augmenter(recipe.augmentation, opts.seed), log, timings, {}, rep, work)


def _leave_strategy(s: _Session) -> None:
    """After distributed training, the chief copies the trained weights into a model built outside the
    strategy: evaluation and the saved model.keras are then exactly those of a one-process run."""
    if not s.rep.multi:
        return
    r = s.recipe
    plain = M.build(s.num_classes, r.image_size, alpha=r.model.alpha, dropout=r.model.dropout)
    plain.set_weights(s.model.get_weights())
    s.model = plain


@dataclass
class _Phase1Cache:
    """Phase 1's cached activations of this worker's share: train (clean + augmented views) and val."""

    point: str
    train: A.CachedRows
    val: A.CachedRows
    reused: bool

    @property
    def bytes(self) -> int:
        return sum(len(c) * A.row_bytes(c.manifest.row_shape, c.manifest.dtype) for c in (self.train, self.val))

    @property
    def shards(self) -> int:
        return len(self.train.manifest.shard_rows) + len(self.val.manifest.shard_rows)


def _cached_features(s: _Session, point: str) -> _Phase1Cache:
    """The output of layer `point` (frozen below it) for clean + augmented train views and for val, of
    this worker's share, in the run's work folder: found by key when a kept cache matches, else
    written once (after checking the disk has room). Spatial activations are kept as float16 (half
    the bytes; far finer than INT8 deployment)."""
    fx = M.feature_extractor(s.model, point)
    train, val = s.rep.shard(s.ds.train), s.rep.shard(s.ds.val)
    if not train:    # its endless share would never yield a batch
        raise dist.DistributeError(f"worker {s.rep.index} has no training photos: there are fewer "
                                   f"({len(s.ds.train)}) than workers ({s.rep.workers})")
    views = s.recipe.training.head.augmented_views if s.augment is not None else 0
    shape, dtype = tuple(int(d) for d in fx.output.shape[1:]), "float32" if point == M.POOL else "float16"
    key = _cache_key(s, point, train, val)
    reqs = [A.CacheRequest("train", key, shape, dtype, len(train) * (1 + views)),
            A.CacheRequest("val", key, shape, dtype, len(val))]
    s.work.keep_only([key])
    found = [s.work.find(r) for r in reqs]
    s.work.check_room([r for r, f in zip(reqs, found) if f is None])
    batch = s.recipe.training.batch_size if point == M.POOL else max(s.recipe.training.batch_size, FEATURE_BATCH)
    made = [f or s.work.write(r, _activation_batches(s, fx, share, batch, views if r.name == "train" else 0, r.name))
            for r, f, share in zip(reqs, found, (train, val))]
    return _Phase1Cache(point, made[0], made[1], reused=all(found))


def _cache_key(s: _Session, point: str, train: list[D.Sample], val: list[D.Sample]) -> str:
    """What the cached rows depend on: the photos (path, label, size, mtime, in order), the resolved
    recipe, the seed, the weights, the cache point, this worker's place and the library versions."""
    import keras
    import tensorflow as tf

    def photos(samples):
        return [(str(sm.load_path), sm.label, st.st_size, st.st_mtime_ns)
                for sm in samples for st in [sm.load_path.stat()]]

    w = s.weights
    return A.cache_key({"schema": A.SCHEMA, "point": point, "recipe": recipe_json(s.recipe), "seed": s.opts.seed,
                        "weights": [w.source, sha256_file(w.path) if w.path else None],
                        "worker": [s.rep.index, s.rep.workers], "versions": [tf.__version__, keras.__version__],
                        "train": photos(train), "val": photos(val)})


def _activation_batches(s: _Session, fx, samples: list[D.Sample], batch: int, views: int, what: str):
    """(activations, labels) batches: the clean photos, then `views` augmented passes over them."""
    yield from feature_batches(fx, D.image_dataset(samples, s.contract, batch_size=batch, keep_decoded=False),
                               batch, f"features {what} (clean)", s.opts.progress)
    if views:    # each view decodes the photos again: memory stays flat however many there are
        aug_ds = D.image_dataset(samples, s.contract, batch_size=batch, augment=s.augment, keep_decoded=False)
        for v in range(views):
            yield from feature_batches(fx, aug_ds, batch, f"features {what} (view {v + 1}/{views})", s.opts.progress)


def _cached_dataset(s: _Session, rows: A.CachedRows, shuffle: bool, batch: int | None = None,
                    repeat: bool = False):
    """Cached activations read a batch at a time through tf.data (class weights as per-sample weights
    of the train set): the row indices are shuffled, each batch's rows read from the shards. With
    `repeat` the epochs run on without end (the distributed loop counts the steps)."""
    import tensorflow as tf

    n, batch = s.num_classes, batch or s.recipe.training.batch_size
    labels, weights = rows.labels, _sample_weights(s, rows.labels)
    shape = (None, *rows.manifest.row_shape)

    def take(i):
        return rows.take(i), labels[i], weights[i]

    @tf.autograph.experimental.do_not_convert     # plain graph code: nothing for AutoGraph to convert
    def read(idx):
        x, y, w = tf.numpy_function(take, [idx], (tf.as_dtype(rows.dtype), tf.int32, tf.float32), stateful=False)
        x, y = tf.ensure_shape(x, shape), tf.one_hot(tf.ensure_shape(y, (None,)), n)
        return (x, y, tf.ensure_shape(w, (None,))) if shuffle else (x, y)

    ds = tf.data.Dataset.range(len(rows))
    if shuffle:
        ds = ds.shuffle(len(rows), seed=s.opts.seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    return ds.batch(batch).map(read).prefetch(tf.data.AUTOTUNE)


def _sample_weights(s: _Session, y: np.ndarray) -> np.ndarray:
    return (np.array([s.class_weight[int(c)] for c in y], np.float32) if s.class_weight
            else np.ones(len(y), np.float32))


def _phase1_fit(s: _Session, top, epochs: int, cache: _Phase1Cache, examples: int):
    """fit(callbacks) for phase 1: Keras' fit, or under a strategy the distributed loop, each worker
    on its own share of the cache (`examples`: the rows of every worker, which set an epoch's steps)."""
    if not s.rep.own_loop:
        return lambda cbs: top.fit(_cached_dataset(s, cache.train, shuffle=True), epochs=epochs, callbacks=cbs,
                                   verbose=0, validation_data=_cached_dataset(s, cache.val, shuffle=False),
                                   shuffle=False)   # the dataset shuffles itself
    return lambda cbs: dist.fit(
        s.rep, top, train=lambda batch, ctx: _cached_dataset(s, cache.train, True, batch, repeat=True),
        examples=examples, val=lambda: _cached_dataset(s, cache.val, False), epochs=epochs, callbacks=cbs,
        global_batch=s.recipe.training.batch_size, log=s.log)


def _phase1_head(s: _Session) -> None:
    """Phase 1: the head (and the backbone's last `top_blocks` blocks) on cached activations of the
    frozen layers below (BatchNorm in inference mode throughout)."""
    import keras

    tr, hp = s.recipe.training, s.recipe.training.head
    t = time.perf_counter()
    point = M.cache_point(s.model, hp.top_blocks)
    n_train = M.set_trainable(s.model, M.layers_above(s.model, point))
    cache = _cached_features(s, point)
    s.timings["phase1_features_s"] = time.perf_counter() - t
    how = "found (kept by an earlier run)" if cache.reused else f"in {s.timings['phase1_features_s']:.1f} s"
    s.log(f"phase 1: cached {point} outputs {cache.train.manifest.row_shape} of {len(cache.train)} train "
          f"images/views and {len(cache.val)} val images ({cache.bytes / 1e6:.0f} MB on disk, {cache.shards} "
          f"shards, in {s.work.folder.name}) {how}")
    if hp.top_blocks:
        s.log(f"phase 1: training the head and the backbone's last {hp.top_blocks} blocks ({n_train} layers "
              f"with weights, BatchNorm frozen) on them, lr {hp.learning_rate:g} ({hp.schedule})")
    epochs = s.cap(hp.epochs)
    examples = sum(s.rep.all_counts(len(cache.train))) if s.rep.workers > 1 else len(cache.train)
    with s.rep.scope():
        top = M.top_model(s.model, point)
        top.compile(optimizer=keras.optimizers.Adam(learning_rate(hp.learning_rate, hp.schedule, epochs,
                                                                  examples, tr.batch_size)),
                    loss=s.loss, metrics=["accuracy"])
    t1 = time.perf_counter()
    h, _ = _fit(s, _phase1_fit(s, top, epochs, cache, examples), None, "head", hp.schedule)
    s.history["head"] = _history(h)
    s.timings["phase1_head_s"] = time.perf_counter() - t1
    s.timings["phase1_s"] = time.perf_counter() - t
    best_val = max(s.history["head"].get("val_accuracy", [0]) or [0])
    s.log(f"phase 1: {len(s.history['head'].get('loss', []))} epochs, best val accuracy {best_val:.3f}, "
          f"{s.timings['phase1_s']:.1f} s")


def _fit(s: _Session, fit, start_from, what: str, schedule: str):
    """fit(callbacks) with best-weights keeping and Ctrl-C as a request; the best weights restored.
    start_from() (the phase's starting score and weights) runs inside the same Ctrl-C handling."""
    h = None
    with _Interrupt() as stop:
        keep, cbs = _callbacks(s.recipe, stop, schedule)
        try:
            if start_from is not None:
                keep.start_from(*start_from())
            if not stop.requested:
                h = fit(cbs)
                # distributed: another worker's Ctrl-C stopped every worker at the same step
                stop.requested = stop.requested or getattr(h, "interrupted", False)
        except KeyboardInterrupt:
            stop.requested = True
    if stop.requested:
        s.interrupted = True
        s.log(f"interrupted: keeping the best {what} so far")
    keep.restore()
    return h, keep


def _phase2_fine_tune(s: _Session) -> None:
    """Phase 2: unfreeze the last N backbone layers and fine-tune end to end with a small learning rate;
    the starting point competes for the best weights, so fine-tuning never ends worse than phase 1."""
    import keras

    tr, ft = s.recipe.training, s.recipe.training.fine_tune
    s.timings["phase2_s"] = 0.0
    if s.interrupted or s.cap(ft.epochs) <= 0 or ft.unfreeze_layers <= 0:
        return
    t = time.perf_counter()
    n_train = M.set_trainable(s.model, ft.unfreeze_layers, ft.train_batchnorm)
    with s.rep.scope():
        s.model.compile(optimizer=keras.optimizers.Adam(learning_rate(
            ft.learning_rate, ft.schedule, s.cap(ft.epochs), len(s.ds.train), tr.batch_size)),
            loss=s.loss, metrics=["accuracy"])
    s.log(f"phase 2: fine-tuning the last {ft.unfreeze_layers} backbone layers ({n_train} with weights, "
          f"BatchNorm {'trained' if ft.train_batchnorm else 'frozen'}) at lr {ft.learning_rate:g}")
    start_from, fit = (_phase2_distributed if s.rep.own_loop else _phase2_keras)(s)
    h, keep = _fit(s, fit, start_from, "fine-tuned weights", ft.schedule)
    if keep.epoch == -1:
        s.log(f"phase 2: no epoch beat the starting point on {tr.early_stopping.monitor}: kept phase 1's weights")
    s.history["fine_tune"] = _history(h)
    s.timings["phase2_s"] = time.perf_counter() - t
    s.log(f"phase 2: {len(s.history['fine_tune'].get('loss', []))} epochs, {s.timings['phase2_s']:.1f} s")


def _phase2_keras(s: _Session):
    """(start_from, fit) for phase 2 in one process: Keras' evaluate and fit on tf.data images."""
    import tensorflow as tf

    tr, monitor = s.recipe.training, s.recipe.training.early_stopping.monitor
    onehot = lambda x, y: (x, tf.one_hot(y, s.num_classes))  # noqa: E731
    train_ds = D.image_dataset(s.ds.train, s.contract, batch_size=tr.batch_size, augment=s.augment,
                               shuffle=True, seed=s.opts.seed).map(onehot)
    val_ds = D.image_dataset(s.ds.val, s.contract, batch_size=tr.batch_size).map(onehot)

    def start_from():
        start = s.model.evaluate(val_ds, verbose=0, return_dict=True)
        return start[monitor.removeprefix("val_")], s.model.get_weights()

    return start_from, lambda cbs: s.model.fit(
        train_ds, validation_data=val_ds, epochs=s.cap(tr.fine_tune.epochs), class_weight=s.class_weight,
        callbacks=cbs, shuffle=False, verbose=_fit_verbose() if s.opts.progress else 0)  # the dataset shuffles itself


def _phase2_distributed(s: _Session):
    """(start_from, fit) for phase 2 under a strategy: each worker decodes and augments its share of
    the images (shuffled within it each epoch); validation metrics are all-reduced."""
    import tensorflow as tf

    tr, monitor = s.recipe.training, s.recipe.training.early_stopping.monitor
    n, weights = s.num_classes, tf.constant(_sample_weights(s, np.arange(s.num_classes)))
    train, val = s.rep.shard(s.ds.train), s.rep.shard(s.ds.val)

    def train_ds(batch, ctx):
        return D.image_dataset(train, s.contract, batch_size=batch, augment=s.augment, shuffle=True,
                               seed=s.opts.seed).map(lambda x, y: (x, tf.one_hot(y, n), tf.gather(weights, y))).repeat()

    def val_ds():
        return D.image_dataset(val, s.contract, batch_size=tr.batch_size).map(lambda x, y: (x, tf.one_hot(y, n)))

    def start_from():
        return dist.evaluate(s.rep, s.model, val_ds)[monitor], s.model.get_weights()

    return start_from, lambda cbs: dist.fit(
        s.rep, s.model, train=train_ds, examples=len(s.ds.train), val=val_ds, epochs=s.cap(tr.fine_tune.epochs),
        callbacks=cbs, global_batch=tr.batch_size, log=s.log)


def _evaluate(s: _Session) -> dict:
    """{split: (samples, probabilities, metrics)} for val and test, through the numpy contract."""
    t = time.perf_counter()
    evals = {}
    for split in ("val", "test"):
        samples = getattr(s.ds, split)
        if samples:
            probs = predict_samples(s.model, samples, s.contract)
            evals[split] = (samples, probs, classification_metrics(
                np.array([sm.label for sm in samples]), probs, s.ds.classes))
    s.timings["eval_s"] = time.perf_counter() - t
    return evals


def _write_run(s: _Session, evals: dict, out: Path) -> dict:
    """Every file of the run into `out` (a staging folder); the contract records the provenance."""
    from . import plots

    write_marker(out, s.opts.command)
    with atomic_path(out / "model.keras") as tmp:
        s.model.save(tmp)
    atomic_write_text(out / RECIPE_FILE, recipe_json(s.recipe))
    contract = replace(s.contract, provenance=C.Provenance(sha256_file(out / "model.keras"),
                                                           sha256_file(out / RECIPE_FILE)))
    atomic_write_text(out / "labels.txt", "".join(f"{lab}\n" for lab in s.ds.classes))
    C.save(contract, out / "contract.json")
    atomic_write_json(out / "history.json", s.history)
    main_split = "test" if "test" in evals else "val"
    samples, probs, main_metrics = evals[main_split]
    rep_dir = out / "report"
    plots.confusion(np.array(main_metrics["confusion_matrix"]), s.ds.classes, rep_dir / "confusion.png",
                     f"{s.recipe.name}: {main_split} accuracy {main_metrics['accuracy']:.1%}")
    plots.curves(s.history, rep_dir / "curves.png")
    gradcams = plots.gradcam(s.model, samples, probs, s.ds.classes, contract, rep_dir / "gradcam",
                              s.opts.gradcam, M.BACKBONE_END) if s.opts.gradcam else []
    metrics = _metrics(s, evals, main_split, main_metrics, gradcams)
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def _metrics(s: _Session, evals: dict, main_split: str, main_metrics: dict, gradcams: list) -> dict:
    wch = s.weights
    return {
        "recipe": s.recipe.name,
        "image_size": s.recipe.image_size,
        "seed": s.opts.seed,
        "weights": {"source": wch.source, "path": str(wch.path) if wch.path else None},
        "interrupted": s.interrupted,
        "data": {"root": str(s.ds.root), "layout": s.ds.layout, "val_source": s.ds.val_source, **s.ds.counts(),
                 "same_as_train": s.ds.overlap, "checked_anew": s.ds.checked.checked_anew,
                 "check_remembered": s.ds.checked.remembered},
        "test_accuracy": evals["test"][2]["accuracy"] if "test" in evals else None,
        "val_accuracy": evals["val"][2]["accuracy"] if "val" in evals else None,
        "evaluated_on": main_split,
        "macro_f1": main_metrics["macro_f1"],
        "per_class": main_metrics["per_class"],
        "confusion_matrix": main_metrics["confusion_matrix"],
        "labels": s.ds.classes,
        "timings_s": {k: round(v, 2) for k, v in s.timings.items()},
        "skipped_files": s.ds.skipped,
        "normalized_files": s.ds.normalized,
        "gradcam": gradcams,
        "recipe_used": json.loads(s.recipe.model_dump_json()),
        "distribution": s.rep.describe(s.recipe.training.batch_size, s.opts.seed) if s.rep.multi else None,
    }
