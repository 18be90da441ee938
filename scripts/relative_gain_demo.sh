#!/usr/bin/env bash
# The paper's Table 5 protocol at demo scale on this machine (`make relative-gain`): an AKD search and a
# NAS search with the same seed, controller initialization, latency target (measured on this host's CPU)
# and budget; the best child of each near the target; each trained with KD and with labels, exported and
# scored on the test split; the 2x2 table, Eq. 1's relative gain, and a report comparing the searches.
# It reuses the quick start's teacher (trained first when missing). Rerunning resumes: finished searches,
# children and trainings are not redone. Give seeds as AKD_TF_SEEDS="0 1 2" for a spread.
set -euo pipefail
source "$(dirname "$0")/demo_common.sh"
TRIALS=${AKD_TF_DEMO_TRIALS:-10}
SEEDS=${AKD_TF_SEEDS:-0}

ensure_teacher
seed_options=()
for seed in $SEEDS; do seed_options+=(--seed "$seed"); done
run "$AKD_TF" experiment relative-gain --name relgain --teacher "$OUT_DIR/teacher.keras" "${seed_options[@]}" \
    --device local --measure --target-ms 0.5 --tolerance 0.3 --trials "$TRIALS" --batch-size 2 --val-size 1000 \
    --proxy-epochs 3 --proxy-train-size 1500 --proxy-batch-size 32 --epochs 3 --out "$OUT_DIR/relative-gain"
