#!/bin/bash
# Probe 30 pipeline for one trained+exported run: PTQ baseline vs routes A/B (+A on B), metrics, latency.
# usage: bash run_recipe.sh RUN_NAME   (runs/RUN_NAME with export/model_fp32.tflite + model_int8.tflite)
set -e
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"; cd "${INT8_ROUTES_WORK:-$HERE/../../runs/int8_routes}"; R=runs/$1; C=cand/$1; mkdir -p $C results/$1
F='^E0000|^W0000|INFO|warn|Running|Applying|astype|^  [CDF]'
t=$(date +%s); python3 "$HERE"/bias_correct.py $R $C/bc.tflite 2>&1 | grep -Ev "$F"; echo "route A wall $(( $(date +%s)-t )) s"
t=$(date +%s); "${AEQ_PYTHON:-venv/bin/python}" "$HERE"/aeq_quant.py $R $C/aeq_absmax.tflite --clip absmax 2>&1 | grep seconds
"${AEQ_PYTHON:-venv/bin/python}" "$HERE"/aeq_quant.py $R $C/aeq_p99.99.tflite --clip p99.99 2>&1 | grep seconds; echo "route B wall $(( $(date +%s)-t )) s"
t=$(date +%s); python3 "$HERE"/bias_correct.py $R $C/aeq_p99.99_bc.tflite --src $C/aeq_p99.99.tflite 2>&1 | grep -Ev "$F"; echo "B+A wall $(( $(date +%s)-t )) s"
python3 "$HERE"/evaluate.py $R $R/export/model_int8.tflite $C/bc.tflite $C/aeq_absmax.tflite $C/aeq_p99.99.tflite $C/aeq_p99.99_bc.tflite 2>&1 | grep -Ev "$F"
python3 "$HERE"/margin_err.py $R $R/export/model_int8.tflite $C/bc.tflite $C/aeq_absmax.tflite $C/aeq_p99.99.tflite $C/aeq_p99.99_bc.tflite 2>&1 | grep -Ev "$F"
python3 "$HERE"/latency.py $R/export/model_int8.tflite $C/bc.tflite $C/aeq_p99.99_bc.tflite --blocks 7 --runs 30 2>&1 | grep -Ev "$F"
