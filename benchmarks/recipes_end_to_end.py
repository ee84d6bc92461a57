"""Train -> export -> bench every recipe on ../shared/data at its defaults and save one summary.

    python benchmarks/recipes_end_to_end.py [--recipes products traffic_signs crop_disease] [--out DIR]

This is the run behind the README's "Measured" tables (about 20 minutes on 2 CPU cores). Each
step is the CLI itself, in its own process; the summary lands in
benchmarks/results/recipes_end_to_end.json.
"""

from __future__ import annotations

import json
import sys

from recipe_runs import arguments, cli, recipe_runs, save, train


def main() -> int:
    summary = {}
    for r, data, run in recipe_runs(arguments(__doc__)):
        t_train = train(r, data, run)
        t_export = cli("export", str(run), "--float", "--fp16", "--int8", "--onnx")
        cli("bench", str(run), "--data", str(data / "test"), "--threads", "2", "--json", str(run / "bench.json"))
        m = json.loads((run / "metrics.json").read_text())
        e = json.loads((run / "export" / "export_report.json").read_text())
        b = json.loads((run / "bench.json").read_text())
        summary[r] = {
            "test_accuracy": m["test_accuracy"], "timings_s": m["timings_s"], "train_wall_s": round(t_train, 1),
            "export_wall_s": round(t_export, 1),
            "artifacts": {x["artifact"]: {k: x.get(k) for k in ("size_mb", "accuracy", "accuracy_drop_pp",
                                                                "worst_class", "top1_agreement")}
                          for x in e["artifacts"]},
            "int8_budget": e["budget"],
            "bench_verdict": b.get("verdict"),
            "paired": {x["artifact"]: x.get("paired") for x in b["records"]},
            "latency_p50_ms": {x["artifact"]: x["latency_ms"]["p50"] for x in b["records"]},
        }
        print(f"{r}: test {m['test_accuracy']:.2%}, train {t_train:.0f} s, export {t_export:.0f} s, "
              + ", ".join(f"{k} {v['accuracy_drop_pp']:+.2f} pp" for k, v in summary[r]["artifacts"].items()
                          if "int8" in k), flush=True)
    save(summary, "recipes_end_to_end.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
