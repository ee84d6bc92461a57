#!/bin/bash
# Repeatability: the routes with 3 other calibration draws (200 training-split images each, seeds 1-3).
# AEQ absmax stands in for the converter's min/max PTQ (same ranges). usage: bash seeds.sh RUN_NAME "1 2 3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"; cd "${INT8_ROUTES_WORK:-$HERE/../../runs/int8_routes}"; R=runs/$1; F='^E0000|^W0000|INFO|warn|Running|Applying|astype|^  [CDF]'
for s in $2; do
  export PROBE_CALIB_SEED=$s; C=cand/$1/seed$s; mkdir -p $C
  "${AEQ_PYTHON:-venv/bin/python}" "$HERE"/aeq_quant.py $R $C/absmax.tflite --clip absmax 2>&1 | grep seconds
  "${AEQ_PYTHON:-venv/bin/python}" "$HERE"/aeq_quant.py $R $C/p99.99.tflite --clip p99.99 2>&1 | grep seconds
  python3 "$HERE"/bias_correct.py $R $C/absmax_bc.tflite --src $C/absmax.tflite 2>&1 | grep wrote
  python3 "$HERE"/bias_correct.py $R $C/p99.99_bc.tflite --src $C/p99.99.tflite 2>&1 | grep wrote
  unset PROBE_CALIB_SEED
  python3 "$HERE"/evaluate.py $R $C/absmax.tflite $C/p99.99.tflite $C/absmax_bc.tflite $C/p99.99_bc.tflite 2>&1 | grep -Ev "$F" | grep -v "^test:\|^val:\|^calib:\|^tune:"
  python3 "$HERE"/margin_err.py $R $C/absmax.tflite $C/p99.99.tflite $C/absmax_bc.tflite $C/p99.99_bc.tflite 2>&1 | grep -Ev "$F"
done
