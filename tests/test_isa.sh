#!/usr/bin/env bash
# test_isa.sh - the same files on every CPU: under SMELT_ISA=scalar, avx2 and avx512 (each
# level this CPU has; the rest are reported as skipped) smelt writes byte-identical GGUFs of
# tiny-llama-kjv (convert bf16 -> f16 and f32 -> bf16: the casts; quantize of the HF
# directory to Q4_K_M and of the f16 GGUF to Q5_1: the k-quant and legacy codecs), and
# `smelt ppl` of the Q4_K_M file agrees across ISAs (the float kernels sum in other orders,
# so agreement is to rounding: within 1e-5 relative) and is bit-identical for 1 and 2
# threads on each ISA; and ppl --int-dot / generate (integer dots) the same for 1 and 2 threads
# on each ISA and within 1% across ISAs. Exits 77 (skipped) where the CPU has only the scalar level.
. "$(dirname "$0")/testlib.sh"
TOKENS=$KJV/reference/tokens_eval.txt
need_assets "$KJV/config.json" "$KJV/f32/config.json" "$TOKENS"
export OMP_WAIT_POLICY=passive SMELT_NO_PROGRESS=1

# which levels the CPU has: `smelt --version` names the ISA in use and the CPU's best
best=$(env -u SMELT_ISA "$SMELT" --version | sed -n 's/^isa .*(cpu: \([a-z0-9]*\))$/\1/p')
case "$best" in
  avx512) isas="scalar avx2 avx512" ;;
  avx2) isas="scalar avx2"; echo "avx512: skipped (the CPU lacks it)" ;;
  scalar) echo "avx2, avx512: skipped (the CPU lacks them); nothing to compare"; exit 77 ;;
  *) echo "FAIL: smelt --version does not name the CPU's ISA" >&2; exit 1 ;;
esac
echo "ISAs compared: $isas"
for isa in $isas; do
  got=$(SMELT_ISA=$isa "$SMELT" --version | sed -n 's/^isa \([a-z0-9]*\) .*/\1/p')
  [ "$got" = "$isa" ] || fail "SMELT_ISA=$isa runs on '$got'"
done

# ---- GGUF bytes
for isa in $isas; do
  export SMELT_ISA=$isa
  "$SMELT" convert "$KJV" -o "$TMP/f16.$isa.gguf" --outtype f16 --quiet 2>"$TMP/err" || { fail "$isa: convert f16"; cat "$TMP/err" >&2; }
  "$SMELT" convert "$KJV/f32" -o "$TMP/bf16.$isa.gguf" --outtype bf16 --quiet 2>"$TMP/err" || { fail "$isa: convert bf16"; cat "$TMP/err" >&2; }
  "$SMELT" quantize "$KJV" "$TMP/q4km.$isa.gguf" Q4_K_M --quiet 2>"$TMP/err" || { fail "$isa: quantize Q4_K_M"; cat "$TMP/err" >&2; }
  "$SMELT" quantize "$TMP/f16.$isa.gguf" "$TMP/q51.$isa.gguf" Q5_1 --quiet 2>"$TMP/err" || { fail "$isa: quantize Q5_1"; cat "$TMP/err" >&2; }
  unset SMELT_ISA
done
for f in f16 bf16 q4km q51; do
  for isa in $isas; do
    [ "$isa" = scalar ] && continue
    cmp -s "$TMP/$f.scalar.gguf" "$TMP/$f.$isa.gguf" && echo "$f: $isa = scalar, $(stat -c %s "$TMP/$f.scalar.gguf") bytes" ||
      fail "$f: the $isa GGUF differs from the scalar one ($(cmp "$TMP/$f.scalar.gguf" "$TMP/$f.$isa.gguf" 2>&1 | head -1))"
  done
done

# ---- perplexity
ref=
for isa in $isas; do
  for t in 1 2; do
    SMELT_ISA=$isa "$SMELT" ppl "$TMP/q4km.scalar.gguf" --tokens "$TOKENS" --ctx 128 --chunks 4 --threads $t --json \
      > "$TMP/p.$isa.$t.json" 2> "$TMP/err" || { fail "$isa: ppl exited $?"; cat "$TMP/err" >&2; }
  done
  p1=$(json_num "$TMP/p.$isa.1.json" ppl) p2=$(json_num "$TMP/p.$isa.2.json" ppl)
  echo "ppl $isa: $p1 (1 thread), $p2 (2 threads)"
  [ "$p1" = "$p2" ] || fail "$isa: ppl differs between 1 and 2 threads: $p1 vs $p2"
  [ -n "$ref" ] || ref=$p1
  awk -v a="$p1" -v b="$ref" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(a > 0 && d < 1e-5) }' ||
    fail "ppl on $isa $p1, on scalar $ref (more than 1e-5 apart)"
done

# ---- one token at a time with 8-bit activations and integer dots (ppl --int-dot --batch 1, and
# generate's default): the integer products give the same bits on every ISA (test_qdot), so a
# run is bit-identical for any thread count; across ISAs the float kernels' rounding reaches the
# 8-bit roundings (a value at x.5 flips, and every later token sees it), so ISAs agree to 1%
iref=
for isa in $isas; do
  ptok= gtok=
  for t in 1 2; do
    SMELT_ISA=$isa "$SMELT" ppl "$TMP/q4km.scalar.gguf" --tokens "$TOKENS" --ctx 64 --chunks 2 --batch 1 --int-dot \
      --threads $t --json > "$TMP/i.json" 2> "$TMP/err" || { fail "$isa: ppl --int-dot exited $?"; cat "$TMP/err" >&2; }
    SMELT_ISA=$isa "$SMELT" generate "$TMP/q4km.scalar.gguf" -p "In the beginning" -n 24 --ignore-eos --ids \
      --threads $t --quiet > "$TMP/g.txt" 2> "$TMP/err" || { fail "$isa: generate exited $?"; cat "$TMP/err" >&2; }
    p=$(json_num "$TMP/i.json" ppl) g=$(tr '\n' ' ' < "$TMP/g.txt")
    [ -n "$ptok" ] || { ptok=$p gtok=$g; echo "ppl --int-dot --batch 1 on $isa: $p; generated ids: $g"; }
    [ "$p" = "$ptok" ] || fail "ppl --int-dot on $isa: $p with $t threads, $ptok with 1"
    [ "$g" = "$gtok" ] || fail "generate on $isa: ids $g with $t threads, $gtok with 1"
  done
  [ -n "$iref" ] || iref=$ptok
  awk -v a="$ptok" -v b="$iref" 'BEGIN { d = (a - b) / b; if (d < 0) d = -d; exit !(a > 0 && d < 0.01) }' ||
    fail "ppl --int-dot on $isa $ptok, on scalar $iref (more than 1% apart)"
done

[ "$fails" = 0 ] && echo "test_isa: all passed" || echo "test_isa: $fails failure(s)" >&2
exit $((fails > 0))
