"""Add the held-out photos of the demo's embedded subset (edgecnn/demo_data/crop_disease_mini/unlabeled/).

`edgecnn demo` judges INT8 against a 1 pp budget; 50 labelled test photos can never confirm it (a 95%
interval cannot be narrower than +-7 pp on 50 images). Photos without labels can: a prediction INT8 did
not change cannot lose accuracy. This picks PER_CLASS photos of each of the subset's ten classes from
`crop_disease_34` (../shared/data) that the subset does not hold: the class's remaining test photos
first, then remaining training photos (a seeded sample, `random.Random(7)`, as for the subset itself),
re-encodes them as the subset's photos were (160x160, Lanczos, JPEG quality 80; CC BY-SA 3.0, a
derivative work of PlantVillage), writes them flat (no class folders: they are unlabeled) and appends
their sources to SOURCE.csv. Run once, from the repository root: python benchmarks/demo_unlabeled.py
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edgecnn.paths import DEMO_DATA, shared_data  # noqa: E402

PER_CLASS = 40
SIZE, QUALITY = 160, 80


def main() -> None:
    src = shared_data() / "crop_disease_34"
    sources = DEMO_DATA / "SOURCE.csv"
    with sources.open(encoding="utf-8") as f:
        used = {row["source_file"] for row in csv.DictReader(f)}
    out = DEMO_DATA / "unlabeled"
    out.mkdir(exist_ok=True)
    rows = []
    for cls in sorted(p.name for p in (DEMO_DATA / "train").iterdir()):
        name = cls.split("_", 1)[1]
        folder = {split: next((src / split).glob(f"*_{name}")) for split in ("test", "train")}
        picked = []
        for split in ("test", "train"):
            left = sorted(p for p in folder[split].iterdir() if p.name not in used)
            random.Random(7).shuffle(left)
            picked += left[:PER_CLASS - len(picked)]
        for p in picked:
            dest = out / f"{p.name.split('___')[0]}.jpg"
            with Image.open(p) as im:
                im.convert("RGB").resize((SIZE, SIZE), Image.LANCZOS).save(dest, quality=QUALITY)
            rows.append((dest.relative_to(DEMO_DATA).as_posix(), p.name))
    with sources.open("a", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    print(f"{len(rows)} photos in {out}: {sum(p.stat().st_size for p in out.iterdir()) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
