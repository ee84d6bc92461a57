"""A smoother metric than flips: mean |margin error| where margin = p[float top1] - p[float top2]
(the quantity whose sign change is a flip), per split. usage: python3 margin_err.py RUN cand..."""
import sys
from pathlib import Path
import numpy as np, common as K, evaluate as E
run = Path(sys.argv[1]); sets = K.datasets(run); ref = E.float_scores(run, sets)
print(f"{'model':40s} " + " ".join(f"{s:>16s}" for s in ("tune", "val", "test")))
for c in sys.argv[2:]:
    r = K.Runner(c); row = []
    for s in ("tune", "val", "test"):
        p = r.scores(sets[s][0]); o = np.argsort(-ref[s], 1); i = np.arange(len(p))
        mf = ref[s][i, o[:, 0]] - ref[s][i, o[:, 1]]; mq = p[i, o[:, 0]] - p[i, o[:, 1]]
        row.append(f"{np.abs(mq - mf).mean():.4f}/{(mq - mf).mean():+.4f}")
    print(f"{Path(c).name:40s} " + " ".join(f"{v:>16s}" for v in row), flush=True)
