#!/usr/bin/env bash
# demo.sh - smelt's main job end to end on the bundled model (models/default), on a fresh machine:
# install the build dependencies, build Release into build/, convert the BF16 checkpoint to an
# F16 GGUF, quantize it to Q4_K_M, and measure both on the held-out text (perplexity, plus KL
# divergence of the quantized model against the F16 one). Outputs go to out/.
# Steps whose subcommand this build does not have yet are skipped with a note.
set -euo pipefail
cd "$(dirname "$0")/.."

model=models/default
eval_text=$model/reference/eval.txt
n_ctx=128 # the context of the reference perplexity in $model/reference/perplexity.json
out=out
smelt=build/smelt

step() { printf '\n== %s\n' "$*"; }
died=0
die() { printf 'demo: error: %s\n' "$*" >&2; died=1; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || [ $died = 1 ] || printf "demo: stopped: \"%s\" failed (exit %d)\n" "$BASH_COMMAND" $rc >&2' EXIT

[ -f $model/model.safetensors ] || die "$model/model.safetensors is missing (see $model/README.md)"

step "setup: build dependencies"
scripts/setup.sh

step "build: Release into build/"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
"$smelt" --version

# a subcommand is there when `smelt help` lists it
commands=$("$smelt" help | sed -n 's/^  \([a-z0-9_-]*\) .*/\1/p')
has() { grep -qx "$1" <<<"$commands"; }

mkdir -p $out
f16=$out/default-f16.gguf
q4=$out/default-q4_k_m.gguf

step "convert: $model -> $f16"
has convert || die "this build has no 'convert' command"
"$smelt" convert $model -o $f16 --outtype f16

did_quantize=0
if has quantize; then
  step "quantize: $f16 -> $q4 (Q4_K_M)"
  "$smelt" quantize $f16 $q4 Q4_K_M
  did_quantize=1
else
  step "quantize: skipped (this build has no 'quantize' command yet)"
fi

# a number field of a one-line JSON object
field() {
  local v
  v=$(grep -Eo "\"$1\": *-?[0-9.eE+-]+" "$2" | head -n 1 | sed 's/.*: *//')
  if [ -n "$v" ]; then printf '%.4f' "$v"; else echo -; fi
}

declare -A ppl kld top1
if has ppl; then
  step "ppl: $f16 on $eval_text (n_ctx $n_ctx), saving its log-probabilities"
  "$smelt" ppl $f16 --text $eval_text --ctx $n_ctx --save-logits $out/default-f16.logits --json --quiet > $out/default-f16.ppl.json
  ppl[$f16]=$(field ppl $out/default-f16.ppl.json)
  echo "ppl ${ppl[$f16]}"
  if [ $did_quantize = 1 ]; then
    step "ppl: $q4, KL divergence against $f16"
    "$smelt" ppl $q4 --kld $out/default-f16.logits --json --quiet > $out/default-q4_k_m.ppl.json
    ppl[$q4]=$(field ppl $out/default-q4_k_m.ppl.json)
    kld[$q4]=$(field kld_mean $out/default-q4_k_m.ppl.json)
    top1[$q4]=$(field top1_agreement $out/default-q4_k_m.ppl.json)
    echo "ppl ${ppl[$q4]}, mean KL divergence ${kld[$q4]}, same top token ${top1[$q4]}"
  fi
else
  step "ppl: skipped (this build has no 'ppl' command yet)"
fi

ref_ppl=$(grep -Eo '"ppl": *[0-9.]+' $model/reference/perplexity.json | grep -Eo '[0-9.]+$')
step "summary ($model, $eval_text, n_ctx $n_ctx)"
printf '%-28s %12s %10s %10s %8s\n' model bytes ppl kld top1
printf '%-28s %12s %10.4f %10s %8s\n' "reference (torch, bf16)" "$(stat -c %s $model/model.safetensors)" "$ref_ppl" - -
for f in $f16 $q4; do
  [ -f $f ] || continue
  printf '%-28s %12s %10s %10s %8s\n' "$f" "$(stat -c %s $f)" "${ppl[$f]:--}" "${kld[$f]:--}" "${top1[$f]:--}"
done
