#!/bin/sh
# bench/giot_loco.sh: leave-one-capture-out for GIoT (unsupervised NLL) against the MLP
# (supervised): each capture with malicious flows is held out in turn (never trained on), the
# models train on the others, and the held-out capture's row of fmq_bench_giot_quality is
# printed: recall at 1% false-positive rate for both scores.
# Usage: bench/giot_loco.sh [STEPS]   (after a build in build/)
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN="$SRC/build/bench/fmq_bench_giot_quality"
STEPS=${1:-300}
FILES="$SRC/data/iot23/*.labeled $SRC/data/iot23/*.csv"
printf '%-48s %7s %7s %11s %11s %11s %11s %11s\n' "held-out capture" benign malic. "GIoT recall" \
    "GIoT FPR" "MLP recall" "MLP FPR" "head recall"
for cap in 34-1 42-1 20-1 21-1 44-1; do
    # shellcheck disable=SC2086
    "$BIN" --steps "$STEPS" --holdout "$cap" $FILES 2>/dev/null | grep -- "Capture-$cap"
done
