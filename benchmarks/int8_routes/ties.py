"""Changed images whose INT8 output has the float top-1 tied with the INT8 top-1 (equal quantized probability)."""
import sys
from pathlib import Path
import numpy as np, common as K, evaluate as E
run = Path(sys.argv[1]); sets = K.datasets(run); ref = E.float_scores(run, sets)
for c in sys.argv[2:]:
    r = K.Runner(c); out = []
    for s in ("val", "test"):
        p = r.scores(sets[s][0]); a = ref[s].argmax(1); b = p.argmax(1); ch = np.nonzero(a != b)[0]
        tie = int(sum(p[i, a[i]] == p[i, b[i]] for i in ch))
        out.append(f"{s}: changed {len(ch)}, tied {tie}")
    print(Path(c).name, "|", " | ".join(out))
