"""Probe 30 shared helpers: data sets (cached, preprocessed exactly like the project), TFLite runs,
flip counting. Imports the project from this checkout. No TensorFlow imported here."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from edgecnn import data as D                      # noqa: E402
from edgecnn.core import contract as C             # noqa: E402
from edgecnn.export.calibration import read_list   # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

PROBE = Path(os.environ.get("INT8_ROUTES_WORK", ROOT / "runs" / "int8_routes"))   # runs, cache, candidates


def run_info(run: Path) -> dict:
    run = Path(run)
    metrics = json.loads((run / "metrics.json").read_text())
    recipe = json.loads((run / "recipe.json").read_text())
    return {"metrics": metrics, "recipe": recipe}


def datasets(run: Path) -> dict:
    """{'test','val','calib'}: (x float32 NHWC, y int, paths). Cached as npz under PROBE/cache/<run name>.
    With PROBE_CALIB_SEED=s set, 'calib' is 200 other training-split images drawn with seed s (repeatability check)."""
    run = Path(run)
    seed = os.environ.get("PROBE_CALIB_SEED")
    if seed:
        d = _datasets(run)
        x = train_extra(run, 200, seed=1000 + int(seed))
        d["calib"] = (x, np.full(len(x), -1), [f"seed{seed}"] * len(x))
        return d
    return _datasets(run)


def _datasets(run: Path) -> dict:
    cache = PROBE / "cache" / run.name
    f = cache / "sets.npz"
    if f.is_file():
        z = np.load(f, allow_pickle=True)
        return {k: (z[k + "_x"], z[k + "_y"], list(z[k + "_p"])) for k in ("test", "val", "calib", "tune")}
    info = run_info(run)
    m, r = info["metrics"], info["recipe"]
    root = Path(m["data"]["root"])
    seed = m.get("seed", 0)
    vf = r["training"]["validation_split"]
    with tempfile.TemporaryDirectory() as tmp:
        ds = D.scan(root, val_fraction=vf, seed=seed, cache_dir=tmp, progress=False)
    c = C.load(run / "contract.json")
    lst = run / "export" / "calibration.txt"
    if not lst.is_file():   # a recorded list reused from the project (read only)
        lst = Path(json.loads((run / "export" / "export_report.json").read_text())["calibration"]["list"])
    calib_paths = read_list(lst, root)
    out = {}
    for name, samples in (("test", ds.test), ("val", ds.val)):
        paths = [str(s.path) for s in samples]
        out[name] = (C.preprocess_batch(paths, c), np.array([s.label for s in samples]), paths)
    cp = [str(p) for p in calib_paths]
    label_of = {str(s.path): s.label for s in ds.train + ds.val}
    out["calib"] = (C.preprocess_batch(cp, c), np.array([label_of.get(p, -1) for p in cp]), cp)
    # "tune": 400 training-split images outside the calibration list (for choosing settings; never test/val)
    rest = [s for s in ds.train if str(s.path) not in set(cp)]
    pick = np.random.default_rng(30).permutation(len(rest))[:400]
    tp = [str(rest[i].path) for i in sorted(pick)]
    out["tune"] = (C.preprocess_batch(tp, c), np.array([rest[i].label for i in sorted(pick)]), tp)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(f, **{f"{k}_{s}": (v[i] if s != "p" else np.array(v[2], dtype=object))
                   for k, v in out.items() for i, s in enumerate("xyp")})
    return out


class Runner:
    """One TFLite model, batch 1, fed float inputs quantized to its input type; returns dequantized scores."""

    def __init__(self, model, threads: int = 2, preserve: bool = False):
        kw = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) else {"model_path": str(model)}
        self.it = Interpreter(num_threads=threads, experimental_preserve_all_tensors=preserve, **kw)
        self.it.allocate_tensors()
        self.inp = self.it.get_input_details()[0]
        self.out = self.it.get_output_details()[0]

    def feed(self, x):
        d = self.inp
        if d["dtype"] == np.float32:
            return x[None].astype(np.float32)
        s, z = d["quantization"]
        info = np.iinfo(d["dtype"])
        return np.clip(np.rint(x / np.float32(s)) + np.float32(z), info.min, info.max).astype(d["dtype"])[None]

    def invoke(self, x):
        self.it.set_tensor(self.inp["index"], self.feed(x))
        self.it.invoke()

    def scores(self, xs: np.ndarray) -> np.ndarray:
        o = self.out
        res = []
        for x in xs:
            self.invoke(x)
            v = self.it.get_tensor(o["index"])[0]
            if o["dtype"] != np.float32:
                s, z = o["quantization"]
                v = (v.astype(np.float32) - z) * s
            res.append(v)
        return np.stack(res)


def flips(ref: np.ndarray, cand: np.ndarray, y: np.ndarray | None = None) -> dict:
    a, b = ref.argmax(1), cand.argmax(1)
    d = {"n": int(len(a)), "changed": int((a != b).sum()), "agreement": float((a == b).mean())}
    if y is not None and (y >= 0).all():
        d["acc_ref"] = float((a == y).mean())
        d["acc"] = float((b == y).mean())
        d["drop_pp"] = 100 * (d["acc_ref"] - d["acc"])
        d["ref_right_cand_wrong"] = int(((a == y) & (b != y)).sum())
        d["ref_wrong_cand_right"] = int(((a != y) & (b == y)).sum())
    return d


def margins(p: np.ndarray) -> np.ndarray:
    s = np.sort(p, 1)
    return s[:, -1] - s[:, -2]


def integer_only(model) -> dict:
    """Every op's input/output tensors int8/uint8/int32 (int16 reported separately); no float tensor used."""
    it = Interpreter(model_content=bytes(model)) if isinstance(model, (bytes, bytearray)) else Interpreter(model_path=str(model))
    td = {t["index"]: t for t in it.get_tensor_details()}
    bad, int16, ops = [], 0, {}
    for op in it._get_ops_details():
        ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
        for i in list(op["inputs"]) + list(op["outputs"]):
            if i < 0:
                continue
            dt = np.dtype(td[i]["dtype"])
            if dt == np.int16:
                int16 += 1
            elif dt not in (np.int8, np.uint8, np.int32):
                bad.append((op["op_name"], td[i]["name"][:60], str(dt)))
    return {"integer_only": not bad, "float_uses": bad[:5], "n_float_uses": len(bad), "int16_uses": int16, "ops": ops}


def train_extra(run: Path, n: int, seed: int = 31) -> np.ndarray:
    """n more training-split images, outside the calibration list and the 'tune' set (cached)."""
    run = Path(run)
    f = PROBE / "cache" / run.name / f"extra_{n}_s{seed}.npy"
    if f.is_file():
        return np.load(f)
    sets = _datasets(run)
    used = set(sets["calib"][2]) | set(sets["tune"][2])
    info = run_info(run)
    m, r = info["metrics"], info["recipe"]
    with tempfile.TemporaryDirectory() as tmp:
        ds = D.scan(Path(m["data"]["root"]), val_fraction=r["training"]["validation_split"], seed=m.get("seed", 0),
                    cache_dir=tmp, progress=False)
    rest = [str(s.path) for s in ds.train if str(s.path) not in used]
    pick = np.random.default_rng(seed).permutation(len(rest))[:n]
    x = C.preprocess_batch([rest[i] for i in sorted(pick)], C.load(run / "contract.json"))
    np.save(f, x)
    return x
