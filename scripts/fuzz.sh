#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) and runs each for a while.
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
SMELT_SETUP_FUZZ=1 scripts/setup.sh
secs=${1:-30}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMELT_FUZZ=ON -DSMELT_CUDA=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null
for f in build-fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f")
  corpus=build-fuzz/corpus-$name; mkdir -p "$corpus"
  seeds=tests/fuzz-seeds/${name#fuzz_}
  echo "fuzz: $name for ${secs}s"
  if [ -d "$seeds" ]; then "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 "$corpus" "$seeds" 2>&1 | tail -n 3
  else "$f" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 "$corpus" 2>&1 | tail -n 3; fi
done
