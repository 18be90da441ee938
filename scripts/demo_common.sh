# Shared by the demo scripts (sourced): settings, the command echo, and the demo teacher (trained once).
AKD_TF=${AKD_TF:-akd-tf}
OUT_DIR=${AKD_TF_DEMO_DIR:-demo-output}
export AKD_TF_DB=${AKD_TF_DB:-sqlite:///$PWD/$OUT_DIR/akd-tf.db}
mkdir -p "$OUT_DIR"

run() { printf '\n$ %s\n' "$*"; "$@"; }

# A CIFAR ResNet-20 on the bundled demo data; reused while $OUT_DIR/teacher.keras exists.
ensure_teacher() {
    if [ ! -f "$OUT_DIR/teacher.keras" ]; then
        run "$AKD_TF" teacher train --model resnet20 --epochs 3 --out "$OUT_DIR/teacher.keras"
    fi
}
