#!/bin/sh
# Runs every fuzz target (libFuzzer, clang from Debian) for SECONDS each with AddressSanitizer
# and UndefinedBehaviorSanitizer and a 64 MB malloc limit, so an allocation driven by a declared
# length counts as a finding. Corpora start from fuzz/seeds/<target> (golden vectors, captures,
# configs) and grow in build-fuzz/corpus/<target>; a crash is saved to fuzz/regressions/<target>/
# (commit it with the fix: ctest replays it in every build). Prints executions per target.
# Usage: fuzz/run.sh [SECONDS]       (default 30; FMQ_FUZZ_ONLY="wire codec" picks targets)
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-30}
B="$SRC/build-fuzz"
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang)" >&2; exit 2; }
mkdir -p "$B"
if ! { CC=clang cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFMQ_FUZZ=ON \
    -DFMQ_BUILD_TESTS=OFF && cmake --build "$B" -j"$(nproc)"; } >"$B/build.log" 2>&1; then
    tail -30 "$B/build.log" >&2
    exit 1
fi
status=0
for t in ${FMQ_FUZZ_ONLY:-wire codec flow_json connlog config state}; do
    mkdir -p "$B/corpus/$t" "$SRC/fuzz/regressions/$t"
    log="$B/fuzz_$t.log"
    if "$B/fuzz/fuzz_$t" -max_total_time="$SECS" -rss_limit_mb=1024 -malloc_limit_mb=64 \
        -print_final_stats=1 -artifact_prefix="$SRC/fuzz/regressions/$t/" \
        "$B/corpus/$t" "$SRC/fuzz/seeds/$t" >"$log" 2>&1; then
        res=ok
    else
        res="CRASH (input saved in fuzz/regressions/$t/)"
        status=1
    fi
    execs=$(grep -E "stat::number_of_executed_units" "$log" | awk '{print $2}' | tail -1)
    cov=$(grep -oE "cov: [0-9]+" "$log" | tail -1)
    printf 'fuzz_%-10s %10s executions in %ss, %s: %s\n' "$t" "${execs:-?}" "$SECS" "${cov:-cov: ?}" "$res"
done
exit $status
