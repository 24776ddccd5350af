/* cmd_imatrix.c - `smelt imatrix MODEL --text F -o FILE`: importance matrix of a model over a
 * text, computed as llama.cpp's llama-imatrix computes it, in its GGUF or legacy .dat format. */
#include "cli.h"

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
    "  --text FILE          calibration text\n"
    "  -o, --output FILE    output file\n"
    "  --ctx N              tokens per chunk (default 512)\n"
    "  --chunks N           evaluate only the first N chunks\n"
    "  --format gguf|dat    llama.cpp's GGUF imatrix (default) or the legacy .dat format\n"
    "  --process-output     also collect output.weight (llama-imatrix --process-output)\n"
    "  --parse-special      text equal to a control token becomes that token\n"
    "  --threads N          threads (default: all cores, or SMELT_THREADS)\n"
    "  --json               print one JSON object on stdout\n"
    "  --quiet              no progress bar\n";

static int run(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *out = NULL, *format = "gguf";
    bool json = false, parse_special = false;
    sm_imatrix_opts o = {.n_ctx = 512, .bos_id = -1};
    int threads = sm_num_threads();
    const char *v;
    for (int i = 1; i < argc; i++) {
        if (cli_opt(argc, argv, &i, "--text", &v)) text = v;
        else if (cli_opt(argc, argv, &i, "-o", &v) || cli_opt(argc, argv, &i, "--output", &v)) out = v;
        else if (cli_opt(argc, argv, &i, "--ctx", &v)) o.n_ctx = cli_long("--ctx", v, 16, 1 << 20);
        else if (cli_opt(argc, argv, &i, "--chunks", &v)) o.n_chunks = cli_long("--chunks", v, 1, 1L << 30);
        else if (cli_opt(argc, argv, &i, "--format", &v)) format = v;
        else if (cli_opt(argc, argv, &i, "--threads", &v)) threads = (int)cli_long("--threads", v, 1, 4096);
        else if (cli_flag(argv, &i, "--process-output")) o.process_output = true;
        else if (cli_flag(argv, &i, "--parse-special")) parse_special = true;
        else if (cli_flag(argv, &i, "--json")) json = true;
        else if (cli_flag(argv, &i, "--quiet")) o.quiet = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error(&sm_cmd_imatrix, "unknown option %s", argv[i]);
        else if (!model) model = argv[i];
        else return cli_usage_error(&sm_cmd_imatrix, "unexpected argument %s", argv[i]);
    }
    if (!model) return cli_usage_error(&sm_cmd_imatrix, "expected MODEL");
    if (!text) return cli_usage_error(&sm_cmd_imatrix, "expected --text FILE");
    if (!out) return cli_usage_error(&sm_cmd_imatrix, "expected -o FILE");
    if (strcmp(format, "gguf") && strcmp(format, "dat"))
        return cli_usage_error(&sm_cmd_imatrix, "--format expects gguf or dat, got '%s'", format);
    const char *inputs[] = {model, text};
    const int orc = cli_check_output("imatrix", "-o", out, false, inputs, 2);
    if (orc) return orc;
    cli_set_threads(threads);
    if (json) o.quiet = true;
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
done:
    if (rc) cli_fail_last("imatrix");
    else if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddStringToObject(j, "format", format);
        cJSON_AddNumberToObject(j, "entries", (double)im.n_entries);
        cJSON_AddNumberToObject(j, "n_ctx", (double)im.chunk_size);
        cJSON_AddNumberToObject(j, "chunks", (double)rep.n_chunks);
        cJSON_AddNumberToObject(j, "n_tokens_text", (double)n_ids);
        cJSON_AddNumberToObject(j, "n_tokens", (double)rep.n_tokens);
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cJSON_AddNumberToObject(j, "tokens_per_second", rep.tokens_per_second);
        cJSON_AddNumberToObject(j, "threads", threads);
        cJSON_AddStringToObject(j, "isa", sm_isa_name(sm_isa_active()));
        cli_print_json(j);
    } else {
        printf("imatrix: %zu entries from %lld chunks x %lld tokens (%.2f s, %.1f tokens/s) -> %s (%s)\n",
               im.n_entries, (long long)rep.n_chunks, (long long)im.chunk_size, rep.seconds, rep.tokens_per_second,
               out, format);
    }
    sm_imatrix_free(&im);
    free(ids);
    sm_model_free(m);
    return rc ? 1 : 0;
}

const sm_command sm_cmd_imatrix = {"imatrix", "importance matrix of a model over a text (llama-imatrix's)", USAGE,
                                   run};
