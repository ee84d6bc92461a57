import sys, pickle, re
from pathlib import Path
import numpy as np, common as K
from ai_edge_quantizer import quantizer, recipe, qtyping
run=Path('runs/traffic_signs'); fpath=run/'export/model_fp32.tflite'
qsv=pickle.loads((K.PROBE/'cache'/run.name/'qsv_p99.99.pkl').read_bytes())
sets=K.datasets(run); ref=K.Runner(fpath).scores(sets['tune'][0])
for rx in sys.argv[1:]:
    q=quantizer.Quantizer(str(fpath)); q.load_quantization_recipe(recipe.static_wi8_ai8())
    q.add_static_config(regex=rx, operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=16, weight_num_bits=8)
    m=bytes(q.quantize(qsv, enable_progress_report=False).quantized_model)
    p=K.Runner(m).scores(sets['tune'][0]); io=K.integer_only(m)
    name=re.sub(r'[^a-z0-9]+','_',rx)[:40]
    (K.PROBE/'cand'/run.name/f'aeq_a16_{name}.tflite').write_bytes(m)
    print(rx, 'TV', round(float(0.5*np.abs(p-ref).sum(1).mean()),5), 'int16 uses', io['int16_uses'], io['ops'], flush=True)
