#!/usr/bin/env bash
# Sets up, builds (Release, warnings are errors) and runs the whole test suite.
# Assets: $SMELT_ASSETS (default ../shared beside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=${SMELT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSMELT_WERROR=ON ${SMELT_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "== $("$build/smelt" --version | sed -n 's/^isa /instruction set: /p') (SMELT_ISA=scalar|avx2 caps it)"
cd "$build" && ctest --output-on-failure -j"$(nproc)" "$@"
