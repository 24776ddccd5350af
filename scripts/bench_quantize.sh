#!/usr/bin/env bash
# bench_quantize.sh - `smelt quantize` throughput (MB/s of F16 input) per recipe at 1 and 2
# threads and at all threads (BENCH_THREADS overrides), next to llama-quantize on the same file
# when LLAMA_CPP_BIN points to a llama.cpp build (its bin/ directory). The input is a synthetic
# F16 GGUF with TinyLlama-1.1B layer shapes (bench_gen_checkpoint, then smelt convert). The two
# tools' runs alternate, BENCH_RUNS (5) each; the median of each counts, both of the wall time
# and of the CPU time (user + sys, /usr/bin/time: the fairer measure on a loaded machine).
# Targets at equal threads: >= 1.5x llama-quantize's throughput for Q4_K_M; at least
# llama-quantize's for IQ2_XS and IQ3_S (issue 17).
#
# The IQ1/IQ2/IQ3 recipes get an importance matrix (smelt imatrix over 2 chunks of 128 tokens of
# kjv-calib.txt), the same file for both tools. The "same" column says whether the two tools
# wrote the same bytes (so that both did the same work); the last lines say, per recipe, whether
# smelt was at least as fast as llama-quantize at every thread count (wall and CPU time).
#
# usage: scripts/bench_quantize.sh [RECIPE...]
#          (default: Q4_K_M Q8_0 Q4_0 Q5_K_M Q6_K IQ4_XS IQ2_XS IQ3_S)
#        env: BENCH_DIR=/tmp/smelt-bench-quantize BENCH_LAYERS=4 BENCH_THREADS="1 2 $(nproc)" BENCH_RUNS=5
#             SMELT_BUILD_DIR=build SMELT_ASSETS=../shared LLAMA_CPP_BIN=
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-quantize}
layers=${BENCH_LAYERS:-4}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
recipes=("$@")
[ ${#recipes[@]} -gt 0 ] || recipes=(Q4_K_M Q8_0 Q4_0 Q5_K_M Q6_K IQ4_XS IQ2_XS IQ3_S)
all=$(nproc)
read -r -a threads <<<"${BENCH_THREADS:-$(printf '%s\n' 1 2 "$all" | sort -nu | tr '\n' ' ')}"
runs=${BENCH_RUNS:-5}

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$all" --target smelt bench_gen_checkpoint >/dev/null

mkdir -p "$work/model"
in=$work/model-f16.gguf
if [ ! -f "$in" ]; then
  echo "generating a $layers-layer checkpoint and its F16 GGUF in $work ..."
  "$build/bench_gen_checkpoint" "$work/model" "$layers"
  for f in tokenizer.model tokenizer_config.json special_tokens_map.json; do
    ln -sf "$assets/models/tiny-llama-kjv/$f" "$work/model/$f"
  done
  "$build/smelt" convert "$work/model" -o "$in" --outtype f16 --quiet
fi
mb=$(awk -v b="$(stat -L -c %s "$in")" 'BEGIN { printf "%.1f", b / 1048576 }')

# run FILE CMD...: appends "wall cpu" seconds of one run of CMD to FILE (fails, naming the
# command, when it fails)
run() {
  local log=$1
  shift
  /usr/bin/time -o "$work/time.txt" -f '%e %U %S' "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
  awk '{ print $1, $2 + $3 }' "$work/time.txt" >>"$log"
}
# median FILE COLUMN: the median of a column of numbers
median() { sort -g -k"$2,$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# lower A B: the smaller number
lower() { awk -v a="$1" -v b="$2" 'BEGIN { print (b < a ? b : a) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "input: $in ($mb MiB, F16), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $all cores"
llq=
[ -n "${LLAMA_CPP_BIN:-}" ] && [ -x "$LLAMA_CPP_BIN/llama-quantize" ] && llq=$LLAMA_CPP_BIN/llama-quantize
printf '%-8s %7s %9s %9s %10s %9s %9s %10s %7s %7s %5s\n' recipe threads "smelt s" "cpu s" "MB/s" \
  "llama s" "cpu s" "MB/s" "wall x" "cpu x" same
verdicts=() used_im=
for r in "${recipes[@]}"; do
  im=()
  if [[ "$r" =~ ^IQ[123] ]]; then
    [ -f "$work/imatrix.gguf" ] || "$build/smelt" imatrix "$in" --text "$assets/text/kjv-calib.txt" -c 128 --chunks 2 \
      -o "$work/imatrix.gguf" --quiet
    im=(--imatrix "$work/imatrix.gguf") used_im=1
  fi
  worst='' worst_cpu=''
  for t in "${threads[@]}"; do
    # the two tools alternate, runs times each; the medians count (the first run warms the page
    # cache; the median is robust to a run disturbed by other load)
    : >"$work/smelt.times" && : >"$work/llama.times"
    for _ in $(seq "$runs"); do
      run "$work/smelt.times" "$build/smelt" quantize "$in" "$work/out.gguf" "$r" --threads "$t" --quiet "${im[@]}"
      [ -z "$llq" ] || run "$work/llama.times" "$llq" "${im[@]}" "$in" "$work/out-llama.gguf" "$r" "$t"
    done
    ts=$(median "$work/smelt.times" 1) cs=$(median "$work/smelt.times" 2)
    sm=$(awk -v m="$mb" -v s="$ts" 'BEGIN { printf "%.1f", m / s }')
    tl=- cl=- lq=- rw=- rc=- same=-
    if [ -n "$llq" ]; then
      tl=$(median "$work/llama.times" 1) cl=$(median "$work/llama.times" 2)
      lq=$(awk -v m="$mb" -v s="$tl" 'BEGIN { printf "%.1f", m / s }')
      rw=$(ratio "$tl" "$ts") rc=$(ratio "$cl" "$cs")
      same=no
      cmp -s "$work/out.gguf" "$work/out-llama.gguf" && same=yes
      worst=$(lower "${worst:-1e9}" "$rw") worst_cpu=$(lower "${worst_cpu:-1e9}" "$rc")
      tl=$(printf '%.2f' "$tl") cl=$(printf '%.2f' "$cl") rw=${rw}x rc=${rc}x
    fi
    printf '%-8s %7s %9.2f %9.2f %10s %9s %9s %10s %7s %7s %5s\n' "$r" "$t" "$ts" "$cs" "$sm" "$tl" "$cl" "$lq" "$rw" \
      "$rc" "$same"
  done
  if [ -n "$worst" ]; then
    verdict=no
    awk -v w="$worst" -v c="$worst_cpu" 'BEGIN { exit !(w >= 1 && c >= 1) }' && verdict=yes
    verdicts+=("$(printf '%-8s at least as fast as llama-quantize at %s threads: %s (lowest ratio: wall %.2fx, CPU %.2fx)' \
      "$r" "$(IFS=/; echo "${threads[*]}")" "$verdict" "$worst" "$worst_cpu")")
  fi
done
[ -z "$used_im" ] ||
  echo "imatrix (IQ1/IQ2/IQ3 recipes, both tools): $work/imatrix.gguf (smelt imatrix, kjv-calib.txt, 2 x 128 tokens)"
for v in "${verdicts[@]}"; do echo "$v"; done
rm -f "$work/out.gguf" "$work/out-llama.gguf" "$work/smelt.times" "$work/llama.times" "$work/time.txt"
