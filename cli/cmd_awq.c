/* cmd_awq.c - `smelt awq MODEL --calib F --to gguf:RECIPE -o OUT`: activation-aware weight
 * quantization (AWQ), one decoder block at a time over a calibration set (the calibration pass
 * and options of `smelt gptq`, which runs it: cli_gptq_main). */
#include "cli.h"

static const char USAGE[] =
    "usage: smelt awq MODEL --calib FILE --to gguf:RECIPE -o OUT [options]\n"
    "\n"
    "AWQ (Lin et al.) over a whole model, one decoder block at a time. For each block, the\n"
    "calibration samples' activations give every linear input its Hessian and its mean |x| per\n"
    "channel; for each group of linears sharing an input (q/k/v, o, gate/up, down) the scales\n"
    "s = mean|x|^alpha (alpha = 0, 1/20, ..., 19/20) are tried, the weights times s quantized in\n"
    "the type the recipe gives them, and the s with the least output error kept; 1/s is folded\n"
    "into what feeds that input (attn_norm, v's rows, ffn_norm, up's rows), so the float model\n"
    "computes the same function. o is skipped under grouped-query attention (v's rows are not\n"
    "o's columns), as AutoAWQ does. Then each linear but q and k gets AWQ's clip search (each\n"
    "32-column group clamped to max * (1 - i/20), i < 10, the least output error kept), and the\n"
    "scaled weights are rounded to the target grid with diag(H)/s^2 as importance (llama.cpp's\n"
    "weighted rounding) or, with --gptq, quantized by GPTQ. The output is an ordinary GGUF with\n"
    "llama.cpp's mixture, as smelt gptq --to gguf writes.\n"
    "\n"
    "MODEL: a Hugging Face directory or an F32/F16/BF16 GGUF (as for smelt gptq).\n"
    "\n"
    "  --to gguf:RECIPE    RECIPE as in smelt quantize (Q4_K_M, Q4_0, ...). (--to hf, AutoAWQ\n"
    "                      checkpoints, is not implemented yet and refused.)\n"
    "  --calib FILE, -f    calibration text; --samples N (default 128), --seqlen N (default 2048,\n"
    "                      at most the model's context), --in-order, --seed N: as in smelt gptq\n"
    "  --gptq              GPTQ on the scaled weights instead of rounding to nearest (the same as\n"
    "                      smelt gptq --awq; GPTQ's options --damp, --block, --no-true-sequential,\n"
    "                      --no-importance apply)\n"
    "  --awq-grid N        alpha points (default 20); the clip search uses the same step\n"
    "  --awq-alpha X       use alpha X in [0, 1] for every group, no search (for tests)\n"
    "  --no-clip           skip the clip search\n"
    "  --no-loss           skip the loss report\n"
    "  --device cpu|cuda   cuda: each block's forward passes over the samples and the statistics\n"
    "                      (every input's Hessian and mean |x|) run on the GPU, as smelt gptq\n"
    "                      --device cuda; the scale and clip searches (their fake quantization and\n"
    "                      loss evaluations) and the rounding stay on the CPU. Equal to the CPU's\n"
    "                      up to the Hessians' rounding\n"
    "  -o, --outfile PATH  the output GGUF\n"
    "  -t, --threads N     threads (default: all cores, or SMELT_THREADS)\n"
    "  --json              one JSON report on stdout (fields: docs/json.md, section awq)\n"
    "  --quiet, -q         no progress lines, no summary line\n"
    "  --no-sync           skip the final fsync of the output\n";

static int run(int argc, char **argv) { return cli_gptq_main(&sm_cmd_awq, true, argc, argv); }

const sm_command sm_cmd_awq = {"awq", "AWQ quantization over a calibration text (GGUF)", USAGE, run};
