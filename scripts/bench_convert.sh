#!/usr/bin/env bash
# bench_convert.sh - `smelt convert --outtype f16` on a synthetic Llama-shaped BF16 checkpoint
# (>= 2 GB; TinyLlama-1.1B layer shapes) against `cp` of the same bytes: seconds, GB/s of
# input, the ratio, and peak RSS (GNU time). The page cache is dropped before each run when
# this process may do so; otherwise every command runs twice and the second (warm) run counts.
# smelt makes its output durable (fsync before the rename), so `cp` is also timed with an fsync,
# and smelt is also timed with --no-sync (no fsync, like plain cp).
#
# usage: scripts/bench_convert.sh   (env: BENCH_DIR=/tmp/smelt-bench-convert BENCH_LAYERS=24
#        SMELT_BUILD_DIR=build SMELT_ASSETS=../shared; the tokenizer comes from tiny-llama-kjv)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-convert}
layers=${BENCH_LAYERS:-24}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 2; }

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target smelt bench_gen_checkpoint >/dev/null

model=$work/model
mkdir -p "$model"
if [ ! -f "$model/model.safetensors" ]; then
  echo "generating a $layers-layer checkpoint in $model ..."
  "$build/bench_gen_checkpoint" "$model" "$layers"
fi
for f in tokenizer.model tokenizer_config.json special_tokens_map.json; do
  ln -sf "$assets/models/tiny-llama-kjv/$f" "$model/$f"
done
in_bytes=$(stat -c %s "$model/model.safetensors")

can_drop=0
if sync && (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then can_drop=1; fi

# run NAME CMD...: prints "seconds max_rss_kb" of the counted run
run() {
  local name=$1; shift
  local reps=2; [ $can_drop = 1 ] && reps=1
  local out=""
  for ((i = 0; i < reps; i++)); do
    rm -f "$work/out.bin" "$work/out.gguf"; sync
    [ $can_drop = 1 ] && echo 3 > /proc/sys/vm/drop_caches
    out=$( { /usr/bin/time -f "%e %M" "$@" >/dev/null; } 2>&1 | tail -n 1)
  done
  echo "$out"
}

read -r t_cp rss_cp < <(run cp cp "$model/model.safetensors" "$work/out.bin")
read -r t_cps rss_cps < <(run cp+fsync sh -c "cp '$model/model.safetensors' '$work/out.bin' && sync '$work/out.bin'")
read -r t_cv rss_cv < <(run smelt "$build/smelt" convert "$model" -o "$work/out.gguf" --outtype f16 --quiet)
read -r t_ns rss_ns < <(run smelt-no-sync "$build/smelt" convert "$model" -o "$work/out.gguf" --outtype f16 --quiet --no-sync)
out_bytes=$(stat -c %s "$work/out.gguf")
rm -f "$work/out.bin" "$work/out.gguf"

awk -v b="$in_bytes" -v ob="$out_bytes" -v cp="$t_cp" -v cps="$t_cps" -v cv="$t_cv" -v ns="$t_ns" -v rcp="$rss_cp" \
    -v rcv="$rss_cv" -v warm="$can_drop" -v th="$(nproc)" 'BEGIN {
  printf "input %.2f GB (bf16 safetensors), output %.2f GB (f16 gguf), %d threads, %s caches\n", b/1e9, ob/1e9, th,
         warm ? "cold (dropped)" : "warm (second of two runs; caches cannot be dropped here)";
  printf "cp             %6.2f s  %6.2f GB/s  peak RSS %6.1f MB\n", cp, b/1e9/cp, rcp/1024;
  printf "cp + fsync     %6.2f s  %6.2f GB/s\n", cps, b/1e9/cps;
  printf "smelt convert  %6.2f s  %6.2f GB/s  peak RSS %6.1f MB\n", cv, b/1e9/cv, rcv/1024;
  printf "smelt --no-sync %5.2f s  %6.2f GB/s\n", ns, b/1e9/ns;
  printf "ratio smelt/(cp + fsync) %.2fx, smelt --no-sync/cp %.2fx (target >= 0.7x)\n", cps/cv, cp/ns;
}'
