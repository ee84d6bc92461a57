"""Phase 1's activation cache as photos grow: in memory (the code of --baseline-rev, the last
commit that kept every cached activation in RAM) vs out of core (this tree), peak RSS and wall time.

The datasets are built in a temporary folder from ../shared/data/crop_disease_34's train photos,
spread evenly over its 34 classes: the original photos first (symlinks), then, past the 4,073
originals, distinct renderings of them saved as JPEG: the k-th rendering of a photo is one of the 7
non-trivial flips/quarter turns, after a rotation by 5 degrees times (k-1) // 7 past the first seven,
so an 8,000-photo set is half originals, half renderings, and a 50,000-photo set is ~8% originals.
Test split: 3 photos a class.

Each training runs the crop_disease recipe (top 4 blocks on cached block-12 activations) in its own
process with `--epochs 1` and `--views` augmented views; its peak RSS is the process's own maximum
resident set (wait4), its check cache a fresh one (every photo decoded, as on a first run); the
machine's 1-minute load before and after each run is recorded (these machines are shared), and so is
the process's CPU time (user + system, wait4), which other work on the machine changes far less than
the wall time: the time-per-photo ratio is given both ways. Runs
alternate between the two implementations (--impls chooses; runs of a size and implementation not
chosen keep their saved record). The slope of a least-squares line through the out-of-core runs
(wall time and peak RSS against photos) extrapolates 200,000 photos: an extrapolation, said so in
the JSON. Results: results/cache_scaling.json.

    python benchmarks/cache_scaling.py [--photos 2000 4000] [--impls in_memory out_of_core]
                                       [--image-size 160] [--views 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.recipe_runs import load, save  # noqa: E402
from edgecnn.paths import shared_data  # noqa: E402

BASELINE_REV = "62b2bbc"          # the last commit whose phase 1 cache lived in RAM
TEST_PER_CLASS = 3


def renderings():
    from PIL import Image
    return [Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM, Image.Transpose.ROTATE_90,
            Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE,
            Image.Transpose.TRANSVERSE]


def build_dataset(dest: Path, photos: int) -> Path:
    from PIL import Image

    src = shared_data() / "crop_disease_34"
    classes = sorted(d for d in (src / "train").iterdir() if d.is_dir())
    ops = renderings()
    for c, cdir in enumerate(classes):
        files = sorted(cdir.iterdir())
        share = photos // len(classes) + (1 if c < photos % len(classes) else 0)
        out = dest / "train" / cdir.name
        out.mkdir(parents=True)
        for i in range(share):
            f, k = files[i % len(files)], i // len(files)
            if k == 0:
                (out / f.name).symlink_to(f)
            else:
                with Image.open(f) as im:
                    turn = 5 * ((k - 1) // len(ops))
                    im = im.rotate(turn, resample=Image.Resampling.BILINEAR) if turn else im
                    im.transpose(ops[(k - 1) % len(ops)]).save(out / f"{f.stem}_r{k}.jpg", quality=95)
        test = dest / "test" / cdir.name
        test.mkdir(parents=True)
        for f in sorted((src / "test" / cdir.name).iterdir())[:TEST_PER_CLASS]:
            (test / f.name).symlink_to(f)
    return dest


def recipe(dest: Path, image_size: int, views: int) -> Path:
    import yaml

    from edgecnn.recipe import resolve_path

    r = yaml.safe_load(resolve_path("crop_disease").read_text())
    r["name"], r["image_size"] = "crop_disease_scaling", image_size
    r["training"]["head"]["augmented_views"] = views
    dest.write_text(yaml.safe_dump(r))
    return dest


def baseline_tree(rev: str, dest: Path) -> Path:
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def train(tree: Path, rec: Path, data: Path, out: Path, epochs: int, cache_home: Path) -> dict:
    """One training in its own process: wall time, peak RSS (MB), metrics' timings."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(cache_home),
           "EDGECNN_SHARED_DATA": str(shared_data())}
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "edgecnn.cli", "train", "--recipe", str(rec), "--data", str(data),
                          "--out", str(out), "--epochs", str(epochs), "--quiet"], cwd=tree, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"training failed ({tree}):\n{output[-3000:]}")
    m = json.loads((out / "metrics.json").read_text())
    cached = next((line for line in output.splitlines() if line.startswith("phase 1: cached")), "")
    cpu = usage.ru_utime + usage.ru_stime
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)], "peak_rss_mb": round(usage.ru_maxrss / 1024), "timings_s": m["timings_s"],
            "test_accuracy": m["test_accuracy"], "cached_line": cached}


IMPLS = ("in_memory", "out_of_core")
EXTRAPOLATE = 200_000


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    import numpy as np
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(slope), float(intercept)


def summarise(result: dict) -> None:
    """Each implementation's growth from its smallest to its largest run, and the 200k extrapolation."""
    for impl in IMPLS:
        runs = sorted((r for r in result["runs"] if r["impl"] == impl), key=lambda r: r["photos"])
        if len(runs) < 2:
            continue
        lo, hi = runs[0], runs[-1]
        result[impl] = {"from_photos": lo["photos"], "to_photos": hi["photos"],
                        "rss_growth_mb": hi["peak_rss_mb"] - lo["peak_rss_mb"],
                        "time_per_photo_ratio": round(hi["s_per_photo"] / lo["s_per_photo"], 2)}
        if lo.get("cpu_s_per_photo") and hi.get("cpu_s_per_photo"):
            result[impl]["cpu_time_per_photo_ratio"] = round(hi["cpu_s_per_photo"] / lo["cpu_s_per_photo"], 2)
        xs = [r["photos"] for r in runs]
        (ws, wi), (rs, ri) = fit(xs, [r["wall_s"] for r in runs]), fit(xs, [r["peak_rss_mb"] for r in runs])
        result[impl]["extrapolated_200k"] = {
            "note": f"least-squares line through the {len(runs)} measured runs, not a measurement",
            "wall_s": round(ws * EXTRAPOLATE + wi), "peak_rss_mb": round(rs * EXTRAPOLATE + ri),
            "s_per_photo_slope": round(ws, 5), "rss_mb_per_1000_photos": round(rs * 1000, 1)}
        print(f"{impl}: peak RSS grows {result[impl]['rss_growth_mb']} MB from {lo['photos']} to {hi['photos']} "
              f"photos; time a photo x{result[impl]['time_per_photo_ratio']:.2f}; 200k extrapolated: "
              f"{result[impl]['extrapolated_200k']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--baseline-rev", default=BASELINE_REV)
    a = ap.parse_args()

    saved = load("cache_scaling.json")
    same = all(saved.get(k) == v for k, v in (("image_size", a.image_size), ("views", a.views), ("epochs", a.epochs)))
    kept = [r for r in saved.get("runs", []) if same and (r["photos"], r["impl"]) not in
            {(n, i) for n in a.photos for i in a.impls}]
    result = {"image_size": a.image_size, "views": a.views, "epochs": a.epochs, "baseline_rev": a.baseline_rev,
              "cpus": os.cpu_count(), "runs": kept}
    with tempfile.TemporaryDirectory(prefix="edgecnn-scaling-") as tmp:
        tmp = Path(tmp)
        trees = {"in_memory": lambda: baseline_tree(a.baseline_rev, Path(tempfile.mkdtemp(dir=tmp))),
                 "out_of_core": lambda: ROOT}
        trees = {impl: trees[impl]() for impl in a.impls}
        rec = recipe(tmp / "recipe.yaml", a.image_size, a.views)
        for n in a.photos:
            data = build_dataset(tmp / f"data{n}", n)
            for impl, tree in trees.items():
                r = train(tree, rec, data, tmp / f"run-{impl}-{n}", a.epochs, Path(tempfile.mkdtemp(dir=tmp)))
                r.update(impl=impl, photos=n, s_per_photo=round(r["wall_s"] / n, 4),
                         cpu_s_per_photo=round(r["cpu_s"] / n, 4), when=time.strftime("%Y-%m-%d"))
                result["runs"].append(r)
                save(result, "cache_scaling.json")     # each run kept as it ends
                print(f"{impl:<12} {n:>6} photos: {r['wall_s']:>7.1f} s ({r['s_per_photo'] * 1000:.1f} ms a photo), "
                      f"CPU {r['cpu_s']:.0f} s, peak RSS {r['peak_rss_mb']} MB, "
                      f"caching {r['timings_s']['phase1_features_s']} s", flush=True)
            shutil.rmtree(data)
    result["runs"].sort(key=lambda r: (r["photos"], r["impl"]))
    summarise(result)
    save(result, "cache_scaling.json")


if __name__ == "__main__":
    main()
