"""How much of the INT8 error is the input quantisation alone? Float TFLite fed Q(x) dequantized vs x."""
import sys
from pathlib import Path
import numpy as np, common as K
from ai_edge_litert.interpreter import Interpreter
run = Path(sys.argv[1]); sets = K.datasets(run)
f = K.Runner(run / "export" / "model_fp32.tflite")
d = Interpreter(model_path=str(run / "export" / "model_int8.tflite")).get_input_details()[0]
s, z = d["quantization"]; info = np.iinfo(d["dtype"])
print("input", d["dtype"], s, z)
for split in ("tune", "val", "test"):
    x = sets[split][0]
    xq = (np.clip(np.rint(x / s) + z, info.min, info.max) - z) * s
    ref = f.scores(x); p = f.scores(xq.astype(np.float32))
    fl = K.flips(ref, p, sets[split][1])
    print(split, "TV", round(float(0.5 * np.abs(p - ref).sum(1).mean()), 5), "changed", fl["changed"], "of", fl["n"],
          "max |x - xq|", float(np.abs(x - xq).max()))
