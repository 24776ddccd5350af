/* cmd_imatrix.c - `smelt imatrix MODEL --text F -o FILE`: importance matrix of a model over a
 * text, computed as llama.cpp's llama-imatrix computes it, in its GGUF or legacy .dat format. */
#include "cli.h"

#include "release/release.h"

#include "calib/calib.h"
#include "kernels/kernels.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt imatrix MODEL --text FILE -o OUT [options]\n"
    "\n"
    "Importance matrix of MODEL (GGUF file or Hugging Face directory) over a text, as\n"
    "llama.cpp's llama-imatrix computes it: the text is tokenized whole (BOS first when the\n"
    "vocabulary adds one), cut into consecutive chunks of --ctx tokens (at least two chunks'\n"
    "worth are needed), and each chunk is evaluated alone with BOS as its first token. For\n"
    "every linear weight of every block (attn_q/k/v, attn_output, ffn_gate/up/down) the file\n"
    "holds the per-input-column sum of squared activations over all evaluated tokens and the\n"
    "token count. Use it with `smelt quantize --imatrix` or llama-quantize --imatrix.\n"
    "\n"
    "options:\n"
    "  -f, --text FILE      calibration text (--calib is accepted too)\n"
    "  -o, --outfile FILE   output file (--output is accepted too)\n"
    "  -c, --ctx N          tokens per chunk (default 512)\n"
    "  --chunks N           evaluate only the first N chunks\n"
    "  --format gguf|dat    llama.cpp's GGUF imatrix (default) or the legacy .dat format\n"
    "  --process-output     also collect output.weight (llama-imatrix --process-output)\n"
    "  --parse-special      text equal to a control token becomes that token\n"
    "  --no-ppl             skip the perplexity estimate (llama-imatrix --no-ppl). By default\n"
    "                       each chunk's second half is scored as llama-imatrix scores it (its\n"
    "                       \"Final estimate: PPL\", = smelt ppl on the same chunks): the running\n"
    "                       value is on the progress bar, the final one in the summary and the\n"
    "                       report; it costs the output head's matmul per chunk\n"
    "  -t, --threads N      threads (default: all cores, or SMELT_THREADS)\n"
    "  --json               one JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q          no progress bar, no summary line\n"
    "  --no-sync            skip the final fsync of the output\n"
    "  --manifest FILE      record the output, the model's and the text's digests in the release\n"
    "                       manifest FILE (docs/manifest.md)\n";

static int run(int argc, char **argv) {
    const char *text = NULL, *format = "gguf";
    cli_common com = {0};
    cli_output oo = {0};
    bool parse_special = false;
    sm_imatrix_opts o = {.n_ctx = 512, .bos_id = -1};
    long n_ctx = 512, n_chunks = 0;
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com),
        {"-f --text --calib", CLI_STR, &text, 0, 0, NULL},
        {"-c --ctx --ctx-size", CLI_LONG, &n_ctx, 16, 1 << 20, NULL},
        {"--chunks", CLI_LONG, &n_chunks, 1, 1L << 30, NULL},
        {"--format", CLI_STR, &format, 0, 0, NULL},
        {"--process-output", CLI_FLAG, &o.process_output, 0, 0, NULL},
        {"--parse-special", CLI_FLAG, &parse_special, 0, 0, NULL},
        {"--no-ppl", CLI_FLAG, &o.no_ppl, 0, 0, NULL},
        CLI_OPT_MANIFEST(oo),
        {0},
    };
    const char *pos[1];
    int npos = 0;
    const int prc = cli_parse(&sm_cmd_imatrix, NULL, argc, argv, opts, pos, 1, &npos);
    if (prc) return prc;
    const char *model = npos ? pos[0] : NULL, *out = com.out;
    const bool json = com.json;
    o.n_ctx = n_ctx;
    o.n_chunks = n_chunks;
    if (!model) return cli_usage_error(&sm_cmd_imatrix, "expected MODEL");
    if (!text) return cli_usage_error(&sm_cmd_imatrix, "expected --text FILE");
    if (!out) return cli_usage_error(&sm_cmd_imatrix, "expected -o FILE");
    if (strcmp(format, "gguf") && strcmp(format, "dat"))
        return cli_usage_error(&sm_cmd_imatrix, "--format expects gguf or dat, got '%s'", format);
    const char *inputs[] = {model, text};
    const int orc = cli_check_output("imatrix", "-o", out, false, inputs, 2);
    if (orc) return orc;
    const int threads = cli_common_apply(&com);
    o.quiet = com.quiet; /* the bar stays on a terminal with --json (stdout) */
    o.dataset = text;

    sm_model *m = NULL;
    const sm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    sm_imatrix im = {0};
    sm_imatrix_report rep;
    int rc = -1;
    if (sm_model_load(model, NULL, &m)) goto done;
    cli_warn_ctx("imatrix", "--ctx", o.n_ctx, sm_model_hparams(m)->n_ctx_train);
    if (sm_model_tokenizer(m, &tok) || sm_ppl_chunk_bos(tok, &o.bos_id) ||
        sm_calib_tokenize_file(tok, text, parse_special, &ids, &n_ids) ||
        sm_imatrix_compute(m, ids, (int64_t)n_ids, &o, &im, &rep))
        goto done;
    rc = !strcmp(format, "dat") ? sm_imatrix_save_dat(&im, out) : sm_imatrix_save_gguf(&im, out);
    if (!rc && oo.manifest) {
        const char *src[1] = {model};
        cJSON *prov = cli_output_provenance(&oo, "imatrix", argc, argv, src, 1);
        if (prov) {
            cJSON *meth = cJSON_AddObjectToObject(prov, "method");
            cJSON_AddStringToObject(meth, "name", "imatrix");
            cJSON_AddNumberToObject(meth, "ctx", (double)im.chunk_size);
            cJSON_AddNumberToObject(meth, "chunks", (double)rep.n_chunks);
            if (sm_manifest_set_file(prov, "calibration", oo.manifest, text)) {
                cJSON_Delete(prov);
                prov = NULL;
            }
        }
        if (cli_output_finish("imatrix", &oo, out, prov)) rc = 2; /* reported */
    }
done:
    if (rc == 2) rc = 1;
    else if (rc) cli_fail_last("imatrix");
    else if (json) {
        const char *ins[2] = {model, text};
        cJSON *j = cli_report_new("imatrix", ins, 2, out);
        cJSON_AddStringToObject(j, "format", format);
        cJSON_AddNumberToObject(j, "entries", (double)im.n_entries);
        cJSON_AddNumberToObject(j, "n_ctx", (double)im.chunk_size);
        cJSON_AddNumberToObject(j, "chunks", (double)rep.n_chunks);
        cJSON_AddNumberToObject(j, "n_tokens_text", (double)n_ids);
        cJSON_AddNumberToObject(j, "n_tokens", (double)rep.n_tokens);
        if (!o.no_ppl) {
            cJSON_AddNumberToObject(j, "ppl", rep.ppl);
            cJSON_AddNumberToObject(j, "ppl_stderr", rep.ppl_stderr);
            cJSON_AddNumberToObject(j, "n_scored", (double)rep.n_scored);
        }
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cJSON_AddNumberToObject(j, "tokens_per_second", rep.tokens_per_second);
        cJSON_AddNumberToObject(j, "threads", threads);
        cJSON_AddStringToObject(j, "isa", sm_isa_name(sm_isa_active()));
        cli_report_print(j, out);
    } else if (!com.quiet) {
        char b1[32], b2[32], b3[48] = "";
        if (!o.no_ppl) snprintf(b3, sizeof b3, ", PPL = %.4f +/- %.5f", rep.ppl, rep.ppl_stderr);
        cli_summary("imatrix", out, rep.seconds, "%s imatrix, %s from %s x %lld tokens%s (%.1f tokens/s)", format,
                    cli_count(b1, sizeof b1, (long long)im.n_entries, "entry"), cli_count(b2, sizeof b2, (long long)rep.n_chunks, "chunk"),
                    (long long)im.chunk_size, b3, rep.tokens_per_second);
    }
    sm_imatrix_free(&im);
    free(ids);
    sm_model_free(m);
    return rc ? 1 : 0;
}

const sm_command sm_cmd_imatrix = {"imatrix", "importance matrix of a model over a text (llama-imatrix's)", USAGE,
                                   run};
