"""Multi-worker training: 1 vs 2 workers on this machine, and the all-reduce cost of a step.

Trains the crop_disease recipe (with a 2-epoch phase 2 added, so both phases are measured) on a
subset of ../shared/data/crop_disease_34 once in one process and once as two worker processes on
127.0.0.1 (MultiWorkerMirroredStrategy, same seed, same global batch), and reports per phase the
images per second, the wall time, the test accuracy and, per process, its peak resident set and
the size of the activation cache it wrote (each worker caches its own share). Then it times the all-reduce of one step's
gradients alone (every trainable variable of phase 1 and of phase 2) between two workers.

Two workers on one 2-core machine share the same cores: this measures the overhead of the
distribution, not a speed-up (a worker per machine is what scales). Results: results/multi_worker.json.

    python benchmarks/multi_worker.py [--classes 8] [--image-size 160]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.recipe_runs import save  # noqa: E402
from edgecnn.paths import shared_data  # noqa: E402

EDGECNN = [sys.executable, "-c", "from edgecnn.cli import run; run()"]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def subset(dest: Path, classes: int) -> Path:
    src = shared_data() / "crop_disease_34"
    for split in ("train", "test"):
        for cdir in sorted((src / split).iterdir())[:classes]:
            out = dest / split / cdir.name
            out.mkdir(parents=True)
            for f in sorted(cdir.iterdir()):
                (out / f.name).symlink_to(f)
    return dest


def recipe(dest: Path, image_size: int) -> Path:
    import yaml
    r = yaml.safe_load(subprocess.run([*EDGECNN, "recipes", "show", "crop_disease"], capture_output=True,
                                      text=True, check=True).stdout)
    r["name"], r["image_size"] = "crop_disease_two_phase", image_size
    r["training"]["fine_tune"].update(epochs=2, unfreeze_layers=30)
    r["training"]["early_stopping"]["patience"] = 100     # every epoch runs: equal work in both set-ups
    dest.write_text(yaml.safe_dump(r))
    return dest


def finish(procs: list[subprocess.Popen]) -> list[dict]:
    """Wait for every process: its peak resident set (wait4) and its phase-1 cache line."""
    done = []
    for p in procs:
        output = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            sys.exit(f"a training worker failed:\n{output[-3000:]}")
        line = next((x for x in output.splitlines() if x.startswith("phase 1: cached")), "")
        mb = re.search(r"\((\d+) MB", line)
        done.append({"peak_rss_mb": round(usage.ru_maxrss / 1024), "cache_mb": int(mb.group(1)) if mb else None,
                     "cached_line": line})
    return done


def train(workers: int, data: Path, rec: Path, out: Path) -> dict:
    """One training with `workers` processes; the chief's metrics plus the wall time and, per process,
    its peak RSS and the size of the activation cache it wrote."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    args = [*EDGECNN, "train", "--recipe", str(rec), "--data", str(data), "--quiet", "--overwrite"]
    t = time.perf_counter()
    if workers == 1:
        procs = [subprocess.Popen([*args, "--out", str(out)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)]
    else:
        addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(workers))
        procs = [subprocess.Popen([*args, "--out", str(out) if i == 0 else str(out) + f".w{i}", "--workers",
                                   addresses, "--worker-index", str(i)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for i in range(workers)]
    per_process = finish(procs)
    wall = time.perf_counter() - t
    m = json.loads((out / "metrics.json").read_text())
    m["wall_s"], m["processes"] = wall, per_process
    return m


def throughput(m: dict, r: dict) -> dict:
    t, c, head, ft = m["timings_s"], m["data"], r["training"]["head"], r["training"]["fine_tune"]
    train_n = c["train"]["total"]
    h = json.loads((Path(m["_dir"]) / "history.json").read_text())
    head_epochs, ft_epochs = len(h["head"]["loss"]), len(h.get("fine_tune", {}).get("loss", []))
    cached = train_n * (1 + head["augmented_views"]) + c["val"]["total"]
    return {"test_accuracy": m["test_accuracy"], "wall_s": round(m["wall_s"], 1),
            "phase1_caching_images_per_s": round(cached / t["phase1_features_s"], 1),
            "phase1_training_examples_per_s": round(train_n * (1 + head["augmented_views"]) * head_epochs
                                                    / t["phase1_head_s"], 1),
            "phase2_images_per_s": round(train_n * ft_epochs / t["phase2_s"], 1) if ft_epochs else None,
            "epochs": {"phase1": head_epochs, "phase2": ft_epochs},
            "timings_s": t, "distribution": m.get("distribution"), "processes": m["processes"]}


ALLREDUCE = r'''
import json, os, statistics, sys, time
os.environ["TF_CONFIG"] = sys.argv[1]
import tensorflow as tf
from edgecnn import model as M
strategy = tf.distribute.MultiWorkerMirroredStrategy()
size, cache, unfreeze, reps = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with strategy.scope():
    model = M.build(8, size)
out = {}
for phase, trainable in (("phase1", M.layers_above(model, cache)), ("phase2", unfreeze)):
    M.set_trainable(model, trainable)
    grads = [tf.ones(v.shape, v.dtype) for v in model.trainable_variables]
    reduce = tf.function(lambda: strategy.run(
        lambda: tf.distribute.get_replica_context().all_reduce("SUM", grads)))
    reduce()
    times = []
    for _ in range(reps):
        t = time.perf_counter(); r = reduce(); [x.numpy() for x in tf.nest.flatten(r)][:1]
        times.append((time.perf_counter() - t) * 1000)
    out[phase] = {"variables": len(grads), "parameters": int(sum(g.shape.num_elements() for g in grads)),
                  "megabytes": round(sum(g.shape.num_elements() * 4 for g in grads) / 1e6, 2),
                  "median_ms": round(statistics.median(times), 2), "p90_ms": round(sorted(times)[int(0.9 * len(times))], 2)}
if json.loads(sys.argv[1])["task"]["index"] == 0:
    print(json.dumps(out))
'''


def allreduce_cost(image_size: int, unfreeze: int, reps: int = 30) -> dict:
    """The all-reduce of one step's gradients alone, between two worker processes on 127.0.0.1."""
    from edgecnn import model as M
    from edgecnn.distribute import Cluster

    cache = M.cache_point(M.build(8, image_size), 4)
    addresses = tuple(f"127.0.0.1:{p}" for p in free_ports(2))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    procs = [subprocess.Popen([sys.executable, "-c", ALLREDUCE, Cluster(addresses, i).tf_config(), str(image_size),
                               cache, str(unfreeze), str(reps)], env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)
             for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    return json.loads(outs[0].strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=160)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgecnn-mw-") as tmp:
        tmp = Path(tmp)
        data, rec = subset(tmp / "data", a.classes), recipe(tmp / "recipe.yaml", a.image_size)
        import yaml
        r = yaml.safe_load(rec.read_text())
        rows = {}
        for workers in (1, 2):
            out = tmp / f"run{workers}"
            m = train(workers, data, rec, out)
            m["_dir"] = str(out)
            rows[f"{workers}_worker{'s' if workers > 1 else ''}"] = throughput(m, r)
            print(f"{workers} worker(s): {json.dumps(rows[list(rows)[-1]], default=str)[:600]}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        ar = allreduce_cost(a.image_size, r["training"]["fine_tune"]["unfreeze_layers"])
    one, two = rows["1_worker"], rows["2_workers"]
    summary = {"dataset": f"crop_disease_34, first {a.classes} classes", "image_size": a.image_size,
               "recipe": "crop_disease + 2 epochs of phase 2 (last 30 layers)", "machine_cpus": os.cpu_count(),
               "runs": rows, "allreduce_per_step": ar,
               "ratios_2_over_1": {k: round(two[k] / one[k], 3) for k in
                                   ("phase1_caching_images_per_s", "phase1_training_examples_per_s",
                                    "phase2_images_per_s", "wall_s") if one.get(k) and two.get(k)},
               "memory_per_worker": {
                   "peak_rss_mb": {k: [p["peak_rss_mb"] for p in v["processes"]] for k, v in rows.items()},
                   "cache_mb": {k: [p["cache_mb"] for p in v["processes"]] for k, v in rows.items()},
                   "cache_share_2_over_1": round(max(p["cache_mb"] or 0 for p in two["processes"])
                                                 / max(one["processes"][0]["cache_mb"] or 1, 1), 3)}}
    save(summary, "multi_worker.json")
    print(json.dumps({k: summary[k] for k in ("ratios_2_over_1", "allreduce_per_step", "memory_per_worker")},
                     indent=2))
    for k, v in rows.items():
        print(f"{k}: test accuracy {v['test_accuracy']:.2%}, wall {v['wall_s']} s")


if __name__ == "__main__":
    main()
