"""Changed predictions vs the float TFLite (test split and held-out val split), accuracy drop,
agreement, size, integer-only check. usage: python3 evaluate.py RUN cand1.tflite [cand2.tflite ...]"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

import common as K


def float_scores(run: Path, sets: dict) -> dict:
    f = K.PROBE / "cache" / run.name / "float_scores.npz"
    if f.is_file():
        z = np.load(f)
        return {k: z[k] for k in z.files}
    r = K.Runner(run / "export" / "model_fp32.tflite")
    out = {k: r.scores(v[0]) for k, v in sets.items()}
    np.savez(f, **out)
    return out


def evaluate(run: Path, cand: Path, sets, ref) -> dict:
    r = K.Runner(cand)
    res = {"artifact": str(cand), "size_mb": round(cand.stat().st_size / 1e6, 4), **K.integer_only(cand)}
    res.pop("ops")
    for split in ("test", "val", "calib", "tune"):
        x, y, paths = sets[split]
        p = r.scores(x)
        d = K.flips(ref[split], p, y)
        d["tv"] = float(0.5 * np.abs(p - ref[split]).sum(1).mean())     # mean total-variation distance to float
        top = ref[split].argmax(1)
        d["top1_prob_mae"] = float(np.abs(p[np.arange(len(p)), top] - ref[split][np.arange(len(p)), top]).mean())
        ch = np.nonzero(ref[split].argmax(1) != p.argmax(1))[0]
        d["changed_idx"] = ch.tolist()
        d["changed_float_margin"] = [round(float(m), 3) for m in K.margins(ref[split])[ch]]
        res[split] = d
    return res


if __name__ == "__main__":
    run = Path(sys.argv[1])
    sets = K.datasets(run)
    ref = float_scores(run, sets)
    for s in ("test", "val", "calib", "tune"):
        m = K.margins(ref[s])
        print(f"{s}: {len(m)} images, float acc {np.mean(ref[s].argmax(1) == sets[s][1]):.4f}, "
              f"margin<0.1: {(m < 0.1).sum()}, <0.2: {(m < 0.2).sum()}")
    allres = []
    for c in sys.argv[2:]:
        res = evaluate(run, Path(c), sets, ref)
        allres.append(res)
        t, v, cb = res["test"], res["val"], res["calib"]
        print(f"{Path(c).name}: test changed {t['changed']}/{t['n']} agree {t['agreement']:.4f} drop {t['drop_pp']:+.2f}pp "
              f"(F>Q {t['ref_right_cand_wrong']}, Q>F {t['ref_wrong_cand_right']}) | val changed {v['changed']}/{v['n']} "
              f"drop {v['drop_pp']:+.2f}pp | calib changed {cb['changed']}/{cb['n']} | tune changed {res['tune']['changed']} | "
              f"TV test {t['tv']:.4f} val {v['tv']:.4f} tune {res['tune']['tv']:.4f} | {res['size_mb']} MB | "
              f"integer_only {res['integer_only']} int16 {res['int16_uses']}")
        print(f"   test margins of changed: {sorted(t['changed_float_margin'])}")
        print(f"   val margins of changed: {sorted(v['changed_float_margin'])}")
    out = K.PROBE / "results" / run.name
    out.mkdir(parents=True, exist_ok=True)
    for res in allres:
        (out / (Path(res["artifact"]).stem + ".json")).write_text(json.dumps(res, indent=1))
