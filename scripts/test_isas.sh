#!/usr/bin/env bash
# test_isas.sh [BUILD_DIR] - the ISA-dependent tests once per instruction-set level below the
# one the full suite (scripts/test.sh) ran on (SMELT_ISA=scalar, avx2), saying which levels
# ran and which were skipped because the CPU lacks them.
# SMELT_ISA_TESTS overrides the ctest -R pattern.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-${SMELT_BUILD_DIR:-build}}
pattern=${SMELT_ISA_TESTS:-'^(test_runtime|test_kernels|test_codecs|test_gptq|test_quantize|test_convert_cast|test_ppl_sh|test_default_model_sh)$'}
# the level the full suite ran on (SMELT_ISA, if set, caps it: e.g. SMELT_ISA=avx2 plays an
# AVX2-only machine) and the CPU's best
ver=$("$build/smelt" --version)
best=$(sed -n 's/^isa \([a-z0-9]*\) .*/\1/p' <<<"$ver")
hw=$(sed -n 's/^isa .*(cpu: \([a-z0-9]*\))$/\1/p' <<<"$ver")
[ -n "$best" ] && [ -n "$hw" ] || { echo "test_isas: $build/smelt --version does not name the ISA" >&2; exit 1; }
lower="" skipped=""
for isa in scalar avx2 avx512; do
  if [ "$isa" = "$best" ]; then seen=1; continue; fi
  if [ -z "${seen:-}" ]; then lower="$lower $isa"; continue; fi
  if [ "$hw" = avx512 ] || { [ "$hw" = avx2 ] && [ "$isa" = avx2 ]; }; then
    skipped="$skipped $isa (SMELT_ISA=${SMELT_ISA:-} caps the run)"
  else
    skipped="$skipped $isa (the CPU lacks it)"
  fi
done
lower=${lower# } skipped=${skipped# }
echo "== ISA levels: the full suite ran on $best (the CPU's best: $hw); per-level runs: ${lower:-none}; skipped: ${skipped:-none}"
for isa in $lower; do
  got=$(SMELT_ISA=$isa "$build/smelt" --version | sed -n 's/^isa \([a-z0-9]*\) .*/\1/p')
  [ "$got" = "$isa" ] || { echo "test_isas: SMELT_ISA=$isa runs on '$got'" >&2; exit 1; }
  echo "== tests with SMELT_ISA=$isa"
  (cd "$build" && SMELT_ISA=$isa ctest --output-on-failure --no-tests=error -j"$(nproc)" -R "$pattern")
done
echo "== ISA levels run: $best (full suite)${lower:+, $lower}; skipped: ${skipped:-none}"
