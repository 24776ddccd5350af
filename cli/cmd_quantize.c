/* cmd_quantize.c - `smelt quantize IN OUT TYPE|RECIPE`: GGUF -> quantized GGUF. */
#include "cli.h"

#include "convert/convert.h"
#include "formats/formats.h"
#include "quantize/quantize.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt quantize IN OUT.gguf TYPE [options]\n"
    "\n"
    "Quantize with ggml-compatible codecs and llama.cpp's mixtures. IN is an F32/F16/BF16 GGUF, or\n"
    "a Hugging Face model directory (converted and quantized in one streaming pass).\n"
    "TYPE is a recipe: Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K_S, Q4_K_M,\n"
    "Q5_K_S, Q5_K_M, Q6_K, Q8_0, IQ4_NL, IQ4_XS, F16, BF16, F32 (Q4_K = Q4_K_M, ...).\n"
    "\n"
    "options:\n"
    "  --imatrix FILE              importance matrix (llama.cpp GGUF or legacy .dat)\n"
    "  --tensor-type REGEX=TYPE    tensors whose name matches REGEX get TYPE (repeatable)\n"
    "  --keep REGEX                leave matching tensors in source precision (repeatable)\n"
    "  --output-tensor-type TYPE   type of output.weight\n"
    "  --token-embedding-type TYPE type of token_embd.weight\n"
    "  --pure                      no mixture: TYPE for every quantizable tensor\n"
    "  --allow-requantize          accept an already-quantized input\n"
    "  --lora DIR[:WEIGHT]         merge a PEFT LoRA adapter on the fly (HF input; repeatable)\n"
    "  --threads N                 worker threads (output is identical for any N)\n"
    "  --no-sync                   skip the final fsync (the file still appears only complete)\n"
    "  --allow-nonfinite           keep NaN/Inf weights in tensors left in a float type (default:\n"
    "                              refused, naming tensor, row and column; codecs always refuse them)\n"
    "  --json                      print a JSON summary on stdout\n"
    "  --quiet                     no progress bar\n";

static int quantize(int argc, char **argv, const char **tt, const char **keep, sm_lora **loras);

static int run(int argc, char **argv) {
    const char **tt = calloc((size_t)argc, sizeof *tt), **keep = calloc((size_t)argc, sizeof *keep);
    sm_lora **loras = calloc((size_t)argc, sizeof *loras);
    int rc = tt && keep && loras ? quantize(argc, argv, tt, keep, loras) : cli_fail("quantize", "out of memory");
    for (int i = 0; loras && i < argc && loras[i]; i++) sm_lora_close(loras[i]);
    free(loras);
    free(tt);
    free(keep);
    return rc;
}

/* HF directory in: convert and quantize in one pass. */
static int from_checkpoint(const char *in, const char *out, const sm_quantize_opts *q, sm_lora **loras, size_t n_loras,
                           sm_quantize_report *rep) {
    sm_convert_opts c = {.quiet = q->quiet, .quant = q, .loras = loras, .n_loras = n_loras};
    sm_convert_report cr = {0};
    if (sm_convert(in, out, &c, &cr)) return -1;
    memset(rep, 0, sizeof *rep);
    rep->n_tensors = cr.n_tensors;
    rep->n_params = cr.n_params;
    rep->bytes_in = cr.bytes_in;
    rep->bytes_out = cr.tensor_bytes; /* as sm_quantize_gguf counts it */
    rep->seconds = cr.seconds;
    rep->n_quantized = cr.n_quantized;
    rep->n_fallback = cr.n_fallback;
    memcpy(rep->n_by_type, cr.n_by_type, sizeof rep->n_by_type);
    return 0;
}

static int quantize(int argc, char **argv, const char **tt, const char **keep, sm_lora **loras) {
    size_t n_loras = 0;
    const char *pos[3] = {0};
    int npos = 0;
    bool json = false;
    sm_quantize_opts o = {0};
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (cli_opt(argc, argv, &i, "--imatrix", &v)) o.imatrix_path = v;
        else if (cli_opt(argc, argv, &i, "--lora", &v)) {
            if (sm_lora_open(v, &loras[n_loras])) return cli_fail_last("quantize");
            n_loras++;
        }
        else if (cli_opt(argc, argv, &i, "--tensor-type", &v)) tt[o.n_tensor_types++] = v;
        else if (cli_opt(argc, argv, &i, "--keep", &v)) keep[o.n_keep++] = v;
        else if (cli_opt(argc, argv, &i, "--output-tensor-type", &v)) o.output_type = v;
        else if (cli_opt(argc, argv, &i, "--token-embedding-type", &v)) o.token_embd_type = v;
        else if (cli_opt(argc, argv, &i, "--threads", &v)) {
            cli_set_threads((int)cli_long("--threads", v, 1, 4096));
        } else if (cli_flag(argv, &i, "--pure")) o.pure = true;
        else if (cli_flag(argv, &i, "--allow-requantize")) o.allow_requantize = true;
        else if (cli_flag(argv, &i, "--json")) json = true;
        else if (cli_flag(argv, &i, "--no-sync")) sm_outfile_set_durable(false);
        else if (cli_flag(argv, &i, "--allow-nonfinite")) sm_set_allow_nonfinite(true);
        else if (cli_flag(argv, &i, "--quiet")) o.quiet = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error(&sm_cmd_quantize, "unknown option %s", argv[i]);
        else if (npos < 3) pos[npos++] = argv[i];
        else return cli_usage_error(&sm_cmd_quantize, "too many arguments");
    }
    if (npos != 3) return cli_usage_error(&sm_cmd_quantize, "expected IN OUT TYPE");
    o.recipe = pos[2];
    o.tensor_types = tt;
    o.keep = keep;
    if (!sm_recipe_find(o.recipe))
        return cli_usage_error(&sm_cmd_quantize, "unknown quantization '%s' (one of: %s)", o.recipe, sm_recipe_names());
    if (sm_sniff_expect(pos[0], SM_FILE_BIT(SM_FILE_GGUF) | SM_FILE_BIT(SM_FILE_HF_DIR),
                        "an F32/F16/BF16 GGUF or a Hugging Face model directory", NULL))
        return cli_fail_last("quantize");
    const char **inputs = calloc(n_loras + 2, sizeof *inputs);
    if (!inputs) return cli_fail("quantize", "out of memory");
    inputs[0] = pos[0];
    inputs[1] = o.imatrix_path;
    for (size_t k = 0; k < n_loras; k++) inputs[2 + k] = sm_lora_path(loras[k]);
    const int orc = cli_check_output("quantize", "OUT", pos[1], false, inputs, n_loras + 2);
    free(inputs);
    if (orc) return orc;
    if (json) o.quiet = true;
    sm_quantize_report rep;
    if (sm_is_dir(pos[0])) {
        if (from_checkpoint(pos[0], pos[1], &o, loras, n_loras, &rep)) return cli_fail_last("quantize");
    } else if (n_loras) {
        return cli_fail("quantize", "--lora needs the Hugging Face checkpoint as input (for a GGUF base, "
                                    "export the adapter with smelt lora export and load it in llama.cpp)");
    } else if (sm_quantize_gguf(pos[0], pos[1], &o, &rep)) {
        return cli_fail_last("quantize");
    }
    double bpw = rep.n_params ? 8.0 * (double)rep.bytes_out / (double)rep.n_params : 0;
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", pos[1]);
        cJSON_AddStringToObject(j, "recipe", sm_recipe_find(o.recipe)->name);
        cJSON_AddNumberToObject(j, "n_tensors", (double)rep.n_tensors);
        cJSON_AddNumberToObject(j, "n_quantized", (double)rep.n_quantized);
        cJSON_AddNumberToObject(j, "n_fallback", (double)rep.n_fallback);
        cJSON_AddNumberToObject(j, "n_params", (double)rep.n_params);
        cJSON_AddNumberToObject(j, "bytes_in", (double)rep.bytes_in);
        cJSON_AddNumberToObject(j, "bytes_out", (double)rep.bytes_out);
        cJSON_AddNumberToObject(j, "bpw", bpw);
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cJSON *types = cJSON_AddObjectToObject(j, "tensor_types");
        for (int t = 0; t < SM_TYPE_GGML_COUNT; t++)
            if (rep.n_by_type[t]) cJSON_AddNumberToObject(types, sm_type_name((sm_type)t), (double)rep.n_by_type[t]);
        cli_print_json(j);
    } else {
        fprintf(stderr, "smelt quantize: %s -> %s: %lld tensors (%lld quantized, %lld fallbacks), %.2f MiB -> %.2f MiB, %.2f bpw, %.2fs\n",
                pos[0], pos[1], (long long)rep.n_tensors, (long long)rep.n_quantized, (long long)rep.n_fallback,
                (double)rep.bytes_in / 1048576.0, (double)rep.bytes_out / 1048576.0, bpw, rep.seconds);
    }
    return 0;
}

const sm_command sm_cmd_quantize = {"quantize", "quantize a GGUF (k-quants, legacy, IQ4) with llama.cpp's mixtures", USAGE, run};
