"""Train -> export -> bench every recipe on ../shared/data at its defaults: time to accuracy.

    python benchmarks/recipes_end_to_end.py [--recipes products traffic_signs crop_disease crop_disease_34]
                                            [--out DIR] [--phone-emulated RUN:N ...]

This is the run behind the README's "Measured" and time-to-accuracy tables (about 35 minutes on 2
CPU cores for all four). Each step is the CLI itself, in its own process. crop_disease_34 is the
crop_disease recipe on the 34-class PlantVillage set. With --phone-emulated crop_disease_34:170, that
run's INT8 model is also benched on the emulated low-cost phone (Cortex-A53 profile) on 170 of its
test photos (Arm64 agreement with the host and the latency estimate). The
summary lands in benchmarks/results/recipes_end_to_end.json (a run not chosen keeps its saved record),
the table in time_to_accuracy.md.
"""

from __future__ import annotations

import json
import sys

from recipe_runs import DATASETS, RESULTS, Run, arguments, cli, load, recipe_runs, save, train

INT8 = "model_int8.tflite"


def one_run(r: Run, phone_images: int | None) -> dict:
    t_train = train(r)
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
        "int8_budget": e["budget"],
        "bench_verdict": b.get("verdict"),
        "paired": {x["artifact"]: x.get("paired") for x in b["records"]},
        "latency_p50_ms": {x["artifact"]: x["latency_ms"]["p50"] for x in b["records"]},
    }
    if phone_images:
        out["phone_emulated"] = phone_emulated(r, phone_images)
    return out


def phone_emulated(r: Run, images: int) -> dict:
    """The INT8 model on the emulated low-cost phone: Arm64 agreement with the host, latency estimate."""
    path = r.dir / "bench_phone.json"
    wall = cli("bench", str(r.dir / "export" / INT8), "--device", "phone-emulated", "--profile", "lowcost-a53",
               "--data", str(r.data / "test"), "--max-images", str(images), "--json", str(path))
    rec = json.loads(path.read_text())["records"][0]
    return {"wall_s": round(wall, 1), "images": images, "record": rec}


def table(summary: dict) -> str:
    rows = ["| dataset (recipe) | image px | epochs (head / fine-tune) | test acc. | INT8 acc. (drop) "
            "| features / phase 1 / phase 2 / eval (s) | train wall |",
            "|---|---|---|---|---|---|---|"]
    for s in summary.values():
        t, i8 = s["timings_s"], s["artifacts"][INT8]
        rows.append(
            f"| {s['dataset']} ({s['recipe']}) | {s['image_size']} | {s['epochs'].get('head', 0)} / "
            f"{s['epochs'].get('fine_tune', 0)} | {s['test_accuracy']:.2%} | {i8['accuracy']:.2%} "
            f"({i8['accuracy_drop_pp']:+.2f} pp) | {t['phase1_features_s']:.0f} / {t['phase1_s']:.0f} / "
            f"{t['phase2_s']:.0f} / {t['eval_s']:.0f} | {s['train_wall_s'] / 60:.1f} min |")
    return "\n".join(rows) + "\n"


def main() -> int:
    a = arguments(__doc__, lambda ap: ap.add_argument(
        "--phone-emulated", action="append", default=[], metavar="RUN:N",
        help="also bench RUN's INT8 model on the emulated low-cost phone on N test photos"), default=list(DATASETS))
    phone = {name: int(n) for name, n in (x.split(":") for x in a.phone_emulated)}
    summary = load("recipes_end_to_end.json")   # runs not chosen keep their records
    for r in recipe_runs(a):
        summary[r.name] = s = one_run(r, phone.get(r.name))
        print(f"{r.name}: test {s['test_accuracy']:.2%}, train {s['train_wall_s']:.0f} s, export "
              f"{s['export_wall_s']:.0f} s, INT8 {s['artifacts'][INT8]['accuracy_drop_pp']:+.2f} pp", flush=True)
    summary = {k: summary[k] for k in DATASETS if k in summary}
    save(summary, "recipes_end_to_end.json")
    (RESULTS / "time_to_accuracy.md").write_text(table(summary))
    print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
