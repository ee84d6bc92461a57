"""PTQ vs the INT8 route `export --int8` takes (bias correction when it helps on held-out images), per recipe.

    python benchmarks/int8_route.py [--recipes products traffic_signs crop_disease crop_disease_34] [--out DIR]

Each recipe's run (trained at its defaults unless one is already in --out) is exported twice by the CLI,
in copies, with the same recorded calibration list: `--int8-route ptq` and the default `auto`. Reported
on the test split (the images that judge the budget): predictions changed vs the float model, agreement
and drop with their 95% intervals, the verdict on the recipe's budget, export time and size; the route's
own choice figures on the held-out validation split; INT8 latency of the two files in turns on this host
(the agent in fresh processes without TensorFlow, 2 threads, best of three rounds).
Saves benchmarks/results/int8_route.json.
"""

from __future__ import annotations

import json
import shutil
import sys

from recipe_runs import ROOT, Run, arguments, cli, ensure_trained, load, recipe_runs, save

sys.path.insert(0, str(ROOT))
from edgecnn.core.protocol import AgentRequest        # noqa: E402
from edgecnn.devices import get_device                 # noqa: E402

INT8 = "model_int8.tflite"
ROUTES = ("ptq", "auto")


def export_copy(r: Run, route: str) -> tuple[dict, dict, float]:
    dest = r.dir.parent / f"{r.name}-route-{route}"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(r.dir, dest, symlinks=True, ignore=shutil.ignore_patterns("export", "bench*", "report*"))
    (dest / "export").mkdir()
    listed = r.dir / "export" / "calibration.txt"
    if listed.is_file():                     # the run's own recorded calibration list, when it has one
        shutil.copy(listed, dest / "export" / "calibration.txt")
    secs = cli("export", str(dest), "--int8", "--int8-route", route, "--fallback-steps", "0")
    rep = json.loads((dest / "export" / "export_report.json").read_text())
    return rep, next(a for a in rep["artifacts"] if a["artifact"] == INT8), secs


def latency_in_turns(paths: dict[str, str], rounds: int = 3, runs: int = 100) -> dict[str, float]:
    p50: dict[str, list[float]] = {k: [] for k in paths}
    with get_device("host") as host:
        for _ in range(rounds):
            for key, path in paths.items():
                req = AgentRequest(model=path, runs=runs, warmup=10, min_seconds=0.0, threads=2)
                p50[key].append(host.run(req).latency_ms.p50)
    return {k: min(v) for k, v in p50.items()}


def summary(rec: dict, rep: dict, secs: float) -> dict:
    p = rec["paired"]
    return {"changed": p["changed"], "agreement": rec["top1_agreement"],
            "agreement_ci": p.get("agreement_ci"), "drop_pp": rec["accuracy_drop_pp"], "drop_ci_pp": p["drop_ci_pp"],
            "float_only_right": p["ref_only_right"], "int8_only_right": p["artifact_only_right"],
            "verdict": rep["budget"]["verdict"], "budget_pp": rep["budget"]["max_drop_pp"],
            "size_mb": rec["size_mb"], "export_wall_s": round(secs, 1), "route": rec.get("route"),
            "integer_only": (rec.get("graph") or {}).get("integer_only")}


def one(r: Run) -> dict:
    ensure_trained(r)
    out = {}
    paths = {}
    for route in ROUTES:
        rep, rec, secs = export_copy(r, route)
        out[route] = summary(rec, rep, secs)
        paths[route] = str(r.dir.parent / f"{r.name}-route-{route}" / "export" / INT8)
    lat = latency_in_turns(paths)
    out["latency_p50_ms"] = lat
    out["latency_ratio_route_to_ptq"] = round(lat["auto"] / lat["ptq"], 3)
    out["test_images"] = rep["eval_images"]
    return out


def row(name: str, s: dict) -> str:
    def cell(d: dict) -> str:
        lo, hi = d["drop_ci_pp"]
        return (f"{d['changed']} changed, {d['agreement']:.2%}, drop {d['drop_pp']:+.2f} [{lo:+.2f}, {hi:+.2f}] "
                f"{d['verdict']}")
    chosen = (s["auto"].get("route") or {}).get("chosen")
    return (f"| {name} ({s['test_images']}) | {cell(s['ptq'])} | {chosen}: {cell(s['auto'])} | "
            f"{s['ptq']['export_wall_s']:.0f} / {s['auto']['export_wall_s']:.0f} s | "
            f"{s['latency_ratio_route_to_ptq']:.2f} | {s['auto']['size_mb']:.2f} MB |")


def main() -> None:
    a = arguments(__doc__, default=["products", "traffic_signs", "crop_disease", "crop_disease_34"])
    results = load("int8_route.json")
    for r in recipe_runs(a):
        print(f"{r.name}: exporting twice", flush=True)
        results[r.name] = one(r)
        save(results, "int8_route.json")
    print("| recipe (test) | PTQ | route | export | latency route/PTQ | size |")
    print("|---|---|---|---|---|---|")
    for name, s in results.items():
        print(row(name, s))


if __name__ == "__main__":
    main()
