"""Route C sensitivity: 16-bit activations (8-bit weights) for one op at a time (AEQ recipe, p99.99 ranges);
mean total-variation distance to the float model on the 'tune' training images (never test/val).
usage: venv/bin/python sweep16.py RUN [--all]"""
import sys, re, time, pickle, json
from pathlib import Path
import numpy as np
import common as K, clip_ranges, tflfb
from ai_edge_quantizer import quantizer, recipe, qtyping
run = Path(sys.argv[1]); fpath = run / "export" / "model_fp32.tflite"
sets = K.datasets(run); xs = sets["calib"][0]
ref = K.Runner(fpath).scores(sets["tune"][0])
cq = K.PROBE / "cache" / run.name / "qsv_p99.99.pkl"
if cq.is_file():
    qsv = pickle.loads(cq.read_bytes())
else:
    base = pickle.loads((K.PROBE / "cache" / run.name / "aeq_qsv_200.pkl").read_bytes())
    qsv = clip_ranges.clip(run, fpath, base, xs, "p99.99"); cq.write_bytes(pickle.dumps(qsv))
def build(a16):
    q = quantizer.Quantizer(str(fpath)); q.load_quantization_recipe(recipe.static_wi8_ai8())
    for rx in a16:
        q.add_static_config(regex=rx, operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                            activation_num_bits=16, weight_num_bits=8)
    return q.quantize(qsv, enable_progress_report=False).quantized_model
def tv(m):
    p = K.Runner(m).scores(sets["tune"][0]); return float(0.5 * np.abs(p - ref).sum(1).mean())
f = tflfb.Model(fpath.read_bytes())
ops = [(o["op"], f.tensor(o["outputs"][0])["name"]) for o in f.ops() if o["op"] in ("CONV_2D","DEPTHWISE_CONV_2D","FULLY_CONNECTED","ADD","MEAN")]
res = {"base": tv(build([]))}
print("base", res["base"], flush=True)
if "--all" in sys.argv:
    m = build([".*"]); res["all16"] = tv(m); print("all16", res["all16"], K.integer_only(m)["int16_uses"], flush=True)
    (K.PROBE / "cand" / run.name / "aeq_a16_all.tflite").write_bytes(m)
else:
    for op, name in ops:
        t = time.perf_counter()
        try:
            v = tv(build([re.escape(name)]))
        except Exception as e:
            v = None; print("ERR", name[:60], type(e).__name__, str(e)[:100])
        res[name] = v; print(f"{op[:5]} {v} {name[:70]} {time.perf_counter()-t:.1f}s", flush=True)
(K.PROBE / "results" / run.name / ("sweep16_all.json" if "--all" in sys.argv else "sweep16.json")).write_text(json.dumps(res, indent=1))
