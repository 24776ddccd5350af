/* cmd_convert.c - `smelt convert MODEL -o OUT.gguf`: a Hugging Face model directory or a
 * llama2.c checkpoint to GGUF (see convert/convert.h). */
#include "cli.h"
#include "convert/convert.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt convert MODEL_DIR|llama2c.bin -o OUT.gguf [options]\n"
    "\n"
    "Convert a Hugging Face checkpoint directory (config.json, *.safetensors or pytorch_model.bin,\n"
    "tokenizer) or a llama2.c checkpoint to a GGUF file llama.cpp loads. Streams tensor by tensor;\n"
    "the output appears only when complete.\n"
    "\n"
    "options:\n"
    "  -o, --outfile PATH   the GGUF file to write (required; --output is accepted too)\n"
    "  --outtype TYPE       f32, f16, bf16, q8_0 or auto (default: auto = bf16 for a bf16\n"
    "                       checkpoint, else f16). Norms and 1-D tensors stay f32.\n"
    "  --dequantize         GPTQ / AutoAWQ checkpoints: write every quantized linear dequantized\n"
    "                       in --outtype. Default: linears whose groups are a multiple of 32\n"
    "                       consecutive inputs are transcoded without requantizing (symmetric\n"
    "                       4-bit -> Q4_0 and 8-bit -> Q8_0 exactly; 4-bit with zero points, AWQ\n"
    "                       and GPTQ asym -> Q4_1 with min = -scale * zero rounded to f16: the\n"
    "                       summary and --json give the largest weight difference this causes,\n"
    "                       or say the result is exact); others are dequantized into --outtype\n"
    "  --tokenizer PATH     tokenizer to use instead of the model's own (a SentencePiece .model\n"
    "                       file or a directory with tokenizer files); llama2.c checkpoints look\n"
    "                       for tok<VOCAB>.model or tokenizer.model beside the file\n"
    "  --name NAME          general.name (default: from the directory or file name)\n"
    "  --lora DIR[:WEIGHT]  merge a PEFT LoRA adapter on the fly (repeatable; no merged copy is\n"
    "                       written; see smelt help lora)\n"
    "  --split-max-size N[K|M|G]  write a split set as llama-gguf-split does: OUT without .gguf,\n"
    "                       -00001-of-0000N.gguf, ... with at most N bytes of tensor data each\n"
    "                       (decimal units: 1M = 1000000; llama.cpp loads it from the first file)\n"
    "  --split-max-tensors N  the same with at most N tensors per file\n"
    "  --level N            a .smelt output (OUT named *.smelt): zstd level 1..19 (default 3)\n"
    "  --raw                a .smelt output stored uncompressed (aligned, mapped zero-copy)\n"
    "  --manifest FILE      record the output (size, SHA-256, XXH3-128), the sources' digests and\n"
    "                       the command in the release manifest FILE (docs/manifest.md)\n"
    "  --no-sync            skip the final fsync (faster; the file still appears only when\n"
    "                       complete, but a power loss right after may lose it)\n"
    "  --allow-nonfinite    write NaN/Inf weights as they are (default: refused, naming the\n"
    "                       tensor, row and column)\n"
    "  -t, --threads N      worker threads (q8_0; the output does not depend on N)\n"
    "  --json               print a JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q          no progress bar, no summary line\n"
    "Supported architectures: @ARCHS@; llama2.c.\n"; /* @ARCHS@: the table's (cli/main.c) */

static int run(int argc, char **argv) {
    cli_common com = {0};
    cli_output oo = {0};
    cli_list lora = {0};
    sm_convert_opts o = {0};
    bool allow_nonfinite = false;
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com),
        {"--outtype", CLI_STR, &o.outtype, 0, 0, NULL},
        {"--tokenizer", CLI_STR, &o.tokenizer, 0, 0, NULL},
        {"--name", CLI_STR, &o.name, 0, 0, NULL},
        {"--lora", CLI_LIST, &lora, 0, 0, NULL},
        {"--allow-nonfinite", CLI_FLAG, &allow_nonfinite, 0, 0, NULL},
        {"--dequantize", CLI_FLAG, &o.gptq_dequantize, 0, 0, NULL},
        CLI_OPT_SPLIT(oo), CLI_OPT_MANIFEST(oo),
        {0},
    };
    const char *pos[1];
    int npos = 0, rc = cli_parse(&sm_cmd_convert, NULL, argc, argv, opts, pos, 1, &npos);
    sm_lora **loras = NULL;
    if (rc) goto done;
    const char *model = npos ? pos[0] : NULL, *out = com.out;
    if (!model) { rc = cli_usage_error(&sm_cmd_convert, "no model given"); goto done; }
    if (!out) { rc = cli_usage_error(&sm_cmd_convert, "no output given (-o OUT.gguf)"); goto done; }
    if (o.outtype && strcmp(o.outtype, "auto") && strcmp(o.outtype, "f32") && strcmp(o.outtype, "f16") &&
        strcmp(o.outtype, "bf16") && strcmp(o.outtype, "q8_0")) {
        rc = cli_usage_error(&sm_cmd_convert, "--outtype %s: expected f32, f16, bf16, q8_0 or auto", o.outtype);
        goto done;
    }
    for (size_t i = 0; i < lora.n; i++)
        if ((rc = cli_lora_spec(&sm_cmd_convert, lora.v[i]))) goto done;
    if ((rc = cli_output_setup(&sm_cmd_convert, &oo, &o.sink))) goto done;
    cli_common_apply(&com);
    if (allow_nonfinite) sm_set_allow_nonfinite(true);
    o.quiet = com.quiet; /* the bar stays on a terminal with --json (stdout) */
    if (!(loras = calloc(lora.n + 1, sizeof *loras))) { rc = cli_fail("convert", "out of memory"); goto done; }
    for (; o.n_loras < lora.n; o.n_loras++)
        if (sm_lora_open(lora.v[o.n_loras], &loras[o.n_loras])) { rc = cli_fail_last("convert"); goto done; }
    {
        const char **inputs = calloc(o.n_loras + 2, sizeof *inputs);
        if (!inputs) { rc = cli_fail("convert", "out of memory"); goto done; }
        inputs[0] = model;
        inputs[1] = o.tokenizer;
        for (size_t k = 0; k < o.n_loras; k++) inputs[2 + k] = sm_lora_path(loras[k]);
        rc = cli_check_output("convert", "-o", out, false, inputs, o.n_loras + 2);
        free(inputs);
        if (rc) goto done;
    }
    o.loras = loras;
    sm_convert_report rep = {0};
    if (sm_convert(model, out, &o, &rep)) { rc = cli_fail_last("convert"); goto done; }
    if (oo.manifest) {
        const char *src[2 + 64] = {model, o.tokenizer};
        size_t n_src = 2;
        for (size_t k = 0; k < o.n_loras && n_src < 66; k++) src[n_src++] = sm_lora_path(loras[k]);
        cJSON *prov = cli_output_provenance(&oo, "convert", argc, argv, src, n_src);
        if (prov) {
            cJSON_AddStringToObject(prov, "outtype", sm_type_name(rep.outtype));
            cJSON *meth = cJSON_AddObjectToObject(prov, "method");
            cJSON_AddStringToObject(meth, "name", rep.outtype == SM_TYPE_Q8_0 ? "rtn" : "convert");
        }
        if ((rc = cli_output_finish("convert", &oo, out, prov))) goto done;
    }
    char types[512], b1[64], b2[32];
    cli_type_counts(types, sizeof types, rep.n_by_type);
    if (com.json) {
        const char *in[1 + 64] = {model};
        size_t n_in = 1;
        for (size_t i = 0; i < lora.n && n_in < 65; i++) in[n_in++] = lora.v[i];
        cJSON *j = cli_report_new("convert", in, n_in, out);
        cJSON_AddNumberToObject(j, "n_tensors", (double)rep.n_tensors);
        cJSON_AddNumberToObject(j, "n_params", (double)rep.n_params);
        cJSON_AddNumberToObject(j, "bytes_in", (double)rep.bytes_in);
        cJSON_AddNumberToObject(j, "tensor_bytes", (double)rep.tensor_bytes);
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cJSON_AddStringToObject(j, "outtype", sm_type_name(rep.outtype));
        cli_add_type_counts(j, rep.n_by_type);
        cJSON_AddNumberToObject(j, "gptq_linears", (double)rep.n_gptq);
        cJSON_AddNumberToObject(j, "gptq_transcoded", (double)rep.n_gptq_transcoded);
        cJSON_AddNumberToObject(j, "gptq_dequantized", (double)rep.n_gptq_dequantized);
        cJSON_AddNumberToObject(j, "gptq_max_abs_err", rep.gptq_max_err);
        cJSON_AddBoolToObject(j, "gptq_exact", rep.n_gptq_transcoded > 0 && rep.gptq_max_err == 0);
        cli_report_print(j, out);
    } else if (!com.quiet) {
        char gq[192] = "";
        if (rep.n_gptq && rep.n_gptq_transcoded) {
            char err[64] = "exact";
            if (rep.gptq_max_err > 0) snprintf(err, sizeof err, "largest weight difference %.3g", rep.gptq_max_err);
            snprintf(gq, sizeof gq, "; %lld of %lld quantized linears transcoded without requantizing (%s)",
                     (long long)rep.n_gptq_transcoded, (long long)rep.n_gptq, err);
        }
        if (rep.n_gptq_dequantized)
            snprintf(gq + strlen(gq), sizeof gq - strlen(gq), "; %lld quantized linears dequantized into %s",
                     (long long)rep.n_gptq_dequantized, sm_type_name(rep.outtype));
        cli_summary("convert", out, rep.seconds, "%s, %lld parameters (%s), %s%s", cli_count(b2, sizeof b2, rep.n_tensors, "tensor"),
                    (long long)rep.n_params, types, cli_bytes(b1, sizeof b1, (double)rep.bytes_out), gq);
    }
    rc = 0;
done:
    for (size_t i = 0; loras && i < o.n_loras; i++) sm_lora_close(loras[i]);
    free(loras);
    cli_list_free(&lora);
    cli_output_free(&oo);
    return rc;
}

const sm_command sm_cmd_convert = {"convert", "HF checkpoint or llama2.c file -> GGUF", USAGE, run};
