"""Write docs/benchmarks.md, the measured tables, from the saved results in benchmarks/results/*.json.

    python benchmarks/tables.py [--results DIR] [--out FILE]

The tables are generated, never typed: re-run this after any benchmark script saves a result, and
commit both. tests/test_docs.py regenerates the page and fails when it differs from the committed one.
Only the standard library; no figure is computed here beyond unit conversion, means and ratios of
what a result file holds. A result file that is absent leaves its section out.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "benchmarks.md"
RECIPES = ("products", "traffic_signs", "crop_disease", "crop_disease_34")
INT8 = "model_int8.tflite"


# ------------------------------------------------------------------------------------ formatting
def pct(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x * 100:.{digits}f}%"


def pp(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:+.{digits}f}".replace("-", "−")


def num(x, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}".replace("-", "−")


def interval(ci, digits: int = 2) -> str:
    return "–" if not ci else f"[{pp(ci[0], digits)}, {pp(ci[1], digits)}]"


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]) + "\n"


def ordered(d: dict) -> list[str]:
    """The recipes in their usual order, then any other key of the file."""
    return [k for k in RECIPES if k in d] + sorted(k for k in d if k not in RECIPES)


def pm(x: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    """mean ± sd of one figure over seeds (benchmarks/recipes_end_to_end.py over_seeds)."""
    if not x or x.get("mean") is None:
        return "–"
    m, sd = x["mean"] * scale, x["sd"] * scale
    return f"{m:.{digits}f} ± {sd:.{digits}f}".replace("-", "−")


# ------------------------------------------------------------------------------------ sections
def recipes_end_to_end(r: dict) -> str:
    seeded = any(s.get("seeds") for s in r.values())
    out = ["## Time to accuracy: each recipe end to end",
           "`python benchmarks/recipes_end_to_end.py` (`recipes_end_to_end.json`): `edgecnn train`, `export "
           "--float --fp16 --int8 --onnx` and `bench` of each recipe at its defaults on `../shared/data`, each "
           "step the CLI in its own process; crop_disease_34 is the `crop_disease` recipe on the 34-class "
           "PlantVillage set. Accuracies on the test split; the INT8 drop is against the float Keras model. "
           "Phase times are seed 0's (`metrics.json` `timings_s`)."]
    if seeded:
        out.append("With `--seeds N` the figures are mean ± sample sd over the N seeds (`train --seed 0..N-1`); "
                   "a row without seeds is one run (sd 0).")
    rows = []
    for k in ordered(r):
        s = r[k]
        d, t = s["train_photos"], s["timings_s"]
        classes = len(d["train"]["per_class"])
        epochs = " / ".join(str(v) for v in s["epochs"].values())
        i8 = s["artifacts"][INT8]
        changed = (s["paired"].get(INT8) or {}).get("changed")
        k_s = s.get("seeds")
        if k_s:
            figs = [str(k_s["test_accuracy"]["n"]), pm(k_s["test_accuracy"], 100) + "%",
                    pm(k_s["int8_accuracy"], 100) + "%", pm(k_s["int8_drop_pp"]), pm(k_s["int8_changed"], digits=1),
                    pm(k_s["train_wall_s"], 1 / 60, 1), pm(k_s["export_wall_s"], digits=0)]
        else:
            figs = ["1", pct(s["test_accuracy"]), pct(i8["accuracy"]), pp(i8["accuracy_drop_pp"]), str(changed),
                    num(s["train_wall_s"] / 60), num(s["export_wall_s"], 0)]
        rows.append([f"{s['dataset']} ({s['recipe']})",
                     f"{classes}, {d['train']['total']}+{d['val']['total']} val / {d['test']['total']}",
                     s["image_size"], epochs, *figs,
                     f"{t['phase1_features_s']:.0f} / {t['phase1_s']:.0f} / {t['phase2_s']:.0f} / {t['eval_s']:.0f}"])
    out.append(table(["dataset (recipe)", "classes, train+val / test", "px", "epochs (per phase)", "seeds",
                      "test acc.", "INT8 acc.", "INT8 drop pp", "INT8 changed", "train wall min", "export wall s",
                      "caching / phase 1 / phase 2 / eval s"], rows))

    rows = []
    for k in ordered(r):
        s = r[k]
        a = s["artifacts"]
        sizes = " / ".join(num(a[n]["size_mb"], 2) for n in ("model_fp32.tflite", "model_fp16.tflite", INT8,
                                                             "model_int8_qdq.onnx") if n in a)
        w = a[INT8].get("worst_class") or {}
        q = a.get("model_int8_qdq.onnx", {})
        rows.append([s["dataset"], pct(s["test_accuracy"]), pct(a[INT8]["accuracy"]), pp(a[INT8]["accuracy_drop_pp"]),
                     f"{w.get('label', '–')} {pp(w.get('drop_pp'), 1)}", pct(a[INT8]["top1_agreement"], 1),
                     pp(q.get("accuracy_drop_pp")), pct(q.get("top1_agreement"), 1), sizes])
    out.append("**Exports of seed 0** (each artifact through its own runtime, against the float Keras model; "
               "the INT8 verdicts of these counts under the current interval are in "
               "[Verdict coverage](#verdict-coverage)):\n")
    out.append(table(["dataset", "float", "INT8 TFLite", "INT8 drop pp", "worst class (drop pp)", "INT8 agreement",
                      "Q/DQ ONNX drop pp", "Q/DQ agreement", "MB fp32 / fp16 / int8 / qdq"], rows))

    rows = []
    for k in ordered(r):
        s = r[k]
        lat = s.get("latency_p50_ms") or {}
        rows.append([s["dataset"]] + [num(lat.get(n), 2) for n in ("model_fp32.tflite", "model_fp16.tflite", INT8,
                                                                    "model_fp32.onnx", "model_int8_qdq.onnx")])
    out.append("**p50 latency on the host** (ms, `edgecnn bench --threads 2` right after the export; a shared "
               "machine, so compare within a row):\n")
    out.append(table(["dataset", "fp32 TFLite", "fp16 TFLite", "INT8 TFLite", "fp32 ONNX", "Q/DQ ONNX"], rows))

    rows = []
    for k in ordered(r):
        low = r[k].get("lowest_recall") or []
        rows.append([r[k]["dataset"], ", ".join(f"{x['label']} {pct(x['recall'], 1)} (of {x['support']})"
                                                 for x in low[:3])])
    out.append("**Lowest recalls** (float model, test split):\n")
    out.append(table(["dataset", "three lowest recalls"], rows))

    for k in ordered(r):
        ph = r[k].get("phone_emulated")
        if not ph:
            continue
        rec, lat = ph["record"], ph["record"]["latency_ms"]
        est = rec.get("estimate") or {}
        out.append(f"**{r[k]['dataset']} on the emulated phone** (`--device phone-emulated --profile "
                   f"{est.get('profile', '?')}`, {ph['images']} test photos, {ph['wall_s']:.0f} s): top-1 agreement "
                   f"with the host {pct(rec['top1_agreement'], 1)}, accuracy {pct(rec['accuracy'])}; estimated latency "
                   f"p50 ~{lat['p50']:.1f} ms, p90 ~{lat['p90']:.1f} ms (anchor {est.get('anchor', '?')}: "
                   f"{est.get('anchor_device_ms', '?')} ms on the device, {num(est.get('anchor_host_ms'), 2)} ms "
                   f"on the host; {est.get('note', '')}).\n")
    return "\n\n".join(out)


def int8_route(r: dict) -> str:
    def cell(x: dict, route: bool) -> str:
        name = ""
        if route:
            name = "corrected: " if x["route"]["chosen"] != "ptq" else "PTQ kept: "
        return (f"{name}{x['changed']}, {pct(x['agreement'])}, {pp(x['drop_pp'])} {interval(x['drop_ci_pp'])} "
                f"{x['verdict']}")

    rows = []
    for k in ordered(r):
        s = r[k]
        rows.append([f"{k} ({s['test_images']:,})", cell(s["ptq"], False), cell(s["auto"], True),
                     s["auto"]["route"]["reason"], num(s["auto"]["route"].get("route_s"), 0),
                     f"{s['latency_ratio_route_to_ptq']:.2f}", num(s["auto"]["size_mb"], 2),
                     "yes" if s["auto"].get("integer_only") else "no"])
    return "\n\n".join([
        "## The INT8 route",
        "`python benchmarks/int8_route.py` (`int8_route.json`): each recipe's run exported twice by the CLI with "
        "the same calibration list, `--int8-route ptq` and the default `auto`; test split, the float Keras model "
        "as reference, 1 pp budget. Cells: changed predictions, agreement, drop pp [95%], verdict.\n",
        table(["recipe (test images)", "PTQ", "`auto`", "why (held-out validation images)", "route s",
               "p50 auto / PTQ", "INT8 MB", "integer-only"], rows)])


def verdict_coverage(v: dict) -> str:
    rows = [[f"{x['changed_pct']:g}%", *("cannot" if x[c] is None else f"{x[c]:,}" for c in
                                         ("labelled_1.0pp", "labelled_0.5pp", "photos_changed_share_1.0pp",
                                          "photos_changed_share_0.5pp"))] for x in v["images_needed"]]
    out = ["## Verdict coverage",
           f"`python benchmarks/verdict_coverage.py` (`verdict_coverage.json`, {v['seconds']:.0f} s). **Images a "
           "budget needs**: labelled, changes split evenly between losses and gains; photos, the changed-share "
           "bound, labelled and unlabeled together, whatever the changes were.\n",
           table(["predictions INT8 changes", "labelled images for 1 pp", "for 0.5 pp", "photos (any labels) for 1 pp",
                  "for 0.5 pp"], rows)]
    cols = []
    for x in v["false_pass"]:
        c = (x["true_drop_pp"], x["lose"], x["gain"])
        if c not in cols:
            cols.append(c)
    by = {}
    for x in v["false_pass"]:
        by.setdefault(x["images"], {})[(x["true_drop_pp"], x["lose"], x["gain"])] = x
    rows = [[f"{n:,}", *(f"{pct(by[n][c]['pass_before'], 1)} → {pct(by[n][c]['pass_now'], 2)}" if c in by[n] else "–"
                         for c in cols)] for n in sorted(by)]
    out += [f"**False PASS** at a 1 pp budget, before (the conditional interval of earlier releases) → now, "
            f"{v['sets_per_row']:,} simulated test sets a cell (95% float accuracy):\n",
            table(["images", *(f"true drop {d:g} pp ({lo * 100:g}% lose, {g * 100:g}% gain)" for d, lo, g in cols)],
                  rows)]
    w = v["worst_upper_miss"]
    out.append(f"Worst case at the budget's edge, summed exactly over every outcome on the grid: "
               f"{pct(w['probability'])} false PASS (nominal {pct(w['nominal'], 1)}) on {w['images']:,} images, "
               f"{w['c_rate'] * 100:g}% gains, true drop {w['true_drop'] * 100:g} pp.\n")
    rows = [[x["recipe"], f"{x['images']:,}", f"{x['ref_only_right']} / {x['artifact_only_right']} / {x['changed']}",
             f"{interval(x['before']['interval_pp'])} {x['before']['verdict']}",
             f"{interval(x['now']['interval_pp'])} {x['now']['verdict']}",
             "–" if x["now"].get("images_to_decide") is None else
             f"{x['now']['images_to_decide']:,} images or {x['now']['unlabeled_to_decide']:,} unlabeled photos"]
            for x in v["recipes"]]
    out += ["**The recipes' INT8 verdicts recomputed** from each run's paired counts (the time-to-accuracy runs):\n",
            table(["recipe", "images", "float only right / INT8 only right / changed", "before", "now",
                   "would decide it"], rows)]
    return "\n\n".join(out)


def augmentation_speed(a: dict) -> str:
    rows = []
    for key, what in (("augmentation_crop_disease", "augmentation alone, crop_disease recipe"),
                      ("augmentation_products", "augmentation alone, products recipe"),
                      ("caching_crop_disease", "phase 1's caching pass (decode, augment, backbone)")):
        if key in a:
            x = a[key]
            rows.append([what, num(x["views_per_s"]["keras_layers"]), num(x["views_per_s"]["composed"]),
                         f"×{x['speedup']:.2f}"])
    return "\n\n".join([
        "## Augmentation speed",
        f"`python benchmarks/augmentation_speed.py` (`augmentation_speed.json`): the chain of Keras random layers "
        f"(before) vs the composed affine warp and colour matrix, side by side on the same {a['photos']} photos at "
        f"{a['image_size']} px, batch {a['batch']}, {a['turns']} turns, {a['cpus']} CPUs, TensorFlow "
        f"{a['tensorflow']}.\n",
        table(["views/s", "Keras layers", "composed", "speed-up"], rows)])


def cache_scaling(c: dict) -> str:
    runs = {(x["impl"], x["photos"]): x for x in c["runs"]}
    sizes = sorted({x["photos"] for x in c["runs"]})
    names = {"in_memory": f"in memory (commit {c['baseline_rev']})", "out_of_core": "out of core (sharded .npy)"}
    rows, extra = [], []
    for impl in ("in_memory", "out_of_core"):
        cells = []
        for n in sizes:
            r = runs.get((impl, n))
            cpu = f", CPU {r['cpu_s']:.0f} s" if r and r.get("cpu_s") else ""
            cells.append(f"{r['peak_rss_mb']:,} MB, {r['wall_s']:.0f} s{cpu}, {pct(r['test_accuracy'], 1)}" if r else "–")
        g = c.get(impl, {})
        ratio = f"{g.get('time_per_photo_ratio', 0):.2f}" + (
            f" (CPU {g['cpu_time_per_photo_ratio']:.2f})" if g.get("cpu_time_per_photo_ratio") else "")
        rows.append([names[impl], *cells, f"{g.get('rss_growth_mb', 0):+,} MB ({g.get('from_photos', sizes[0]):,} to "
                     f"{g.get('to_photos', sizes[-1]):,})", ratio])
        x = g.get("extrapolated_200k")
        if x:
            extra.append([names[impl], f"{x['rss_mb_per_1000_photos']:,} MB", f"{x['peak_rss_mb']:,} MB",
                          f"{x['wall_s'] / 3600:.1f} h"])
    return "\n\n".join([
        "## Memory as photos grow",
        f"`python benchmarks/cache_scaling.py` (`cache_scaling.json`): the crop_disease recipe at {c['image_size']} px, "
        f"{c['views']} augmented view, {c['epochs']} epoch, on sets built from crop_disease_34's train photos (past "
        f"its originals, distinct renderings of them); peak RSS and CPU time (user + system) of each training "
        f"process, {c['cpus']} CPUs. Wall times were taken while other work shared the machine: the memory is exact, "
        f"the CPU time steadier than the wall time.\n",
        table(["phase 1 cache", *(f"{n:,} photos: peak RSS, wall, (CPU,) test acc." for n in sizes), "RSS growth",
               "time a photo, largest / smallest"], rows),
        "Extrapolated to 200,000 photos from a least-squares line through each implementation's measured runs "
        "(not measured):\n",
        table(["phase 1 cache", "peak RSS per 1,000 photos", "peak RSS at 200k", "wall at 200k"], extra)])


def multi_worker(m: dict) -> str:
    one, two, ratio = m["runs"]["1_worker"], m["runs"]["2_workers"], m["ratios_2_over_1"]
    rows = [["test accuracy", pct(one["test_accuracy"]), pct(two["test_accuracy"]), "–"],
            ["phase 1 caching, images/s", num(one["phase1_caching_images_per_s"]),
             num(two["phase1_caching_images_per_s"]), f"{ratio['phase1_caching_images_per_s']:.2f}"],
            ["phase 1 training, cached examples/s", num(one["phase1_training_examples_per_s"]),
             num(two["phase1_training_examples_per_s"]), f"{ratio['phase1_training_examples_per_s']:.2f}"],
            ["phase 2, images/s", num(one["phase2_images_per_s"]), num(two["phase2_images_per_s"]),
             f"{ratio['phase2_images_per_s']:.2f}"],
            ["wall time, s", num(one["wall_s"], 0), num(two["wall_s"], 0), f"{ratio['wall_s']:.2f}"]]
    mem = m.get("memory_per_worker")
    if mem:
        rss, cache = mem["peak_rss_mb"], mem["cache_mb"]
        rows += [["activation cache on disk per process, MB", " / ".join(map(str, cache["1_worker"])),
                  " / ".join(map(str, cache["2_workers"])), f"{mem['cache_share_2_over_1']:.2f}"],
                 ["peak RSS per process, MB", " / ".join(f"{x:,}" for x in rss["1_worker"]),
                  " / ".join(f"{x:,}" for x in rss["2_workers"]),
                  f"{max(rss['2_workers']) / max(rss['1_worker']):.2f}"]]
    d = two.get("distribution") or {}
    ar = m["allreduce_per_step"]
    return "\n\n".join([
        "## Training on two workers",
        f"`python benchmarks/multi_worker.py` (`multi_worker.json`): {m['dataset']}, {m['image_size']} px, recipe "
        f"{m['recipe']}; one worker against two worker processes ({d.get('strategy', '?')}, global batch "
        f"{d.get('global_batch', '?')}, seed {d.get('seed', '?')}) on the same {m['machine_cpus']}-CPU machine, so "
        f"the two share the cores. Each worker caches its own share of the photos (no all-gather); the cache "
        f"lives on disk, so a process's resident memory is TensorFlow and the model, not the cache.\n",
        table(["", "1 worker", "2 workers, one machine", "2 / 1"], rows),
        "All-reduce of one step's gradients alone between the two processes:\n",
        table(["phase", "parameters", "MB", "median ms", "p90 ms"],
              [[k.replace("phase", "phase "), f"{x['parameters']:,}", num(x["megabytes"], 2), num(x["median_ms"], 1), num(x["p90_ms"], 1)]
               for k, x in ar.items()])])


def reference_latency(r: dict) -> str:
    lbl = {"ours_int8_vs_google_tf2_ptq": "ours INT8 p50 / Google TF2 PTQ INT8 p50",
           "ours_int8_vs_google_qat": "ours INT8 p50 / Google QAT uint8 p50",
           "ours_fp32_vs_ours_int8": "ours float p50 / ours INT8 p50"}
    rows = [[lbl[k], f"{r['ratios'][k]:.2f}", f"{r['ratios_in_turns_median'][k]:.3f} "
             f"({min(r['ratios_in_turns_per_round'][k]):.3f}–{max(r['ratios_in_turns_per_round'][k]):.3f})"]
            for k in lbl if k in r["ratios"]]
    names = {"ours_fp32": "ours, float", "ours_int8": "ours, INT8",
             "google_tf2_ptq_int8": "Google's TF2 PTQ INT8", "google_qat_uint8": "Google's QAT uint8"}
    sizes = r["sizes_mb"]
    p50 = r["p50_ms_median"]
    return "\n\n".join([
        "## Latency against Google's reference models",
        f"`python benchmarks/reference_latency.py` (`reference_latency.json`): MobileNetV2 1.0 at 224×224, "
        f"{r['threads']} threads, LiteRT, {r['rounds']} interleaved rounds of {r['runs_per_measurement']} inferences, "
        "fresh processes without TensorFlow; then the same pairs timed in turns in one process.\n",
        table(["model", "MB", "p50 ms (median of rounds)"],
              [[names.get(k, k), num(sizes[k], 2), num(p50[k], 3)] for k in p50]),
        table(["ratio", "separate processes", "in turns, one process (median, range)"], rows),
        f"Repeatability: p50 CV over 5 repeated `edgecnn bench` runs {num(r['repeat_bench_p50_cv_pct'])}%; the p50 "
        f"ratio against a `--baseline` over 5 runs {num(r['repeat_bench_baseline_p50_ratio_cv_pct'])}% (CV). One "
        f"`edgecnn bench` of one artifact, {r['runs_per_measurement']} inferences: "
        f"{num(r['bench_one_artifact_200_runs_wall_s'])} s.\n"])


def arm64_board(a: dict) -> str:
    rows = []
    for x in a["artifacts"]:
        diff = (f"{x['values_differing']} of {x['values']:,} by ≤ {x['max_diff_lsb']} LSB" if x.get("int8")
                else f"{x['values_differing']} of {x['values']:,}, max {x['max_abs_diff']:.2g}")
        rows.append([x["artifact"], x["runtime_version"], pct(x["host_accuracy"], 1), pct(x["board_accuracy"], 1),
                     pct(x["top1_agreement"], 1), diff, num(x["host_p50_ms"], 2), num(x["board_p50_ms"], 1),
                     f"{x['board_over_host']:.0f}×"])
    b = a["board"]
    left = b.get("left_after_stop") or {}
    return "\n\n".join([
        "## The stand-in Arm64 board",
        f"`python benchmarks/arm64_board.py` (`arm64_board.json`): the {a['run']} run's four artifact kinds on the "
        f"board (`edgecnn board`, QEMU pinned to a {b['core']}) and on the host, the same {a['max_images']} "
        f"{a['data']} photos. The board's latencies are QEMU's, not a Jetson's.\n",
        table(["artifact", "runtime", "host acc.", "board acc.", "top-1 agreement", "scores that differ",
               "host p50 ms", "board p50 ms", "board / host"], rows),
        f"Board start {num(b['start_s'], 2)} s, stop {num(b['stop_s'], 2)} s; after stop: "
        f"{len(left.get('processes', []))} processes, {len(left.get('mounts', []))} mounts, binfmt_misc entry "
        f"{'left' if left.get('binfmt_entry') else 'removed'}.\n"])


def mediapipe_agreement(m: dict) -> str:
    rows = []
    for k in ordered(m):
        arts = m[k]
        n = next(iter(arts.values()))["images"]
        rows.append([k, f"{n:,}", *(f"{pct(arts[a]['contract-resized']['agreement'], 1)} / "
                                   f"{pct(arts[a]['full-size']['agreement'], 1)}" if a in arts else "–"
                                   for a in ("model_fp32.tflite", "model_fp16.tflite", INT8))])
    return "\n\n".join([
        "## MediaPipe Tasks' ImageClassifier against `edgecnn bench`",
        "`python benchmarks/mediapipe_agreement.py` (`mediapipe_agreement.json`, measured on the runs of an earlier "
        "release's recipes): top-1 agreement over each whole test split, MediaPipe given each photo resized as the "
        "contract resizes it / at full size for MediaPipe to resize itself.\n",
        table(["recipe", "photos", "fp32", "fp16", "INT8 (uint8 I/O)"], rows)])


def int8_io_types(m: dict) -> str:
    rows = []
    for k in ordered(m):
        x = m[k]
        i, u = x["int8"], x["uint8"]
        rows.append([f"{k} ({i['eval_images']:,})", f"{pct(i['accuracy'])}, {pp(i['accuracy_drop_pp'])} pp",
                     f"{pct(u['accuracy'])}, {pp(u['accuracy_drop_pp'])} pp",
                     f"{pp(u['worst_class']['drop_pp'], 1)} / {pp(i['worst_class']['drop_pp'], 1)}",
                     f"{i['budget_verdict']} / {u['budget_verdict']}",
                     f"{x['latency']['p50_ratio_uint8_over_int8']:.2f}"])
    return "\n\n".join([
        "## INT8 input and output: uint8 (the default) vs int8",
        "`python benchmarks/int8_io_types.py` (`int8_io_types.json`, measured on the runs of an earlier release's "
        "recipes): the same model and calibration list exported both ways; latency timed in turns in one agent "
        "process.\n",
        table(["recipe (test images)", "int8 I/O: accuracy, drop", "uint8 I/O: accuracy, drop",
               "worst class pp, uint8 / int8", "verdict int8 / uint8", "p50 uint8 / int8"], rows)])


def mutation_score(m: dict, name: str, title: str) -> str:
    s = m.get("sample")
    strata = bool(s and s.get("per_module"))

    def score(x: dict) -> str:
        if x.get("score_pct") is None:
            return "–"
        ci = x.get("score_ci95") if s else None
        return f"{x['score_pct']:.1f}%" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")

    rows = []
    for mod, x in m["modules"].items():
        fn = x["functions"]
        fn = "all" if fn == "all" else ", ".join(f"`{f}`" for f in fn)
        rows.append([f"`{mod}`", fn] + ([f"{x['population']:,}"] if strata else [])
                    + [x["mutants"], x["killed"], x["timed_out"], x["survived"], x["equivalent"], score(x)])
    rows.append(["**checked**", ""] + ([f"{s['population']:,}"] if strata else [])
                + [m["mutants"], sum(x["killed"] for x in m["modules"].values()),
                   sum(x["timed_out"] for x in m["modules"].values()), sum(x["survived"] for x in m["modules"].values()),
                   m["equivalent"], f"**{score(m)}**"])
    if strata:
        how = (f"up to {s['per_module']} mutants drawn from each module (seed {s['seed']}; {s['n']} of the scope's "
               f"{s['population']:,}, every mutant of a smaller module): each module's score with its exact 95% "
               f"interval; the scope's is the modules' scores weighted by their numbers of mutants, its 95% interval "
               f"combined over the modules by Bonferroni (tests/test_mutation_interval.py checks both by simulation)")
    elif s:
        how = (f"a uniform draw of {s['n']} of the scope's {s['population']:,} mutants (seed {s['seed']}): each score "
               f"estimates the whole scope's, with its exact 95% interval")
    else:
        how = (f"scored here: {len(m['scored'])} of the {len(m['scope'])} modules in scope; mutants not checked in the "
               f"time given are left out of the score")
    head = ["module", "functions"] + (["mutants in scope"] if strata else []) + [
        "run", "killed", "timed out", "survived", "equivalent", "score"]
    return "\n\n".join([
        f"## {title}",
        f"`{m['command']}` (`{name}`, {m['tool']}; {m['wall_s'] / 60:.0f} min on {m['cpus']} CPUs): "
        f"the fast set (`pytest {shlex.join(m['pytest_args'])}`) runs per mutant; a mutant that times out counts as "
        f"detected, one no fast test reaches as surviving, an equivalent one (`mutation_equivalent.json`, with the "
        f"reason) is left out. This run: {how}. Goal {m['goal_pct']:g}% overall, "
        f"{m['module_goal_pct']:g}% per module. Each survivor's diff is in the JSON.\n",
        table(head, rows)])


def architecture(a: dict, name: str, title: str) -> str:
    pkgs = [[f"`{k}`", v["modules"], v["lines"]] for k, v in a["lines_per_package"].items()]
    pkgs.append(["**total**", sum(v["modules"] for v in a["lines_per_package"].values()), a["total_lines"]])
    longest = [[f"`{f['function']}`", f["lines"]] for f in a["longest_functions"]]
    cycles = "; ".join(" -> ".join(c) for c in a["package_cycles"] + a["module_cycles"]) or "none"
    return "\n\n".join([
        f"## {title}",
        f"`python benchmarks/architecture.py` (`{name}`): lines per package (top-level modules together; generated "
        f"code left out), the ten longest functions, and the import cycles among packages and modules, lazy imports "
        f"included: {cycles}.\n",
        table(["package", "modules", "lines"], pkgs),
        table(["function", "lines"], longest)])


SECTIONS = [("recipes_end_to_end.json", recipes_end_to_end), ("int8_route.json", int8_route),
            ("verdict_coverage.json", verdict_coverage), ("augmentation_speed.json", augmentation_speed),
            ("cache_scaling.json", cache_scaling), ("multi_worker.json", multi_worker),
            ("reference_latency.json", reference_latency), ("arm64_board.json", arm64_board),
            ("mediapipe_agreement.json", mediapipe_agreement), ("int8_io_types.json", int8_io_types),
            ("mutation_score.json", lambda m: mutation_score(m, "mutation_score.json", "Mutation score")),
            ("mutation_per_module.json",
             lambda m: mutation_score(m, "mutation_per_module.json", "Mutation score per module")),
            ("architecture.json", lambda a: architecture(a, "architecture.json", "Package shape")),
            ("architecture_before.json", lambda a: architecture(
                a, "architecture_before.json", "Package shape before core/, emulation/ and top-level recipes/"))]


def render(results: Path) -> str:
    found = [(name, fn) for name, fn in SECTIONS if (results / name).is_file()]
    head = ["# Benchmarks",
            "<!-- Generated file: edit benchmarks/tables.py, not this page. -->",
            "This page is generated by `python benchmarks/tables.py` from the results the benchmark scripts saved "
            "in `benchmarks/results/`: " + ", ".join(f"`{n}`" for n, _ in found) + ". Do not edit it by hand; "
            "re-run the generator after a benchmark saves a new result (a test fails when the page and the JSON "
            "differ). How each script runs: `benchmarks/README.md`.",
            "Measured on a shared 2-core x86 machine without a GPU, `../shared/data`, recipe defaults, seed 0 "
            "unless a table says otherwise. Absolute times on it move by 10–30% between runs while other work "
            "shares it; ratios measured side by side in one run hold better.\n"]
    body = [fn(json.loads((results / name).read_text(encoding="utf-8"))) for name, fn in found]
    return re.sub(r"\n{3,}", "\n\n", "\n\n".join(head + body)).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the saved JSON results")
    ap.add_argument("--out", type=Path, default=OUT, help="the page to write")
    a = ap.parse_args(argv)
    text = render(a.results)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text, encoding="utf-8")
    print(f"wrote {a.out} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
