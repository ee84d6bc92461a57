"""Train -> export -> bench every recipe on ../shared/data at its defaults: time to accuracy.

    python benchmarks/recipes_end_to_end.py [--recipes products traffic_signs crop_disease crop_disease_34]
                                            [--seeds N] [--out DIR] [--phone-emulated RUN:N ...]

This is the run behind the time-to-accuracy tables of docs/benchmarks.md (about 35 minutes on 2
CPU cores for all four). Each step is the CLI itself, in its own process. crop_disease_34 is the
crop_disease recipe on the 34-class PlantVillage set. With --phone-emulated crop_disease_34:170, that
run's INT8 model is also benched on the emulated low-cost phone (Cortex-A53 profile) on 170 of its
test photos (Arm64 agreement with the host and the latency estimate). With --seeds N each recipe is
trained, exported and benched N times (train --seed 0..N-1: the validation split, augmentation and the
head's initialisation change; the test split is fixed) and the table gives mean +- sd (sample sd, n-1)
over the seeds; the record keeps seed 0's full detail and every seed's figures under "seeds". The
summary lands in benchmarks/results/recipes_end_to_end.json (a run not chosen keeps its saved record),
the table in time_to_accuracy.md.
"""

from __future__ import annotations

import json
import statistics
import sys

from recipe_runs import DATASETS, RESULTS, Run, arguments, cli, load, recipe_runs, save, train

INT8 = "model_int8.tflite"


def one_run(r: Run, phone_images: int | None, seed: int = 0) -> dict:
    t_train = train(r, seed)
    t_export = cli("export", str(r.dir), "--float", "--fp16", "--int8", "--onnx")
    cli("bench", str(r.dir), "--data", str(r.data / "test"), "--threads", "2", "--json", str(r.dir / "bench.json"))
    m = json.loads((r.dir / "metrics.json").read_text())
    e = json.loads((r.dir / "export" / "export_report.json").read_text())
    b = json.loads((r.dir / "bench.json").read_text())
    h = json.loads((r.dir / "history.json").read_text())
    arts = {x["artifact"]: x for x in e["artifacts"]}
    out = {
        "recipe": r.recipe, "dataset": r.name, "image_size": m["image_size"],
        "train_photos": {k: v for k, v in m["data"].items() if k != "root"},   # no machine paths
        "test_accuracy": m["test_accuracy"], "timings_s": m["timings_s"],
        "epochs": {phase: len(v.get("loss", [])) for phase, v in h.items()},
        "train_wall_s": round(t_train, 1), "export_wall_s": round(t_export, 1),
        "lowest_recall": sorted(({"label": k, "recall": v["recall"], "support": v["support"]}
                                 for k, v in m["per_class"].items()), key=lambda x: x["recall"])[:5],
        "artifacts": {name: {k: x.get(k) for k in ("size_mb", "accuracy", "accuracy_drop_pp", "worst_class",
                                                    "top1_agreement")} for name, x in arts.items()},
        "int8_budget": e["budget"], "int8_route": arts[INT8].get("route", {}).get("chosen"),
        "bench_verdict": b.get("verdict"),
        "paired": {x["artifact"]: x.get("paired") for x in b["devices"][0]["records"]},
        "latency_p50_ms": {x["artifact"]: x["latency_ms"]["p50"] for x in b["devices"][0]["records"]},
    }
    if phone_images:
        out["phone_emulated"] = phone_emulated(r, phone_images)
    return out


def phone_emulated(r: Run, images: int) -> dict:
    """The INT8 model on the emulated low-cost phone: Arm64 agreement with the host, latency estimate."""
    path = r.dir / "bench_phone.json"
    wall = cli("bench", str(r.dir / "export" / INT8), "--device", "phone-emulated", "--profile", "lowcost-a53",
               "--data", str(r.data / "test"), "--max-images", str(images), "--json", str(path))
    rec = json.loads(path.read_text())["devices"][0]["records"][0]
    return {"wall_s": round(wall, 1), "images": images, "record": rec}


def seed_figures(s: dict, seed: int) -> dict:
    """One seed's figures, the ones compared across seeds."""
    i8 = s["artifacts"][INT8]
    paired = s["paired"].get(INT8) or {}
    return {"seed": seed, "test_accuracy": s["test_accuracy"], "train_wall_s": s["train_wall_s"],
            "export_wall_s": s["export_wall_s"], "int8_accuracy": i8["accuracy"],
            "int8_drop_pp": i8["accuracy_drop_pp"], "int8_changed": paired.get("changed"),
            "int8_route": s.get("int8_route"), "bench_verdict": s["bench_verdict"]}


def spread(runs: list[dict], key: str) -> dict:
    """Mean and sample sd (n-1; 0 for one seed) of one figure over the seeds."""
    xs = [r[key] for r in runs if r[key] is not None]
    return {"mean": statistics.fmean(xs), "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def over_seeds(runs: list[dict]) -> dict:
    return {"runs": runs, **{k: spread(runs, k) for k in ("test_accuracy", "train_wall_s", "export_wall_s",
                                                          "int8_accuracy", "int8_drop_pp", "int8_changed")}}


def pm(x: dict, scale: float = 1.0, fmt: str = ".2f") -> str:
    return f"{x['mean'] * scale:{fmt}} ± {x['sd'] * scale:{fmt}}"


def table(summary: dict) -> str:
    rows = ["| dataset (recipe) | image px | seeds | test acc. % | INT8 drop pp | INT8 changed | train wall min "
            "| export wall s | features / phase 1 / phase 2 / eval (s), seed 0 |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in summary.values():
        t = s["timings_s"]
        k = s.get("seeds") or over_seeds([seed_figures(s, 0)])
        rows.append(
            f"| {s['dataset']} ({s['recipe']}) | {s['image_size']} | {k['test_accuracy']['n']} | "
            f"{pm(k['test_accuracy'], 100)} | {pm(k['int8_drop_pp'])} | {pm(k['int8_changed'], fmt='.1f')} | "
            f"{pm(k['train_wall_s'], 1 / 60, '.1f')} | {pm(k['export_wall_s'], fmt='.0f')} | "
            f"{t['phase1_features_s']:.0f} / {t['phase1_s']:.0f} / {t['phase2_s']:.0f} / {t['eval_s']:.0f} |")
    return "\n".join(rows) + "\n"


def main() -> int:
    def more(ap):
        ap.add_argument("--phone-emulated", action="append", default=[], metavar="RUN:N",
                        help="also bench RUN's INT8 model on the emulated low-cost phone on N test photos")
        ap.add_argument("--seeds", type=int, default=1, help="train each recipe with seeds 0..N-1")
    a = arguments(__doc__, more, default=list(DATASETS))
    phone = {name: int(n) for name, n in (x.split(":") for x in a.phone_emulated)}
    summary = load("recipes_end_to_end.json")   # runs not chosen keep their records
    for r in recipe_runs(a):
        runs, first = [], None
        for seed in range(a.seeds):
            s = one_run(r._replace(dir=r.dir / f"seed{seed}"), phone.get(r.name) if seed == 0 else None, seed)
            first = first or s
            runs.append(seed_figures(s, seed))
            print(f"{r.name} seed {seed}: test {s['test_accuracy']:.2%}, train {s['train_wall_s']:.0f} s, export "
                  f"{s['export_wall_s']:.0f} s, INT8 {s['artifacts'][INT8]['accuracy_drop_pp']:+.2f} pp", flush=True)
        summary[r.name] = {**first, "seeds": over_seeds(runs)}
        save({k: summary[k] for k in DATASETS if k in summary}, "recipes_end_to_end.json")   # each recipe kept
    summary = {k: summary[k] for k in DATASETS if k in summary}
    (RESULTS / "time_to_accuracy.md").write_text(table(summary))
    print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
