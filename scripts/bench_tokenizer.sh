#!/usr/bin/env bash
# Tokenizer speed: `smelt tokenize` (vocabulary load + tokenization) on the shared texts, with a
# SentencePiece vocabulary (tiny-llama-kjv, stories260K) and a byte-level BPE one (the llama3
# test fixture). Target: 150 KB of text well under a second.
# usage: scripts/bench_tokenizer.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
smelt=${1:-build}/smelt
assets=${SMELT_ASSETS:-../shared}
run() { # name model text
  local start end n
  start=$(date +%s.%N)
  n=$("$smelt" tokenize "$2" --text "$3" --json | sed 's/^{"n_tokens":\([0-9]*\).*/\1/')
  end=$(date +%s.%N)
  awk -v name="$1" -v n="$n" -v bytes="$(stat -c %s "$3")" -v s="$start" -v e="$end" \
    'BEGIN { t = e - s; printf "%-28s %8d bytes %8d tokens %7.3f s %6.2f MB/s\n", name, bytes, n, t, bytes / t / 1e6 }'
}
run "spm kjv-eval" "$assets/models/tiny-llama-kjv" "$assets/text/kjv-eval.txt"
run "spm fortunes-eval" "$assets/models/tiny-llama-kjv" "$assets/text/fortunes-eval.txt"
run "spm tinystories (800 KB)" "$assets/models/stories260k/tok512.model" "$assets/text/tinystories_valid_first1000.txt"
run "bpe-llama3 kjv-eval" tests/data/bpe-llama3 "$assets/text/kjv-eval.txt"
run "bpe-qwen2 fortunes-eval" tests/data/bpe-qwen2 "$assets/text/fortunes-eval.txt"
