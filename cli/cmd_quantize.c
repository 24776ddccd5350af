/* cmd_quantize.c - `smelt quantize IN OUT TYPE|RECIPE`: GGUF -> quantized GGUF. */
#include "cli.h"

#include "calib/calib.h"
#include "convert/convert.h"
#include "mixture.h"
#include "formats/formats.h"
#include "quantize/quantize.h"
#include "release/release.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt quantize IN OUT.gguf TYPE [NTHREADS] [options]\n"
    "       smelt quantize IN TYPE -o OUT.gguf [options]\n"
    "       smelt quantize IN OUT.gguf [TYPE] --target-bpw B --calib TEXT [options]\n"
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
    "  -t, --threads N             worker threads (output is identical for any N; a trailing\n"
    "                              NTHREADS, as llama-quantize takes it, means the same)\n"
    "  -o, --outfile PATH          the output, in place of the second argument\n"
    "  --split-max-size N[K|M|G]   write a split set (llama-gguf-split's layout: OUT without .gguf,\n"
    "                              -00001-of-0000N.gguf, ...), at most N bytes of tensor data each\n"
    "  --split-max-tensors N       the same, at most N tensors per file\n"
    "  --level N                   a .smelt output (OUT named *.smelt): zstd level 1..19 (default 3)\n"
    "  --raw                       a .smelt output stored uncompressed (aligned, mapped zero-copy)\n"
    "  --manifest FILE             record the output, its sources, recipe and method in the\n"
    "                              release manifest FILE (docs/manifest.md)\n"
    "  --no-sync                   skip the final fsync (the file still appears only complete)\n"
    "  --allow-nonfinite           keep NaN/Inf weights in tensors left in a float type (default:\n"
    "                              refused, naming tensor, row and column; codecs always refuse them)\n"
    "\n"
    "size-targeted mixtures (IN: an F32/F16/BF16 GGUF):\n"
    "  --target-bpw B              choose each tensor's type (Q2_K..Q6_K, Q8_0; Q4_0/Q5_0/Q8_0 for\n"
    "                              rows not a multiple of 256) to minimise the predicted loss at B\n"
    "                              bits per weight (8 x tensor bytes / parameters, llama.cpp's BPW)\n"
    "  --target-size S             the same for a file of S bytes (4.2G, 300M: binary units;\n"
    "                              4.2GB: decimal)\n"
    "  --calib FILE                calibration text for the sensitivities (needed by both)\n"
    "  --sensitivity kld|imatrix   kld (default): each tensor's KL divergence measured with only it\n"
    "                              at Q2_K, scaled across types by the imatrix-weighted squared\n"
    "                              error; imatrix: that error alone (no model passes, cruder)\n"
    "  --probe-ctx N, --probe-chunks N  calibration chunks evaluated (default 512 x 8)\n"
    "  TYPE is then only the file type recorded (default: from the most common chosen type); the\n"
    "  choice goes into the metadata (smelt.mixture.*) and is printed as a table\n"
    "  --json                      print a JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q                 no progress bar, no summary line\n";

/* HF directory in: convert and quantize in one pass. */
static int from_checkpoint(const char *in, const char *out, const sm_quantize_opts *q, sm_lora **loras, size_t n_loras,
                           sm_quantize_report *rep) {
    sm_convert_opts c = {.quiet = q->quiet, .quant = q, .loras = loras, .n_loras = n_loras, .sink = q->sink};
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

static int run(int argc, char **argv) {
    cli_common com = {0};
    cli_output oo = {0};
    cli_list lora = {0}, tt = {0}, keep = {0};
    sm_quantize_opts o = {0};
    bool allow_nonfinite = false;
    double target_bpw = 0;
    const char *target_size = NULL, *sensitivity = "kld";
    sm_target_opts to = {0};
    sm_target_plan plan = {0};
    long probe_ctx = 512, probe_chunks = 8;
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com),
        {"--imatrix", CLI_STR, &o.imatrix_path, 0, 0, NULL},
        {"--lora", CLI_LIST, &lora, 0, 0, NULL},
        {"--tensor-type", CLI_LIST, &tt, 0, 0, NULL},
        {"--keep", CLI_LIST, &keep, 0, 0, NULL},
        {"--output-tensor-type", CLI_STR, &o.output_type, 0, 0, NULL},
        {"--token-embedding-type", CLI_STR, &o.token_embd_type, 0, 0, NULL},
        {"--pure", CLI_FLAG, &o.pure, 0, 0, NULL},
        {"--allow-requantize", CLI_FLAG, &o.allow_requantize, 0, 0, NULL},
        {"--allow-nonfinite", CLI_FLAG, &allow_nonfinite, 0, 0, NULL},
        CLI_OPT_SPLIT(oo), CLI_OPT_MANIFEST(oo),
        {"--target-bpw", CLI_DOUBLE, &target_bpw, 0, 0, NULL},
        {"--target-size", CLI_STR, &target_size, 0, 0, NULL},
        {"--calib", CLI_STR, &to.calib_path, 0, 0, NULL},
        {"--sensitivity", CLI_STR, &sensitivity, 0, 0, NULL},
        {"--probe-ctx", CLI_LONG, &probe_ctx, 16, 1 << 20, NULL},
        {"--probe-chunks", CLI_LONG, &probe_chunks, 1, 1L << 30, NULL},
        {0},
    };
    const char *pos[4] = {0};
    int npos = 0;
    size_t n_loras = 0;
    sm_lora **loras = NULL;
    int rc = cli_parse(&sm_cmd_quantize, NULL, argc, argv, opts, pos, 4, &npos);
    if (rc) goto done;
    /* IN OUT TYPE, or IN TYPE with -o OUT; llama-quantize's trailing thread count accepted */
    if (npos == 4 || (npos == 3 && com.out && pos[2][strspn(pos[2], "0123456789")] == 0)) {
        com.threads = cli_long("--threads (the trailing thread count)", pos[npos - 1], 1, 4096);
        npos--;
    }
    const char *in = pos[0], *out = NULL, *recipe = NULL;
    const bool targeted = target_bpw != 0 || target_size;
    if (targeted && npos == 2 && !com.out) out = pos[1];
    else if (targeted && npos == 1 && com.out) out = com.out;
    else if (npos == 3 && !com.out) out = pos[1], recipe = pos[2];
    else if (npos == 2 && com.out) out = com.out, recipe = pos[1];
    else { rc = cli_usage_error(&sm_cmd_quantize, "expected IN OUT TYPE (or IN TYPE -o OUT)"); goto done; }
    if (recipe && (rc = cli_check_recipe(&sm_cmd_quantize, NULL, recipe))) goto done;
    if (targeted) {
        if (target_bpw && target_size) { rc = cli_usage_error(&sm_cmd_quantize, "give --target-bpw or --target-size, not both"); goto done; }
        if (target_bpw && !(target_bpw >= 1.5 && target_bpw <= 16)) {
            rc = cli_usage_error(&sm_cmd_quantize, "--target-bpw expects bits per weight in [1.5, 16]");
            goto done;
        }
        if (target_size && !(to.target_bytes = cli_parse_size(target_size))) {
            rc = cli_usage_error(&sm_cmd_quantize, "--target-size expects a size such as 4.2G, 300M or 123456, got '%s'", target_size);
            goto done;
        }
        if (!to.calib_path) { rc = cli_usage_error(&sm_cmd_quantize, "--target-bpw / --target-size need --calib TEXT"); goto done; }
        if (strcmp(sensitivity, "kld") && strcmp(sensitivity, "imatrix")) {
            rc = cli_usage_error(&sm_cmd_quantize, "--sensitivity expects kld or imatrix, got '%s'", sensitivity);
            goto done;
        }
        if (tt.n || keep.n || lora.n || o.pure || o.output_type || o.token_embd_type) {
            rc = cli_usage_error(&sm_cmd_quantize, "--target-bpw / --target-size choose every tensor's type: drop "
                                                   "--tensor-type, --keep, --pure, --output-tensor-type, --token-embedding-type, --lora");
            goto done;
        }
        if (!sm_gguf_is_file(in)) {
            rc = cli_fail("quantize", "%s: a size-targeted mixture needs an F32/F16/BF16 GGUF (convert the checkpoint with "
                                      "smelt convert first)", in);
            goto done;
        }
    } else if (!recipe) {
        rc = cli_usage_error(&sm_cmd_quantize, "expected IN OUT TYPE (or IN TYPE -o OUT)");
        goto done;
    }
    if (sm_sniff_expect(in, SM_FILE_BIT(SM_FILE_GGUF) | SM_FILE_BIT(SM_FILE_HF_DIR),
                        "an F32/F16/BF16 GGUF or a Hugging Face model directory", NULL)) {
        rc = cli_fail_last("quantize");
        goto done;
    }
    for (size_t i = 0; i < lora.n; i++)
        if ((rc = cli_lora_spec(&sm_cmd_quantize, lora.v[i]))) goto done;
    const bool from_dir = sm_is_dir(in);
    if (lora.n && !from_dir) {
        rc = cli_fail("quantize", "--lora needs the Hugging Face checkpoint as input (for a GGUF base, "
                                  "export the adapter with smelt lora export and load it in llama.cpp)");
        goto done;
    }
    if ((rc = cli_output_setup(&sm_cmd_quantize, &oo, &o.sink))) goto done;
    cli_common_apply(&com);
    if (allow_nonfinite) sm_set_allow_nonfinite(true);
    o.recipe = recipe;
    o.tensor_types = tt.v;
    o.n_tensor_types = tt.n;
    o.keep = keep.v;
    o.n_keep = keep.n;
    o.quiet = com.quiet; /* the bar stays on a terminal with --json (stdout) */
    if (!(loras = calloc(lora.n + 1, sizeof *loras))) { rc = cli_fail("quantize", "out of memory"); goto done; }
    for (; n_loras < lora.n; n_loras++)
        if (sm_lora_open(lora.v[n_loras], &loras[n_loras])) { rc = cli_fail_last("quantize"); goto done; }
    {
        const char **inputs = calloc(n_loras + 3, sizeof *inputs);
        if (!inputs) { rc = cli_fail("quantize", "out of memory"); goto done; }
        inputs[0] = in;
        inputs[1] = o.imatrix_path;
        inputs[2] = to.calib_path;
        for (size_t k = 0; k < n_loras; k++) inputs[3 + k] = sm_lora_path(loras[k]);
        rc = cli_check_output("quantize", com.out ? "-o" : "OUT", out, false, inputs, n_loras + 3);
        free(inputs);
        if (rc) goto done;
    }
    if (targeted) {
        to.target_bpw = target_bpw;
        to.imatrix_path = o.imatrix_path;
        to.n_ctx = probe_ctx;
        to.n_chunks = probe_chunks;
        to.kld_probes = !strcmp(sensitivity, "kld");
        to.quiet = com.quiet;
        if (sm_target_plan_make(in, &to, &plan)) { rc = cli_fail_last("quantize"); goto done; }
        o.plan_names = plan.names;
        o.plan_types = plan.types;
        o.n_plan = plan.n;
        o.add_metadata = sm_target_write_metadata;
        o.add_metadata_user = &plan;
        if (!recipe) o.recipe = recipe = cli_mixture_recipe(&plan);
        if (!com.json) cli_mixture_print(&plan, stdout);
        fflush(stdout);
    }
    sm_quantize_report rep;
    if (from_dir ? from_checkpoint(in, out, &o, loras, n_loras, &rep) : sm_quantize_gguf(in, out, &o, &rep)) {
        rc = cli_fail_last("quantize");
        goto done;
    }
    if (oo.manifest) {
        const char *src[1 + 64] = {in};
        size_t n_src = 1;
        for (size_t k = 0; k < n_loras && n_src < 65; k++) src[n_src++] = sm_lora_path(loras[k]);
        cJSON *prov = cli_output_provenance(&oo, "quantize", argc, argv, src, n_src);
        if (prov) {
            cJSON_AddStringToObject(prov, "recipe", sm_recipe_find(recipe)->name);
            cJSON *meth = cJSON_AddObjectToObject(prov, "method");
            cJSON_AddStringToObject(meth, "name", o.imatrix_path ? "imatrix" : "rtn");
            if (o.imatrix_path && sm_manifest_set_file(meth, "imatrix", oo.manifest, o.imatrix_path)) {
                cJSON_Delete(prov);
                prov = NULL;
            }
        }
        if ((rc = cli_output_finish("quantize", &oo, out, prov))) goto done;
    }
    const double bpw = rep.n_params ? 8.0 * (double)rep.bytes_out / (double)rep.n_params : 0;
    if (com.json) {
        const char *ins[1 + 64] = {in};
        size_t n_in = 1;
        if (o.imatrix_path) ins[n_in++] = o.imatrix_path;
        for (size_t i = 0; i < lora.n && n_in < 65; i++) ins[n_in++] = lora.v[i];
        cJSON *j = cli_report_new("quantize", ins, n_in, out);
        cJSON_AddStringToObject(j, "recipe", sm_recipe_find(recipe)->name);
        cJSON_AddNumberToObject(j, "n_tensors", (double)rep.n_tensors);
        cJSON_AddNumberToObject(j, "n_quantized", (double)rep.n_quantized);
        cJSON_AddNumberToObject(j, "n_fallback", (double)rep.n_fallback);
        cJSON_AddNumberToObject(j, "n_params", (double)rep.n_params);
        cJSON_AddNumberToObject(j, "bytes_in", (double)rep.bytes_in);
        cJSON_AddNumberToObject(j, "tensor_bytes", (double)rep.bytes_out);
        cJSON_AddNumberToObject(j, "bpw", bpw);
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cli_add_type_counts(j, rep.n_by_type);
        if (targeted) cJSON_AddItemToObject(j, "mixture", cli_mixture_json(&plan));
        cli_report_print(j, out);
    } else if (!com.quiet) {
        char b1[32], b2[32], b3[32], b4[32], b5[32];
        cli_summary("quantize", out, rep.seconds, "%s %s (%lld quantized, %s), %s -> %s, %.2f bpw",
                    sm_recipe_find(recipe)->name, cli_count(b1, sizeof b1, rep.n_tensors, "tensor"),
                    (long long)rep.n_quantized, cli_count(b2, sizeof b2, rep.n_fallback, "fallback"),
                    cli_bytes(b3, sizeof b3, (double)rep.bytes_in), cli_bytes(b4, sizeof b4, (double)(o.sink.split_max_bytes || o.sink.split_max_tensors ? rep.bytes_out : (uint64_t)cli_path_bytes(out))),
                    bpw);
        (void)b5;
    }
    rc = 0;
done:
    sm_target_plan_free(&plan);
    for (size_t i = 0; loras && i < n_loras; i++) sm_lora_close(loras[i]);
    free(loras);
    cli_list_free(&lora);
    cli_list_free(&tt);
    cli_list_free(&keep);
    cli_output_free(&oo);
    return rc;
}

const sm_command sm_cmd_quantize = {"quantize", "quantize a GGUF (k-quants, legacy, IQ4) with llama.cpp's mixtures", USAGE, run};
