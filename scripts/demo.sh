#!/usr/bin/env bash
# The quick start: a small real AKD search end to end on this machine. It trains a teacher on the bundled
# demo data (once; reused while demo-output/teacher.keras exists), searches students that distill from it
# under a latency target measured on this host's CPU, trains the best one in full and exports it to
# .tflite (parity-checked, scored on the test split, measured). Every step is a real akd-tf command,
# printed before it runs. Rerunning resumes: finished steps and trials are not redone.
set -euo pipefail
AKD_TF=${AKD_TF:-akd-tf}
OUT_DIR=${AKD_TF_DEMO_DIR:-demo-output}
TRIALS=${AKD_TF_DEMO_TRIALS:-10}
export AKD_TF_DB=${AKD_TF_DB:-sqlite:///$PWD/$OUT_DIR/akd-tf.db}
mkdir -p "$OUT_DIR"

run() { printf '\n$ %s\n' "$*"; "$@"; }

if [ ! -f "$OUT_DIR/teacher.keras" ]; then
    run "$AKD_TF" teacher train --model resnet20 --epochs 3 --out "$OUT_DIR/teacher.keras"
fi
run "$AKD_TF" search --name quickstart --teacher "$OUT_DIR/teacher.keras" --device local --measure \
    --target-ms 0.5 --trials "$TRIALS" --batch-size 5 --val-size 1000 \
    --proxy-epochs 3 --proxy-train-size 1500 --proxy-batch-size 32
run "$AKD_TF" search top quickstart --k 5
run "$AKD_TF" export --run quickstart --best --epochs 5 --out "$OUT_DIR/student.tflite"
