"""What the per-recipe benchmarks share: the CLI in its own process, the recipes' shared datasets and
run folders, a trained run reused when it is there, and the saved summary."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from edgecnn.paths import shared_data  # noqa: E402

# a benchmark run: a recipe on one of ../shared/data's datasets, by name
DATASETS = {"products": "products", "traffic_signs": "traffic_signs", "crop_disease": "crop_disease",
            "crop_disease_34": "crop_disease"}   # crop_disease_34: the crop recipe at the literature's scale
RECIPES = ["products", "traffic_signs", "crop_disease"]


class Run(NamedTuple):
    name: str          # the dataset's folder in ../shared/data, and the run's folder in --out
    recipe: str
    data: Path
    dir: Path


def cli(*args: str) -> float:
    """`edgecnn ARGS` in its own process; its wall time. Exit 1 (a budget failed) and 3 (undecidable
    on these images) are results the summaries report; anything else stops the benchmark."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgecnn.cli", *args], cwd=ROOT, text=True, capture_output=True)
    if p.returncode not in (0, 1, 3):
        sys.exit(f"edgecnn {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t


def arguments(doc: str, more=None, default=RECIPES) -> argparse.Namespace:
    """The shared options; more(parser) adds a script's own."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=default, choices=sorted(DATASETS),
                    help="datasets of ../shared/data, each with its recipe (crop_disease_34: crop_disease's)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks")
    if more:
        more(ap)
    return ap.parse_args()


def recipe_runs(a: argparse.Namespace) -> Iterator[Run]:
    """Each chosen run whose dataset is in ../shared/data: its recipe, dataset and run folder."""
    for name in a.recipes:
        data = shared_data() / name
        if not data.is_dir():
            print(f"skip {name}: {data} not found", file=sys.stderr)
            continue
        yield Run(name, DATASETS[name], data, a.out / name)


def train(r: Run, seed: int = 0) -> float:
    return cli("train", "--recipe", r.recipe, "--data", str(r.data), "--out", str(r.dir), "--quiet", "--overwrite",
               "--seed", str(seed))


def ensure_trained(r: Run) -> None:
    """The recipe's run at its defaults, trained unless a finished one is already in its folder."""
    if not (r.dir / "metrics.json").is_file():
        train(r)


def load(name: str) -> dict:
    """A saved summary, or {} when there is none yet."""
    path = RESULTS / name
    return json.loads(path.read_text()) if path.is_file() else {}


def save(summary: dict, name: str) -> None:
    out = RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")
