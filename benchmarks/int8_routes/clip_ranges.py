"""Activation ranges for AI Edge Quantizer's QSVs from the float TFLite's tensors on the calibration images.
mode: 'absmax' (absolute min/max over all images, what the TFLite converter does), 'pXX.X' (that
percentile of each tensor's values, the opposite one for min; never narrower than 0 for a ReLU floor),
'mse' (per-tensor asymmetric uint8-grid range minimising the quantisation MSE over the sampled values),
'mse+absmax-out' etc. are not used. The model input keeps its absolute min/max."""
from __future__ import annotations

import numpy as np

import common as K

_SAMPLE = 4000


def collect(fpath, names, xs, seed=0):
    r = K.Runner(fpath, preserve=True)
    idx = {t["name"]: t["index"] for t in r.it.get_tensor_details()}
    rng = np.random.default_rng(seed)
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    samp = {n: [] for n in names}
    for x in xs:
        r.invoke(x)
        for n in names:
            if n not in idx:
                continue
            v = r.it.get_tensor(idx[n]).ravel()
            lo[n] = min(lo[n], float(v.min()))
            hi[n] = max(hi[n], float(v.max()))
            samp[n].append(v if len(v) <= _SAMPLE else rng.choice(v, _SAMPLE, replace=False))
    return lo, hi, {n: np.concatenate(v) for n, v in samp.items() if v}


def mse_range(v, lo, hi, bits=8, grid=60):
    """Asymmetric range [a, b] within [lo, hi] minimising E[(Q(v) - v)^2] on the sample (clip both tails
    by the same fraction of the range)."""
    levels = 2 ** bits - 1
    best, arg = np.inf, (lo, hi)
    for f in np.linspace(0.3, 1.0, grid):
        a = lo * f if lo < 0 else lo
        b = hi * f
        s = (b - a) / levels
        if s <= 0:
            continue
        qv = np.clip(np.rint((v - a) / s), 0, levels) * s + a
        e = np.mean((qv - v) ** 2)
        if e < best:
            best, arg = e, (a, b)
    return arg


def clip(run, fpath, qsv: dict, xs, mode: str) -> dict:
    full_input = mode.endswith("+in")     # the model input gets the preprocessing's full range [-1, 1]
    mode = mode.removesuffix("+in")
    names = [n for n, v in qsv.items() if v and "min" in v]
    lo, hi, samp = collect(fpath, names, xs)
    first = names[0]            # the model input (serving_default_*): keep its full range
    out = {}
    for n, v in qsv.items():
        if n not in samp:
            out[n] = v
            continue
        shape = np.asarray(v["min"]).shape
        a, b = lo[n], hi[n]
        if mode != "absmax" and not n.startswith("serving_default"):
            if mode.startswith("p"):
                p = float(mode[1:])
                a = a if a >= 0 else float(np.percentile(samp[n], 100 - p))
                b = float(np.percentile(samp[n], p))
            elif mode == "mse":
                a, b = mse_range(samp[n], a, b)
        if full_input and n.startswith("serving_default"):
            a, b = -1.0, 1.0
        out[n] = {"min": np.full(shape, min(a, 0.0), np.float32), "max": np.full(shape, max(b, 0.0), np.float32)}
    del first
    return out
