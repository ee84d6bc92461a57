"""What the per-recipe benchmarks share: the CLI in its own process, the recipes' shared datasets and
run folders, a trained run reused when it is there, and the saved summary."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgecnn.paths import shared_data  # noqa: E402

RECIPES = ["products", "traffic_signs", "crop_disease"]


def cli(*args: str) -> float:
    """`edgecnn ARGS` in its own process; its wall time. Exit 1 (a budget failed) and 3 (undecidable
    on these images) are results the summaries report; anything else stops the benchmark."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgecnn.cli", *args], cwd=ROOT, text=True, capture_output=True)
    if p.returncode not in (0, 1, 3):
        sys.exit(f"edgecnn {' '.join(args)} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t


def arguments(doc: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--recipes", nargs="+", default=RECIPES)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks")
    return ap.parse_args()


def recipe_runs(a: argparse.Namespace) -> Iterator[tuple[str, Path, Path]]:
    """(recipe, its dataset in ../shared/data, its run folder) for each recipe whose dataset is there."""
    for r in a.recipes:
        data = shared_data() / r
        if not data.is_dir():
            print(f"skip {r}: {data} not found", file=sys.stderr)
            continue
        yield r, data, a.out / r


def train(recipe: str, data: Path, run: Path) -> float:
    return cli("train", "--recipe", recipe, "--data", str(data), "--out", str(run), "--quiet", "--overwrite")


def ensure_trained(recipe: str, data: Path, run: Path) -> None:
    """The recipe's run at its defaults, trained unless a finished one is already in `run`."""
    if not (run / "metrics.json").is_file():
        train(recipe, data, run)


def save(summary: dict, name: str) -> None:
    out = ROOT / "benchmarks" / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")
