/* cmd_lora.c - `smelt lora merge` and `smelt lora export`. */
#include "cli.h"

#include "convert/convert.h"
#include "formats/formats.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt lora merge BASE_DIR --adapter DIR[:WEIGHT] [--adapter ...] -o OUT_DIR [--outtype f32|f16|bf16] [--allow-nonfinite]\n"
    "       smelt lora export ADAPTER_DIR --base BASE_DIR -o ADAPTER.gguf\n"
    "\n"
    "common options: -o/--outfile, -t/--threads N, --json (report on stdout, docs/json.md),\n"
    "--quiet/-q (no progress, no summary), --no-sync. merge: --outtype (--dtype is an alias).\n"
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
    cli_common com = {0};
    cli_list adapters = {0};
    const char *outtype = NULL;
    bool allow_nonfinite = false;
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com),
        {"--adapter --lora", CLI_LIST, &adapters, 0, 0, NULL},
        {"--outtype --dtype", CLI_STR, &outtype, 0, 0, NULL},
        {"--allow-nonfinite", CLI_FLAG, &allow_nonfinite, 0, 0, NULL},
        {0},
    };
    const char *pos[1];
    int npos = 0;
    sm_type dtype = SM_TYPE_INVALID;
    sm_lora **ads = NULL;
    size_t n = 0;
    int rc = cli_parse(&sm_cmd_lora, "lora merge", argc, argv, opts, pos, 1, &npos);
    if (rc) goto done;
    const char *base = npos ? pos[0] : NULL, *out = com.out;
    if (!base || !out || !adapters.n) {
        rc = cli_usage_error(&sm_cmd_lora, "merge needs BASE_DIR, at least one --adapter and -o OUT_DIR");
        goto done;
    }
    if (outtype) {
        dtype = sm_type_from_name(outtype);
        if (dtype != SM_TYPE_F32 && dtype != SM_TYPE_F16 && dtype != SM_TYPE_BF16) {
            rc = cli_usage_error(&sm_cmd_lora, "--outtype expects f32, f16 or bf16, got '%s'", outtype);
            goto done;
        }
    }
    for (size_t i = 0; i < adapters.n; i++)
        if ((rc = cli_lora_spec(&sm_cmd_lora, adapters.v[i]))) goto done;
    cli_common_apply(&com);
    if (allow_nonfinite) sm_set_allow_nonfinite(true);
    const double t0 = sm_now();
    if (!(ads = calloc(adapters.n, sizeof *ads))) { rc = cli_fail("lora merge", "out of memory"); goto done; }
    for (; n < adapters.n; n++)
        if (sm_lora_open(adapters.v[n], &ads[n])) { rc = cli_fail_last("lora merge"); goto done; }
    {
        const char **inputs = calloc(n + 1, sizeof *inputs);
        if (!inputs) { rc = cli_fail("lora merge", "out of memory"); goto done; }
        inputs[0] = base;
        for (size_t k = 0; k < n; k++) inputs[1 + k] = sm_lora_path(ads[k]);
        rc = cli_check_output("lora merge", "-o", out, true, inputs, n + 1);
        free(inputs);
        if (rc) goto done;
    }
    if (sm_sniff_expect(base, SM_FILE_BIT(SM_FILE_HF_DIR), "the base model's Hugging Face directory", NULL)) {
        rc = cli_fail_last("lora merge");
        goto done;
    }
    if (sm_lora_merge_hf(base, ads, n, out, dtype, com.quiet)) { rc = cli_fail_last("lora merge"); goto done; }
    if (com.json) {
        const char *ins[1 + 64] = {base};
        size_t n_in = 1;
        for (size_t i = 0; i < adapters.n && n_in < 65; i++) ins[n_in++] = adapters.v[i];
        cJSON *j = cli_report_new("lora merge", ins, n_in, out);
        cJSON_AddNumberToObject(j, "n_adapters", (double)n);
        cJSON_AddStringToObject(j, "outtype", dtype == SM_TYPE_INVALID ? "auto" : sm_type_name(dtype));
        cJSON_AddNumberToObject(j, "seconds", sm_now() - t0);
        cli_report_print(j, out);
    } else if (!com.quiet) {
        char b1[32], b2[32];
        cli_summary("lora merge", out, sm_now() - t0, "%s merged, %s", cli_count(b1, sizeof b1, (long long)n, "adapter"),
                    cli_bytes(b2, sizeof b2, (double)cli_path_bytes(out)));
    }
    rc = 0;
done:
    for (size_t k = 0; k < n; k++) sm_lora_close(ads[k]);
    free(ads);
    cli_list_free(&adapters);
    return rc;
}

static int export_gguf(int argc, char **argv) {
    cli_common com = {0};
    const char *base = NULL;
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com),
        {"--base", CLI_STR, &base, 0, 0, NULL},
        {0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(&sm_cmd_lora, "lora export", argc, argv, opts, pos, 1, &npos);
    if (rc) return rc;
    const char *adapter = npos ? pos[0] : NULL, *out = com.out;
    if (!adapter || !base || !out) return cli_usage_error(&sm_cmd_lora, "export needs ADAPTER_DIR, --base BASE_DIR and -o OUT.gguf");
    const char *inputs[] = {adapter, base};
    const int orc = cli_check_output("lora export", "-o", out, false, inputs, 2);
    if (orc) return orc;
    if (sm_sniff_expect(base, SM_FILE_BIT(SM_FILE_HF_DIR), "the base model's Hugging Face directory", NULL))
        return cli_fail_last("lora export");
    cli_common_apply(&com);
    const double t0 = sm_now();
    sm_lora *l;
    if (sm_lora_open(adapter, &l)) return cli_fail_last("lora export");
    rc = sm_lora_export_gguf(base, l, out, NULL);
    sm_lora_close(l);
    if (rc) return cli_fail_last("lora export");
    if (com.json) {
        const char *ins[2] = {adapter, base};
        cJSON *j = cli_report_new("lora export", ins, 2, out);
        cJSON_AddNumberToObject(j, "seconds", sm_now() - t0);
        cli_report_print(j, out);
    } else if (!com.quiet) {
        char b[32];
        cli_summary("lora export", out, sm_now() - t0, "llama.cpp LoRA adapter, %s", cli_bytes(b, sizeof b, (double)cli_path_bytes(out)));
    }
    return 0;
}

static int run(int argc, char **argv) {
    if (argc < 2) return cli_usage_error(&sm_cmd_lora, "expected 'merge' or 'export'");
    if (!strcmp(argv[1], "merge")) return merge(argc - 1, argv + 1);
    if (!strcmp(argv[1], "export")) return export_gguf(argc - 1, argv + 1);
    static const char *const SUB[] = {"merge", "export", NULL};
    const char *s = cli_closest(argv[1], SUB);
    return cli_usage_error(&sm_cmd_lora, "unknown lora command '%s'%s%s%s", argv[1], s ? " (did you mean '" : "",
                           s ? s : "", s ? "'?)" : "");
}

const sm_command sm_cmd_lora = {"lora", "merge PEFT LoRA adapters, or export them for llama.cpp", USAGE, run};
