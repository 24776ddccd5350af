#!/usr/bin/env bash
# bench_awq.sh - AWQ's time per decoder layer of Llama-2-7B's shapes (hidden 4096, MLP 11008, 32
# heads; random BF16 weights from bench_gen_checkpoint, KJV calibration text) on the CPU, beside
# GPTQ's on the same layer and grid: `smelt awq --to gguf:Q4_0` and `smelt gptq --to gguf:Q4_0`,
# whose --json reports split the layer's time into the block's forward passes, the Hessians (and
# mean |x|), the AWQ scale and clip searches, and the quantization.
#
# usage: scripts/bench_awq.sh [SAMPLES] [RECIPE]   (default 2 samples of 2048 tokens, Q4_0)
#   The forward passes and Hessians are linear in the tokens; the searches and the quantization
#   are not (they work on the Hessians): both are printed, and the layer extrapolated to
#   128 x 2048 tokens.  BENCH_DIR (default /tmp/smelt-bench-gptq, shared with bench_gptq.sh)
#   keeps the generated checkpoint; SMELT_THREADS sets the threads (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."
samples=${1:-2}
recipe=${2:-Q4_0}
build=${SMELT_BUILD_DIR:-build}
work=${BENCH_DIR:-/tmp/smelt-bench-gptq}
assets=$(realpath "${SMELT_ASSETS:-../shared}")
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target smelt bench_gen_checkpoint >/dev/null
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
model=$work/llama2-7b-layer
if [ ! -f "$model/model.safetensors" ]; then
  mkdir -p "$work"
  "$build"/bench_gen_checkpoint "$model" 1 4096 11008 32 32
  for f in tokenizer.model tokenizer_config.json special_tokens_map.json; do
    ln -sf "$assets/models/tiny-llama-kjv/$f" "$model/$f"
  done
fi
for cmd in gptq awq; do
  echo
  echo "==== one Llama-2-7B-shaped decoder layer, $samples x 2048 calibration tokens, smelt $cmd --to gguf:$recipe (CPU)"
  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} /usr/bin/time -f "%e %U %S %M" -o "$work/time-$cmd" \
    "$build"/smelt "$cmd" "$model" --calib "$assets/text/kjv-calib.txt" --samples "$samples" --seqlen 2048 \
    --to "gguf:$recipe" -o "$work/out-$cmd.gguf" --no-loss --json > "$work/report-$cmd.json"
  read -r wall usr sys rss < "$work/time-$cmd"
  python3 - "$work/report-$cmd.json" "$samples" "$wall" "$rss" "$usr" "$sys" "$work/layer-$cmd" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
samples, wall, rss_kb, cpu = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]) + float(sys.argv[6])
l = r["layers"][0]
f, h, q, t, a = l["forward_seconds"], l["hessian_seconds"], l["quantize_seconds"], l["seconds"], l.get("awq_seconds", 0)
k = 128 / samples
print(f"  measured: layer {t:.1f} s = forward passes {f:.1f} s + Hessians {h:.1f} s + AWQ searches {a:.1f} s"
      f" + quantization {q:.1f} s (+ {t - f - h - q - a:.1f} s other); whole command {wall:.1f} s wall,"
      f" {cpu:.1f} s CPU (user+sys), peak RSS {rss_kb / 1048576:.2f} GiB")
at128 = (f + h) * k + a + q
print(f"  at 128 x 2048 tokens: layer {at128:.0f} s  (Llama-2-7B, 32 layers: {at128 * 32 / 3600:.1f} h)")
open(sys.argv[7], "w").write(f"{t:.1f} {at128:.0f} {cpu:.1f} {a:.1f}\n")
PYEOF
done
# the benchmark line: AWQ's layer beside GPTQ's (wall seconds from the reports; CPU time of the
# whole commands, which is what to compare on a loaded machine)
read -r gt g128 gcpu _ < "$work/layer-gptq"
read -r at a128 acpu asearch < "$work/layer-awq"
echo
echo "== per Llama-2-7B-shaped decoder layer (CPU, $recipe, $samples x 2048 tokens): AWQ $at s (searches $asearch s)," \
  "GPTQ $gt s; CPU time AWQ $acpu s, GPTQ $gcpu s; at 128 x 2048 tokens AWQ $a128 s, GPTQ $g128 s"
