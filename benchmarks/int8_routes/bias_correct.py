"""Route A: empirical bias correction of a full-integer INT8 TFLite (Nagel et al. 2019, applied empirically).

For each CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED op of the INT8 model, in graph order:
  run the (already partly corrected) INT8 model and the float TFLite on the calibration images,
  compare the op's dequantized output with the float model's same-named tensor where neither is
  clamped (fused ReLU/ReLU6 bounds, int8 range), take the per-output-channel mean error e_c and
  subtract round(e_c / (s_in * s_w[c])) from the op's int32 bias (patched in place in the flatbuffer).
Only calibration (training-split) images are used.

usage: python3 bias_correct.py RUN OUT.tflite [--n 200] [--group 1] [--shrink 1.0]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import common as K
import tflfb

TARGET = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def layer_table(q: tflfb.Model, f: tflfb.Model):
    """Target ops of the INT8 model with their float-model counterpart (same output tensor name,
    else the same position among ops of the same type)."""
    fops = [o for o in f.ops() if o["op"] in TARGET]
    fnames = {f.tensor(o["outputs"][0])["name"]: o for o in fops}
    qops = [o for o in q.ops() if o["op"] in TARGET]
    assert len(qops) == len(fops), (len(qops), len(fops))
    rows, by_name = [], 0
    for i, o in enumerate(qops):
        out = q.tensor(o["outputs"][0])
        fo = fnames.get(out["name"])
        if fo is not None:
            by_name += 1
        else:
            fo = fops[i]
        assert fo["op"] == o["op"]
        rows.append({"op": o, "out": out, "in": q.tensor(o["inputs"][0]), "w": q.tensor(o["inputs"][1]),
                     "b": q.tensor(o["inputs"][2]), "f_out": f.tensor(fo["outputs"][0])["index"]})
    return rows, by_name


def float_outputs(fmodel: bytes, xs, rows):
    r = K.Runner(fmodel, preserve=True)
    outs = {i: [] for i in range(len(rows))}
    for x in xs:
        r.invoke(x)
        for i, row in enumerate(rows):
            outs[i].append(r.it.get_tensor(row["f_out"]).astype(np.float16))
    return {i: np.stack(v) for i, v in outs.items()}


def channel_error(qv, s, zp, fv, act):
    """Per-output-channel mean (dequantized INT8 - float) where neither is clamped."""
    qv = qv.reshape(-1, qv.shape[-1]).astype(np.int32)
    fv = fv.reshape(-1, fv.shape[-1]).astype(np.float32)
    deq = (qv - zp) * s
    qlo, qhi = -128, 127
    lo, hi = -np.inf, np.inf
    if act in ("RELU", "RELU6"):
        qlo, lo = max(qlo, zp), 0.0
    if act == "RELU6":
        qhi, hi = min(qhi, zp + int(round(6.0 / s))), 6.0
    valid = (qv > qlo) & (qv < qhi) & (fv > lo) & (fv < hi)
    cnt = valid.sum(0)
    err = np.where(valid, deq - fv, 0).sum(0) / np.maximum(cnt, 1)
    return err, cnt


def correct(run: Path, out: Path, n: int, group: int, shrink: float, log=print, src: Path | None = None,
            min_valid: int = 1, extra: int = 0) -> dict:
    t0 = time.perf_counter()
    qbytes = (src or run / "export" / "model_int8.tflite").read_bytes()
    fbytes = (run / "export" / "model_fp32.tflite").read_bytes()
    q, f = tflfb.Model(qbytes), tflfb.Model(fbytes)
    rows, by_name = layer_table(q, f)
    log(f"{len(rows)} conv/depthwise/fc ops, {by_name} matched to the float model by tensor name")
    assert len({r["b"]["buffer"] for r in rows}) == len(rows), "shared bias buffers"
    xs = K.datasets(run)["calib"][0][:n]
    if extra:
        xs = np.concatenate([xs, K.train_extra(run, extra)])
    t = time.perf_counter()
    fouts = float_outputs(fbytes, xs, rows)
    log(f"float intermediate outputs of {len(xs)} calibration images in {time.perf_counter() - t:.0f} s")
    stats = []
    for g in range(0, len(rows), group):
        chunk = list(range(g, min(g + group, len(rows))))
        r = K.Runner(bytes(q.buf), preserve=True)
        qouts = {i: [] for i in chunk}
        for x in xs:
            r.invoke(x)
            for i in chunk:
                qouts[i].append(r.it.get_tensor(rows[i]["out"]["index"]).copy())
        for i in chunk:
            row = rows[i]
            s, zp = float(row["out"]["scale"][0]), int(row["out"]["zp"][0])
            err, cnt = channel_error(np.stack(qouts[i]), s, zp, fouts[i], row["op"]["act"])
            bscale = row["b"]["scale"].astype(np.float64)
            bias = q.buffer_view(row["b"]["buffer"], np.int32)
            delta = np.where(cnt >= min_valid, np.rint(shrink * err / bscale), 0).astype(np.int64)
            new = np.clip(bias.astype(np.int64) - delta, -2**31, 2**31 - 1).astype(np.int32)
            bias[:] = new
            stats.append({"op": row["op"]["op"], "tensor": row["out"]["name"][:80],
                          "mean_abs_err_in_steps": float(np.abs(err).mean() / s),
                          "max_abs_err_in_steps": float(np.abs(err).max() / s),
                          "min_valid": int(cnt.min())})
    out.write_bytes(bytes(q.buf))
    secs = time.perf_counter() - t0
    log(f"wrote {out} in {secs:.0f} s")
    return {"layers": stats, "seconds": secs, "images": len(xs)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--group", type=int, default=1)
    ap.add_argument("--shrink", type=float, default=1.0)
    ap.add_argument("--src", type=Path, default=None, help="INT8 model to correct (default RUN/export/model_int8.tflite)")
    ap.add_argument("--min-valid", type=int, default=1)
    ap.add_argument("--extra", type=int, default=0, help="add N training-split images beyond the calibration list")
    a = ap.parse_args()
    res = correct(a.run, a.out, a.n, a.group, a.shrink, src=a.src, min_valid=a.min_valid, extra=a.extra)
    a.out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    for s in res["layers"]:
        print(f"  {s['op'][:5]} {s['mean_abs_err_in_steps']:.3f} {s['max_abs_err_in_steps']:.3f} {s['min_valid']:6d} {s['tensor'][:60]}")
