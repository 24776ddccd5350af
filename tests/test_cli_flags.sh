#!/usr/bin/env bash
# test_cli_flags.sh - the options that mean the same on every command (one option table):
# unknown options exit 2 with "smelt CMD: error:", a "did you mean" and a pointer to `smelt help
# CMD`; -t/--threads on every computing command (and its range); --quiet (nothing on stderr)
# and --json everywhere; -o/--outfile/--output, -c/--ctx, -f/--text/--calib, --outtype (lora
# merge --dtype), --no-sync; llama.cpp's spellings (ppl --kl-divergence-base/--kl-divergence,
# generate -p/-n, llama-quantize's trailing thread count); did-you-mean for commands, lora
# subcommands and recipes; usage errors exit 2 (lora merge --adapter DIR:abc); smelt help help.
. "$(dirname "$0")/testlib.sh"
LORA=$ASSETS/models/tiny-llama-kjv-lora-fortunes
TEXT=$ASSETS/text/kjv-eval.txt
need_assets "$KJV/config.json" "$LORA/adapter_config.json" "$TEXT"
cd "$TMP" || exit 1
export OMP_WAIT_POLICY=passive
# expect RC ARGS...: smelt ARGS exits RC; its stderr in err, stdout in out
expect() {
  local want=$1
  shift
  "$SMELT" "$@" > out 2> err
  local rc=$?
  [ "$rc" = "$want" ] || { fail "smelt $* exited $rc, expected $want"; sed 's/^/    /' err >&2; }
}
has() { grep -Eq -- "$2" "$1" || { fail "$1 of '$3' lacks: $2"; sed 's/^/    /' "$1" >&2; }; }

"$SMELT" convert "$KJV" -o base.gguf --quiet || { echo "convert failed" >&2; exit 1; }

# ---- every command: unknown option, suggestion, pointer to help, exit 2
for cmd in convert inspect quantize "lora merge" "lora export" tokenize ppl generate imatrix gptq; do
  # shellcheck disable=SC2086
  expect 2 $cmd --bogus-option
  has err "^smelt $cmd: error: unknown option --bogus-option" "$cmd --bogus-option"
  has err "smelt help ${cmd%% *}" "$cmd --bogus-option"
  # shellcheck disable=SC2086
  expect 2 $cmd --jsno
  has err "did you mean --json\?" "$cmd --jsno"
  # shellcheck disable=SC2086
  expect 0 help ${cmd%% *}
  has out "--json" "help $cmd"
  has out "--quiet" "help $cmd"
done

# ---- computing commands: -t N accepted, --quiet silent, --threads range checked
C="-t 1 --quiet"
expect 0 convert "$KJV" --outfile c.gguf --outtype f16 --no-sync $C; [ -s err ] && fail "convert --quiet wrote to stderr"
expect 0 quantize base.gguf q.gguf Q8_0 --no-sync $C; [ -s err ] && fail "quantize --quiet wrote to stderr"
expect 0 quantize base.gguf Q8_0 --output q_o.gguf $C
cmp -s q.gguf q_o.gguf || fail "quantize IN TYPE --output OUT differs from IN OUT TYPE"
expect 0 quantize base.gguf q_t.gguf Q8_0 1 --quiet    # llama-quantize's trailing thread count
cmp -s q.gguf q_t.gguf || fail "quantize with a trailing thread count differs"
expect 2 quantize base.gguf q_x.gguf Q8_0 many
expect 0 lora merge "$KJV" --adapter "$LORA" -o m1 --outtype f16 --no-sync $C; [ -s err ] && fail "lora merge --quiet wrote to stderr"
expect 0 lora merge "$KJV" --adapter "$LORA" -o m2 --dtype f16 $C
cmp -s m1/model.safetensors m2/model.safetensors || fail "lora merge --dtype f16 differs from --outtype f16"
expect 0 lora export "$LORA" --base "$KJV" -o l.gguf --no-sync $C; [ -s err ] && fail "lora export --quiet wrote to stderr"
expect 0 ppl base.gguf -f "$TEXT" -c 128 --chunks 1 --kl-divergence-base kb.bin $C
[ -s kb.bin ] || fail "ppl --kl-divergence-base FILE (alone) did not save the log-probabilities"
expect 0 ppl q.gguf --kl-divergence-base kb.bin --kl-divergence --json $C; mv out kld_alias.json
expect 0 ppl q.gguf --kld kb.bin --json $C; mv out kld.json
strip_times() { sed -E 's/"(seconds|tokens_per_second)":[^,]*,//g' "$1"; }
grep -q '"kld_mean"' kld.json || fail "ppl --kld --json has no kld_mean"
[ "$(strip_times kld_alias.json)" = "$(strip_times kld.json)" ] ||
  fail "ppl --kl-divergence-base F --kl-divergence differs from --kld F"
expect 2 ppl q.gguf --kl-divergence
expect 0 generate "$KJV" -p "In the beginning" -n 4 -c 64 $C; mv out g1.txt
[ -s err ] && fail "generate --quiet wrote to stderr"
expect 0 generate "$KJV" --prompt "In the beginning" --n-predict 4 --ctx 64 --threads 1 --quiet; mv out g2.txt
cmp -s g1.txt g2.txt && [ -s g1.txt ] || fail "generate -p/-n/-c differ from --prompt/--n-predict/--ctx"
expect 0 imatrix base.gguf -f "$TEXT" -c 64 --chunks 2 -o i1.gguf --no-sync $C; [ -s err ] && fail "imatrix --quiet wrote to stderr"
expect 0 imatrix base.gguf --calib "$TEXT" --ctx 64 --chunks 2 --outfile i2.gguf $C
cmp -s i1.gguf i2.gguf || fail "imatrix -f/-c/-o differ from --calib/--ctx/--outfile"
expect 0 gptq base.gguf -f "$TEXT" --to gguf:Q4_0 --samples 2 --seqlen 32 --no-loss -o g.gguf --no-sync $C
[ -s err ] && fail "gptq --quiet wrote to stderr"
expect 0 tokenize "$KJV" -f "$TEXT" --quiet
expect 0 inspect q.gguf --quiet
for cmd in convert quantize ppl generate imatrix gptq "lora merge"; do
  # shellcheck disable=SC2086
  expect 2 $cmd x -t 0
  has err "^smelt $cmd: error: --threads 0: expected an integer from 1 to 512" "$cmd -t 0"
done

# ---- usage errors exit 2 everywhere, with suggestions
expect 2 lora merge "$KJV" --adapter "$LORA:abc" -o m3
has err "^smelt lora merge: error: .*DIR:WEIGHT" "lora merge --adapter DIR:abc"
[ -e m3 ] && fail "lora merge with a bad adapter weight wrote m3"
expect 2 quantise base.gguf x.gguf Q4_0
has err "did you mean 'quantize'\?" "quantise"
expect 2 lora mrege
has err "did you mean 'merge'\?" "lora mrege"
expect 2 quantize base.gguf x.gguf Q4_KM
has err "did you mean Q4_K_M\?" "quantize Q4_KM"
expect 2 gptq base.gguf --calib "$TEXT" --to gguf:Q4_O -o x.gguf
has err "did you mean gguf:Q4_0\?" "gptq --to gguf:Q4_O"
expect 2 ppl base.gguf --ctx abc -f "$TEXT"
has err "^smelt ppl: error: --ctx abc: expected an integer" "ppl --ctx abc"
expect 2 convert "$KJV" -o
has err "^smelt convert: error: --outfile expects a value" "convert -o"
[ -e x.gguf ] && fail "a usage error left x.gguf"
expect 0 help help
has out "--outfile" "help help"
expect 2 help nosuch

tl_finish test_cli_flags
