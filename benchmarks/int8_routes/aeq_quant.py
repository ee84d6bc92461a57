"""Route B: AI Edge Quantizer (0.10.0) on the float TFLite: int8 weights (per-channel) + int8 activations,
calibrated on the calibration images; optional activation-range clipping before quantize().
usage: venv/bin/python aeq_quant.py RUN OUT.tflite [--clip none|pXX.X|mse] [--a16 REGEX ...]"""
from __future__ import annotations
import argparse, json, time, pickle
from pathlib import Path
import numpy as np
import common as K
from ai_edge_quantizer import quantizer, recipe, qtyping

ap = argparse.ArgumentParser()
ap.add_argument("run", type=Path); ap.add_argument("out", type=Path)
ap.add_argument("--clip", default="none")
ap.add_argument("--a16", nargs="*", default=[])
ap.add_argument("--n", type=int, default=200)
a = ap.parse_args()
t0 = time.perf_counter()
fpath = a.run / "export" / "model_fp32.tflite"
q = quantizer.Quantizer(str(fpath))
q.load_quantization_recipe(recipe.static_wi8_ai8())
for rx in a.a16:
    q.add_static_config(regex=rx, operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                        activation_num_bits=16, weight_num_bits=8)
xs = K.datasets(a.run)["calib"][0][:a.n]
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_path=str(fpath)); sig = it.get_signature_list()
skey = list(sig)[0]; iname = sig[skey]["inputs"][0]
import os
cache = K.PROBE / "cache" / a.run.name / f"aeq_qsv_{a.n}{'_s' + os.environ['PROBE_CALIB_SEED'] if os.environ.get('PROBE_CALIB_SEED') else ''}.pkl"
if cache.is_file():
    qsv = pickle.loads(cache.read_bytes())
else:
    qsv = q.calibrate({skey: [{iname: x[None].astype(np.float32)} for x in xs]}, num_threads=2)
    cache.write_bytes(pickle.dumps(qsv))
t_cal = time.perf_counter() - t0
if a.clip != "none":
    import clip_ranges
    qsv = clip_ranges.clip(a.run, fpath, qsv, xs, a.clip)
res = q.quantize(qsv, enable_progress_report=False)
a.out.write_bytes(res.quantized_model)
print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "calibrate_s": round(t_cal, 1), "tensors": len(qsv)}))
