"""One table from results/<run>/*.json (written by evaluate.py)."""
import json, sys
from pathlib import Path
for run in sys.argv[1:]:
    print(f"== {run}")
    print(f"{'candidate':28s} {'test chg':>9s} {'agree':>7s} {'drop pp':>8s} {'val chg':>8s} {'val agree':>9s} {'val drop':>8s} {'MB':>6s} int-only")
    for f in sorted((Path("results") / run).glob("*.json")):
        if f.name.startswith("sweep"):
            continue
        r = json.loads(f.read_text()); t, v = r["test"], r["val"]
        print(f"{f.stem:28s} {t['changed']:>4d}/{t['n']:<4d} {100*t['agreement']:6.2f}% {t['drop_pp']:+8.2f} {v['changed']:>3d}/{v['n']:<4d} "
              f"{100*v['agreement']:8.2f}% {v['drop_pp']:+8.2f} {r['size_mb']:6.2f} {r['integer_only']} (int16 uses {r['int16_uses']})")
