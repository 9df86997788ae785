#!/bin/sh
# Runs the whole fedmq test suite from a clean checkout: installs the Debian packages, configures
# and builds in build/, and runs every test under ctest (unit suites and the integration test
# against a private Mosquitto). Extra arguments go to ctest (for example -R unit_).
# FMQ_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer in build-asan/.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
"$SRC/deploy/install-deps.sh"
BUILD="$SRC/build"
FLAGS="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
if [ "${FMQ_SANITIZE:-0}" = 1 ]; then
    BUILD="$SRC/build-asan"
    FLAGS="-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFMQ_SANITIZE=ON" # -O2: the ML tests stay fast
fi
cmake -S "$SRC" -B "$BUILD" $FLAGS
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
ctest --output-on-failure "$@"
