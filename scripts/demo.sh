#!/usr/bin/env bash
# The quick-start job: sample an architecture, show it, export it to .tflite
# (with the parity check) and measure it single-threaded on one host core.
# Every step is a real akd-tf command, printed before it runs.
set -euo pipefail
AKD_TF=${AKD_TF:-akd-tf}
OUT_DIR=${AKD_TF_DEMO_DIR:-demo-output}
RESOLUTION=${AKD_TF_DEMO_RESOLUTION:-96}
CLASSES=${AKD_TF_DEMO_CLASSES:-10}
mkdir -p "$OUT_DIR"

run() { printf '\n$ %s\n' "$*"; "$@"; }

run "$AKD_TF" info
ARCH=$("$AKD_TF" arch sample --seed 0)
printf '\n$ %s arch sample --seed 0\n%s\n' "$AKD_TF" "$ARCH"
run "$AKD_TF" arch show "$ARCH" --resolution "$RESOLUTION" --classes "$CLASSES"
run "$AKD_TF" export --arch "$ARCH" --resolution "$RESOLUTION" --classes "$CLASSES" --out "$OUT_DIR/student.tflite"
run "$AKD_TF" export --arch "$ARCH" --resolution "$RESOLUTION" --classes "$CLASSES" --quantize int8 \
    --out "$OUT_DIR/student-int8.tflite"
run "$AKD_TF" bench "$OUT_DIR/student.tflite"
run "$AKD_TF" bench "$OUT_DIR/student-int8.tflite"
