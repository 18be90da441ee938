#!/usr/bin/env bash
# The quick start: a small real AKD search end to end on this machine. It trains a teacher on the bundled
# demo data (once; reused while demo-output/teacher.keras exists), searches students that distill from it
# under a latency target measured on this host's CPU, trains the best one in full and exports it to
# .tflite (parity-checked, scored on the test split, measured). Every step is a real akd-tf command,
# printed before it runs. Rerunning resumes: finished steps and trials are not redone.
set -euo pipefail
source "$(dirname "$0")/demo_common.sh"
TRIALS=${AKD_TF_DEMO_TRIALS:-10}

ensure_teacher
run "$AKD_TF" search --name quickstart --teacher "$OUT_DIR/teacher.keras" --device local --measure \
    --target-ms 0.5 --trials "$TRIALS" --batch-size 5 --val-size 1000 \
    --proxy-epochs 3 --proxy-train-size 1500 --proxy-batch-size 32
run "$AKD_TF" search top quickstart --k 5
run "$AKD_TF" export --run quickstart --best --epochs 5 --out "$OUT_DIR/student.tflite"
