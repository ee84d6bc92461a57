"""Latency in turns, one process, no TensorFlow: ai_edge_litert + numpy only, 2 threads.
usage: python3 latency.py BASE.tflite CAND.tflite [...] [--blocks 7 --runs 50]
Prints each model's median of block medians and the ratio to the first (the PTQ model)."""
import sys
import time

import numpy as np
from ai_edge_litert.interpreter import Interpreter

args = [a for a in sys.argv[1:] if not a.startswith("--")]
blocks = 7 if "--blocks" not in sys.argv else int(sys.argv[sys.argv.index("--blocks") + 1])
runs = 50 if "--runs" not in sys.argv else int(sys.argv[sys.argv.index("--runs") + 1])
paths = [a for a in args if a.endswith(".tflite")]
its = []
rng = np.random.default_rng(0)
for p in paths:
    it = Interpreter(model_path=p, num_threads=2)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    info = np.iinfo(d["dtype"]) if d["dtype"] != np.float32 else None
    x = (rng.integers(info.min, info.max + 1, d["shape"]).astype(d["dtype"]) if info
         else rng.standard_normal(d["shape"]).astype(np.float32))
    it.set_tensor(d["index"], x)
    for _ in range(10):
        it.invoke()
    its.append(it)
assert "tensorflow" not in sys.modules
meds = [[] for _ in paths]
for b in range(blocks):
    order = range(len(its)) if b % 2 == 0 else reversed(range(len(its)))
    for i in order:
        it = its[i]
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            it.invoke()
            ts.append(time.perf_counter() - t)
        meds[i].append(np.median(ts) * 1e3)
base = np.median(meds[0])
for p, m in zip(paths, meds):
    print(f"{np.median(m):8.3f} ms  ratio {np.median(m) / base:.3f}  blocks {np.round(m, 3).tolist()}  {p}")
print("tensorflow imported:", "tensorflow" in sys.modules)
