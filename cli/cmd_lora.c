/* cmd_lora.c - `smelt lora merge` and `smelt lora export`. */
#include "cli.h"

#include "convert/convert.h"
#include "formats/formats.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt lora merge BASE_DIR --adapter DIR[:WEIGHT] [--adapter ...] -o OUT_DIR [--dtype f32|f16|bf16] [--allow-nonfinite] [--quiet]\n"
    "       smelt lora export ADAPTER_DIR --base BASE_DIR -o ADAPTER.gguf\n"
    "\n"
    "merge:  W' = W + weight * scale * B A for every adapted module (PEFT: r, lora_alpha, use_rslora,\n"
    "        rank_pattern/alpha_pattern, fan_in_fan_out, use_dora, modules_to_save), written as an\n"
    "        HF directory (safetensors in the base dtype or --dtype; config and tokenizer copied),\n"
    "        built beside OUT_DIR and renamed into place; an existing OUT_DIR is replaced only if it\n"
    "        holds nothing but files smelt writes there. OUT_DIR must not be or hold an input.\n"
    "        NaN/Inf in a base weight or in a merged one is refused (naming tensor, row, column)\n"
    "        unless --allow-nonfinite.\n"
    "export: llama.cpp's GGUF LoRA adapter (load with llama.cpp's --lora); rsLoRA and patterns are\n"
    "        folded into lora_b; DoRA and modules_to_save cannot be expressed there and are refused.\n";

static int merge(int argc, char **argv) {
    const char *base = NULL, *out = NULL, *v;
    sm_type dtype = SM_TYPE_INVALID;
    bool quiet = false;
    sm_lora **ads = calloc((size_t)argc, sizeof *ads);
    size_t n = 0;
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        if (cli_opt(argc, argv, &i, "--adapter", &v)) {
            if (sm_lora_open(v, &ads[n])) { rc = cli_fail_last("lora merge"); goto done; }
            n++;
        } else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--dtype", &v)) {
            dtype = sm_type_from_name(v);
            if (dtype != SM_TYPE_F32 && dtype != SM_TYPE_F16 && dtype != SM_TYPE_BF16) {
                rc = cli_usage_error(&sm_cmd_lora, "--dtype must be f32, f16 or bf16");
                goto done;
            }
        } else if (cli_flag(argv, &i, "--quiet")) quiet = true;
        else if (cli_flag(argv, &i, "--allow-nonfinite")) sm_set_allow_nonfinite(true);
        else if (argv[i][0] == '-') { rc = cli_usage_error(&sm_cmd_lora, "unknown option %s", argv[i]); goto done; }
        else if (!base) base = argv[i];
        else { rc = cli_usage_error(&sm_cmd_lora, "unexpected argument %s", argv[i]); goto done; }
    }
    if (!base || !out || !n) { rc = cli_usage_error(&sm_cmd_lora, "merge needs BASE_DIR, at least one --adapter and -o OUT_DIR"); goto done; }
    const char **inputs = calloc(n + 1, sizeof *inputs);
    if (!inputs) { rc = cli_fail("lora merge", "out of memory"); goto done; }
    inputs[0] = base;
    for (size_t k = 0; k < n; k++) inputs[1 + k] = sm_lora_path(ads[k]);
    rc = cli_check_output("lora merge", "-o", out, true, inputs, n + 1);
    free(inputs);
    if (rc) goto done;
    if (sm_sniff_expect(base, SM_FILE_BIT(SM_FILE_HF_DIR), "the base model's Hugging Face directory", NULL)) {
        rc = cli_fail_last("lora merge");
        goto done;
    }
    if (sm_lora_merge_hf(base, ads, n, out, dtype, quiet)) { rc = cli_fail_last("lora merge"); goto done; }
    if (!quiet) fprintf(stderr, "smelt lora merge: %zu adapter(s) merged into %s\n", n, out);
    rc = 0;
done:
    for (size_t k = 0; k < n; k++) sm_lora_close(ads[k]);
    free(ads);
    return rc;
}

static int export_gguf(int argc, char **argv) {
    const char *adapter = NULL, *base = NULL, *out = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if (cli_opt(argc, argv, &i, "--base", &v)) base = v;
        else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) out = v;
        else if (argv[i][0] == '-') return cli_usage_error(&sm_cmd_lora, "unknown option %s", argv[i]);
        else if (!adapter) adapter = argv[i];
        else return cli_usage_error(&sm_cmd_lora, "unexpected argument %s", argv[i]);
    }
    if (!adapter || !base || !out) return cli_usage_error(&sm_cmd_lora, "export needs ADAPTER_DIR, --base BASE_DIR and -o OUT.gguf");
    const char *inputs[] = {adapter, base};
    const int orc = cli_check_output("lora export", "-o", out, false, inputs, 2);
    if (orc) return orc;
    if (sm_sniff_expect(base, SM_FILE_BIT(SM_FILE_HF_DIR), "the base model's Hugging Face directory", NULL))
        return cli_fail_last("lora export");
    sm_lora *l;
    if (sm_lora_open(adapter, &l)) return cli_fail_last("lora export");
    int rc = sm_lora_export_gguf(base, l, out);
    sm_lora_close(l);
    return rc ? cli_fail_last("lora export") : 0;
}

static int run(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(&sm_cmd_lora, "expected 'merge' or 'export'");
    if (!strcmp(argv[1], "merge")) return merge(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export")) return export_gguf(argc - 1, argv + 1);
    return cli_usage_error(&sm_cmd_lora, "unknown lora command '%s'", argv[1]);
}

const sm_command sm_cmd_lora = {"lora", "merge PEFT LoRA adapters, or export them for llama.cpp", USAGE, run};
