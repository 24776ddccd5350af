#!/usr/bin/env bash
# GPTQ acceptance run: tiny-llama-kjv (F32 GGUF), calibrated on kjv-calib.txt, evaluated on
# kjv-eval.txt at ctx 256 against the F32 model. For each grid (Q4_0, Q4_K_M) it compares
#   rtn     smelt quantize without importance weights (bytes identical to llama-quantize's)
#   imatrix llama-quantize --imatrix with llama-imatrix's matrix of the calibration text
#           (needs LLAMA_CPP_BIN; without it smelt imatrix + smelt quantize, same bytes)
#   gptq    smelt gptq --to gguf:RECIPE
# by KLD and delta-ppl in smelt's validator (smelt ppl --kld) and, with LLAMA_CPP_BIN, in
# llama-perplexity --kl-divergence. Prints a markdown table. It is scripts/awq_acceptance.sh
# with those three methods.
#
# usage: scripts/gptq_acceptance.sh [F32.gguf]   (default: smelt convert of the f32 checkpoint)
# env: LLAMA_CPP_BIN (llama.cpp's bin dir), SMELT_BIN, SMELT_ASSETS, GPTQ_ARGS (extra smelt gptq
#      options, default "--samples 112 --seqlen 256 --in-order"), THREADS, KEEP (work dir kept),
#      RECIPES, WORK (see awq_acceptance.sh)
set -euo pipefail
export CALIB_ARGS=${GPTQ_ARGS:---samples 112 --seqlen 256 --in-order}
export METHODS=${METHODS:-rtn imatrix gptq}
exec "$(dirname "$0")/awq_acceptance.sh" "$@"
