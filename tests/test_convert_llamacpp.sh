#!/usr/bin/env bash
# test_convert_llamacpp.sh - acceptance of `smelt convert` output by llama.cpp itself, and smelt
# ppl next to llama-perplexity. Needs LLAMA_CPP_BIN naming llama.cpp's build/bin (with
# llama-simple and llama-perplexity); without it the test exits 77 (ctest: skipped).
#  1. stories260K.bin -> GGUF; llama-simple's greedy decoding of 256 tokens from BOS reproduces
#     Karpathy's published sample (stories260k/expected_greedy_t0_256steps.txt, 255 tokens).
#  2. tiny-llama-kjv (bf16 and f32 outputs): llama-perplexity -c 256 over the first 16 chunks
#     of kjv-eval.txt equals the reference's (exp of the mean of per_chunk_mean_nll[0..15],
#     reference/perplexity.json) within 0.5%.
#  3. smelt ppl and llama-perplexity on the same F32 GGUF (made by smelt convert), 20 chunks of
#     256, within 0.5% (LLAMA_PPL_ARGS adds llama-perplexity options).
. "$(dirname "$0")/testlib.sh"
set -e
[ -n "${LLAMA_CPP_BIN:-}" ] || skip "LLAMA_CPP_BIN is not set (llama.cpp's build/bin directory)"
assets=$ASSETS smelt=$SMELT tmp=$TMP
fail=0

"$smelt" convert "$assets/models/stories260k/stories260K.bin" -o "$tmp/st.gguf" --quiet
"$LLAMA_CPP_BIN/llama-simple" -m "$tmp/st.gguf" -n 256 "" > "$tmp/greedy.txt" 2> "$tmp/greedy.log"
got=$(cat "$tmp/greedy.txt")
got=${got#"<s>"}
got=${got# }
want=$(cat "$assets/models/stories260k/expected_greedy_t0_256steps.txt")
if [[ "$got" == "$want"* ]]; then
  echo "ok   stories260K greedy decoding matches the reference sample"
else
  echo "FAIL stories260K greedy decoding differs:"; head -c 300 "$tmp/greedy.txt"; echo
  fail=1
fi

chunks=16
want_ppl=$(tr -d ' \n' < "$assets/models/tiny-llama-kjv/reference/perplexity.json" |
  sed 's/.*"per_chunk_mean_nll":\[\([^]]*\)\].*/\1/' | tr ',' '\n' |
  awk -v n=$chunks 'NR <= n { s += $1 } END { printf "%.6f", exp(s / n) }')
for outtype in bf16 f32; do
  "$smelt" convert "$assets/models/tiny-llama-kjv" -o "$tmp/kjv-$outtype.gguf" --outtype $outtype --quiet
  ppl=$(llama_ppl "$tmp/kjv-$outtype.gguf" "$assets/text/kjv-eval.txt" 256 $chunks)
  if [ -n "$ppl" ] && awk -v a="$ppl" -v b="$want_ppl" 'BEGIN { d = a / b - 1; exit !(d < 0.005 && d > -0.005) }'; then
    echo "ok   $outtype: llama-perplexity $ppl, reference $want_ppl ($chunks chunks)"
  else
    echo "FAIL $outtype: llama-perplexity '${ppl}', reference $want_ppl ($chunks chunks)"; tail -5 "$tmp/llama-ppl.log"
    fail=1
  fi
done

# 3. smelt ppl next to llama-perplexity (the f32 GGUF converted above)
want=$(llama_ppl "$tmp/kjv-f32.gguf" "$assets/text/kjv-eval.txt" 256 20)
if [ -n "$want" ]; then
  "$smelt" ppl "$tmp/kjv-f32.gguf" --text "$assets/text/kjv-eval.txt" --ctx 256 --chunks 20 --json > "$tmp/o.json" 2>&1 || true
  got=$(sed -E 's/.*"ppl":(-?[0-9.eE+-]+).*/\1/' "$tmp/o.json")
  if awk -v a="$got" -v b="$want" 'BEGIN { exit !(b > 0 && a / b < 1.005 && a / b > 0.995) }'; then
    echo "ok   smelt ppl $got, llama-perplexity $want (F32 GGUF, 20 chunks of 256)"
  else
    echo "FAIL smelt ppl $got vs llama-perplexity $want"; fail=1
  fi
else
  echo "FAIL llama-perplexity gave no estimate (LLAMA_PPL_ARGS=-nr helps where its AMX kernels cannot run)"
  tail -5 "$tmp/llama-ppl.log"; fail=1
fi
exit $fail
