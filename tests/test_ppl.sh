#!/usr/bin/env bash
# test_ppl.sh - `smelt ppl` and `smelt generate` from the command line on the shared models:
# JSON fields, the --save-logits / --kld round trip, thread-count invariance of the printed
# numbers, --text tokenization, argument errors, --device cuda without a device, stories260K's
# greedy sample, --kld against a model.
. "$(dirname "$0")/testlib.sh"
TOKENS=$KJV/reference/tokens_eval.txt
export OMP_WAIT_POLICY=passive # the tests share a busy machine
# json_num FILE KEY: the number after "KEY": in a one-line JSON object
need_assets "$KJV/config.json" "$TOKENS" "$ASSETS/models/stories260k/stories260K.bin"

# ---- perplexity, 6 chunks of 256: JSON with the stable keys; the reference's chunk scores
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 256 --chunks 6 --threads 1 --json > "$TMP/p1.json" 2> "$TMP/err" ||
  { fail "ppl exited $?"; cat "$TMP/err" >&2; }
for k in ppl ppl_stderr n_ctx n_chunks n_scored tokens_per_second; do
  grep -q "\"$k\":" "$TMP/p1.json" || fail "ppl --json lacks $k"
done
[ "$(json_num "$TMP/p1.json" n_ctx)" = 256 ] || fail "n_ctx"
[ "$(json_num "$TMP/p1.json" n_chunks)" = 6 ] || fail "n_chunks"
[ "$(json_num "$TMP/p1.json" n_scored)" = 762 ] || fail "n_scored (6 x 127)"
# exp(mean of reference/perplexity.json per_chunk_mean_nll[0:6]) = 17.78984 (torch reference)
awk -v p="$(json_num "$TMP/p1.json" ppl)" 'BEGIN { exit !(p > 17.78984 * 0.999 && p < 17.78984 * 1.001) }' ||
  fail "ppl of 6 chunks $(json_num "$TMP/p1.json" ppl), reference 17.78984"

# ---- the same numbers with 2 threads and smaller batches
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 256 --chunks 6 --threads 2 --batch 64 --json > "$TMP/p2.json" 2>&1 ||
  fail "ppl --threads 2 exited $?"
[ "$(json_num "$TMP/p1.json" ppl)" = "$(json_num "$TMP/p2.json" ppl)" ] ||
  fail "ppl differs between 1 and 2 threads: $(json_num "$TMP/p1.json" ppl) vs $(json_num "$TMP/p2.json" ppl)"

# ---- text output
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 128 --chunks 2 --quiet > "$TMP/p.txt" 2>&1 || fail "ppl text exited $?"
expect_grep "$TMP/p.txt" '^PPL = [0-9]+\.[0-9]{4} \+/- [0-9.]+$'

# ---- save the base log-probabilities, then KL divergence of the same model (f32 copy) against them
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 128 --chunks 3 --save-logits "$TMP/base.bin" --quiet > "$TMP/s.txt" 2>&1 ||
  fail "ppl --save-logits exited $?"
[ "$(stat -c %s "$TMP/base.bin" 2>/dev/null)" = $((20 + 4 * 3 * 128 + 3 * 63 * 2052 * 2)) ] || fail "logits file size"
"$SMELT" ppl "$KJV/f32" --kld "$TMP/base.bin" --json > "$TMP/k.json" 2>&1 || fail "ppl --kld exited $?"
for k in kld_mean kld_p99 top1_agreement delta_ppl ppl_base rms_dp; do
  grep -q "\"$k\":" "$TMP/k.json" || fail "ppl --kld --json lacks $k"
done
[ "$(json_num "$TMP/k.json" top1_agreement)" = 1 ] || fail "same weights: top-1 agreement $(json_num "$TMP/k.json" top1_agreement)"
awk -v k="$(json_num "$TMP/k.json" kld_mean)" 'BEGIN { exit !(k < 1e-5 && k > -1e-5) }' || fail "same weights: KLD $(json_num "$TMP/k.json" kld_mean)"
"$SMELT" ppl "$KJV" --kld "$TMP/base.bin" > "$TMP/k.txt" 2>&1 || fail "ppl --kld text exited $?"
expect_grep "$TMP/k.txt" '^Mean    KLD: '
expect_grep "$TMP/k.txt" '^Same top p: 100\.000'

# ---- the summary line (issue 11): the results on stdout as llama-perplexity prints them, then
# `smelt ppl: MODEL: <what> in <time>` on stderr; --quiet drops the summary, not the results
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 128 --chunks 2 > "$TMP/so.txt" 2> "$TMP/se.txt" || fail "ppl exited $?"
expect_grep "$TMP/so.txt" '^PPL = [0-9]+\.[0-9]{4} \+/- [0-9.]+$'
p_out=$(sed -nE 's/^PPL = ([0-9.]+) .*/\1/p' "$TMP/so.txt")
grep -Eq "^smelt ppl: $KJV: PPL = $p_out \\+/- [0-9.]+, 2 chunks x 128 tokens in [0-9.]+ s\$" "$TMP/se.txt" ||
  { fail "ppl: no summary line on stderr"; cat "$TMP/se.txt" >&2; }
grep -q '^smelt ppl:' "$TMP/so.txt" && fail "ppl: the summary line went to stdout"
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 128 --chunks 2 --quiet > "$TMP/so.txt" 2> "$TMP/se.txt" || fail "ppl --quiet exited $?"
[ -s "$TMP/se.txt" ] && { fail "ppl --quiet wrote to stderr"; cat "$TMP/se.txt" >&2; }
expect_grep "$TMP/so.txt" '^PPL = [0-9]+\.[0-9]{4} \+/- [0-9.]+$'
"$SMELT" ppl "$KJV" --kld "$TMP/base.bin" > "$TMP/so.txt" 2> "$TMP/se.txt" || fail "ppl --kld exited $?"
expect_grep "$TMP/so.txt" '^Mean    KLD: '
expect_grep "$TMP/se.txt" "^smelt ppl: $KJV: PPL = [0-9.]+ \\(base [0-9.]+\\), mean KLD = -?[0-9.]+, 3 chunks x 128 tokens in [0-9.]+ s\$"
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 128 --chunks 2 --json > "$TMP/so.txt" 2> "$TMP/se.txt" || fail "ppl --json exited $?"
grep -q '^smelt ppl:' "$TMP/se.txt" && fail "ppl --json: a summary line (the report is the summary)"
# tokenize: the ids on stdout, its summary on stderr (the token count matches the ids printed)
"$SMELT" tokenize "$KJV" -f "$ASSETS/text/kjv-eval.txt" > "$TMP/so.txt" 2> "$TMP/se.txt" || fail "tokenize exited $?"
n_ids=$(wc -w < "$TMP/so.txt")
expect_grep "$TMP/se.txt" "^smelt tokenize: $ASSETS/text/kjv-eval.txt: $n_ids tokens from [0-9.]+ (KiB|MiB) in [0-9.]+ s\$"
"$SMELT" tokenize "$KJV" -f "$ASSETS/text/kjv-eval.txt" --quiet > "$TMP/so.txt" 2> "$TMP/se.txt" || fail "tokenize --quiet exited $?"
[ -s "$TMP/se.txt" ] && fail "tokenize --quiet wrote to stderr"
[ "$(wc -w < "$TMP/so.txt")" = "$n_ids" ] || fail "tokenize --quiet printed other ids"

# ---- errors: usage (2), runtime (1), nothing written on failure
"$SMELT" ppl "$KJV" > "$TMP/e.txt" 2>&1; [ $? = 2 ] || fail "ppl without input should exit 2"
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --kld "$TMP/base.bin" > "$TMP/e.txt" 2>&1; [ $? = 2 ] || fail "--tokens with --kld should exit 2"
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 50000 > "$TMP/e.txt" 2>&1; [ $? = 1 ] || fail "too little text should exit 1"
expect_grep "$TMP/e.txt" 'needs at least 100000 tokens'
head -c 100 "$TMP/base.bin" > "$TMP/short.bin"
"$SMELT" ppl "$KJV" --kld "$TMP/short.bin" > "$TMP/e.txt" 2>&1; [ $? = 1 ] || fail "truncated logits file should exit 1"
expect_grep "$TMP/e.txt" 'short.bin: 100 bytes, expected'
"$SMELT" ppl "$KJV" --tokens "$TOKENS" --ctx 128 --chunks 1 --save-logits "$TMP/nodir/x.bin" > "$TMP/e.txt" 2>&1
[ $? = 1 ] || fail "unwritable --save-logits should exit 1"
# (no usable device, on any machine: the plugin is pointed at nothing)
SMELT_CUDA_PLUGIN=/nonexistent/libsmelt_cuda.so "$SMELT" ppl "$KJV" --tokens "$TOKENS" --device cuda > "$TMP/e.txt" 2>&1
[ $? = 1 ] && grep -q 'cuda' "$TMP/e.txt" || fail "--device cuda without a usable device should exit 1 with a message"

# ---- the text path: kjv-eval.txt tokenized whole gives the reference token count and the same ppl
"$SMELT" ppl "$KJV" --text "$ASSETS/text/kjv-eval.txt" --ctx 256 --chunks 6 --threads 1 --json > "$TMP/t.json" 2>&1 ||
  fail "ppl --text exited $?"
[ "$(json_num "$TMP/t.json" n_tokens)" = 43786 ] || fail "kjv-eval.txt: $(json_num "$TMP/t.json" n_tokens) tokens, reference 43786"
[ "$(json_num "$TMP/t.json" ppl)" = "$(json_num "$TMP/p1.json" ppl)" ] || fail "ppl --text differs from ppl --tokens"

# ---- generate: stories260K greedy from BOS for 256 steps = Karpathy's sample, byte for byte
"$SMELT" generate "$ASSETS/models/stories260k/stories260K.bin" --vocab "$ASSETS/models/stories260k/tok512.model" -n 256 \
  > "$TMP/story.txt" 2> "$TMP/err" || fail "generate text exited $?"
cmp -s "$TMP/story.txt" "$ASSETS/models/stories260k/expected_greedy_t0_256steps.txt" ||
  { fail "greedy story differs from expected_greedy_t0_256steps.txt"; head -c 300 "$TMP/story.txt" >&2; }
# ... and from its GGUF (smelt convert; rope pairs in ggml's order, tokenizer inside)
"$SMELT" convert "$ASSETS/models/stories260k/stories260K.bin" -o "$TMP/stories.gguf" > /dev/null 2>&1 ||
  fail "convert stories260K exited $?"
"$SMELT" generate "$TMP/stories.gguf" -n 256 > "$TMP/story2.txt" 2> "$TMP/err" || fail "generate from GGUF exited $?"
cmp -s "$TMP/story2.txt" "$ASSETS/models/stories260k/expected_greedy_t0_256steps.txt" ||
  fail "greedy story from the GGUF differs from expected_greedy_t0_256steps.txt"
"$SMELT" generate "$KJV" --prompt "And God said" -n 8 > "$TMP/kjv.txt" 2>/dev/null || fail "generate --prompt exited $?"
expect_grep "$TMP/kjv.txt" '^And God said'
"$SMELT" generate "$ASSETS/models/stories260k/stories260K.bin" -n 5 > "$TMP/e.txt" 2>&1; [ $? = 1 ] || fail "text generation without a tokenizer should exit 1"
expect_grep "$TMP/e.txt" 'no tokenizer'

# ---- generate --ids: no tokenizer needed; the ids of Karpathy's sample (stories260k/SOURCE.md)
"$SMELT" generate "$ASSETS/models/stories260k/stories260K.bin" --ids -n 15 --threads 1 > "$TMP/g.txt" 2> "$TMP/err" ||
  fail "generate exited $?"
[ "$(tr '\n' ' ' < "$TMP/g.txt")" = "403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 " ] ||
  fail "greedy ids: $(tr '\n' ' ' < "$TMP/g.txt")"
# sampling is reproducible with a seed
"$SMELT" generate "$ASSETS/models/stories260k/stories260K.bin" --ids -n 20 --temp 0.8 --seed 7 > "$TMP/s1.txt" 2>/dev/null
"$SMELT" generate "$ASSETS/models/stories260k/stories260K.bin" --ids -n 20 --temp 0.8 --seed 7 --threads 1 > "$TMP/s2.txt" 2>/dev/null
cmp -s "$TMP/s1.txt" "$TMP/s2.txt" && [ -s "$TMP/s1.txt" ] || fail "seeded sampling not reproducible"

# ---- KL divergence against a base model given directly (bf16 vs f32 copies: the same values),
# with llama-perplexity's short option names
"$SMELT" ppl "$KJV/f32" -f "$ASSETS/text/kjv-eval.txt" -c 128 --chunks 2 -t 1 --kld "$KJV" --json > "$TMP/km.json" 2>&1 ||
  fail "ppl --kld MODEL exited $?"
[ "$(json_num "$TMP/km.json" top1_agreement)" = 1 ] || fail "--kld MODEL: top-1 agreement $(json_num "$TMP/km.json" top1_agreement)"
[ "$(json_num "$TMP/km.json" n_scored)" = 126 ] || fail "--kld MODEL: n_scored"

# (smelt ppl next to llama-perplexity on the same GGUF: tests/test_convert_llamacpp.sh)

[ $fails = 0 ] && echo "test_ppl: all passed" || echo "test_ppl: $fails failures"
exit $((fails != 0))
