"""Phase 1's activation cache as photos grow: in memory (the code of --baseline-rev, the last
commit that kept every cached activation in RAM) vs out of core (this tree), peak RSS and wall time.

The datasets are built in a temporary folder from ../shared/data/crop_disease_34's train photos,
spread evenly over its 34 classes: the original photos first (symlinks), then, past the 4,073
originals, distinct renderings of them (one of the 7 non-trivial flips/quarter turns each, saved as
JPEG), so an 8,000-photo set is half originals, half renderings. Test split: 3 photos a class.

Each training runs the crop_disease recipe (top 4 blocks on cached block-12 activations) in its own
process with `--epochs 1` and `--views` augmented views; its peak RSS is the process's own maximum
resident set (wait4), its check cache a fresh one (every photo decoded, as on a first run). Runs
alternate between the two implementations. Results: results/cache_scaling.json.

    python benchmarks/cache_scaling.py [--photos 2000 4000] [--image-size 160] [--views 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.recipe_runs import save  # noqa: E402
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
    return {"wall_s": round(wall, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024), "timings_s": m["timings_s"],
            "test_accuracy": m["test_accuracy"], "cached_line": cached}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, nargs="+", default=[2000, 4000])
    ap.add_argument("--image-size", type=int, default=160)
    ap.add_argument("--views", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--baseline-rev", default=BASELINE_REV)
    a = ap.parse_args()

    result = {"image_size": a.image_size, "views": a.views, "epochs": a.epochs, "baseline_rev": a.baseline_rev,
              "cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="edgecnn-scaling-") as tmp:
        tmp = Path(tmp)
        trees = {"in_memory": baseline_tree(a.baseline_rev, Path(tempfile.mkdtemp(dir=tmp))), "out_of_core": ROOT}
        rec = recipe(tmp / "recipe.yaml", a.image_size, a.views)
        for n in a.photos:
            data = build_dataset(tmp / f"data{n}", n)
            for impl, tree in trees.items():
                r = train(tree, rec, data, tmp / f"run-{impl}-{n}", a.epochs, Path(tempfile.mkdtemp(dir=tmp)))
                r.update(impl=impl, photos=n, s_per_photo=round(r["wall_s"] / n, 4))
                result["runs"].append(r)
                print(f"{impl:<12} {n:>6} photos: {r['wall_s']:>7.1f} s ({r['s_per_photo'] * 1000:.1f} ms a photo), "
                      f"peak RSS {r['peak_rss_mb']} MB, caching {r['timings_s']['phase1_features_s']} s", flush=True)
    by = {(r["impl"], r["photos"]): r for r in result["runs"]}
    lo, hi = min(a.photos), max(a.photos)
    for impl in ("in_memory", "out_of_core"):
        grow = by[(impl, hi)]["peak_rss_mb"] - by[(impl, lo)]["peak_rss_mb"]
        ratio = by[(impl, hi)]["s_per_photo"] / by[(impl, lo)]["s_per_photo"]
        result[impl] = {"rss_growth_mb": grow, "time_per_photo_ratio": round(ratio, 2)}
        print(f"{impl}: peak RSS grows {grow} MB from {lo} to {hi} photos; time a photo x{ratio:.2f}")
    save(result, "cache_scaling.json")


if __name__ == "__main__":
    main()
