/* cmd_ppl.c - `smelt ppl MODEL`: perplexity and KL divergence with llama.cpp's protocol. */
#include "cli.h"

#include "calib/calib.h"
#include "kernels/kernels.h"
#include "formats/formats.h"
#include "model/model.h"
#include "release/release.h"

#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt ppl MODEL (--text FILE | --tokens FILE) [--kld BASE_MODEL] [options]\n"
    "       smelt ppl MODEL --kld LOGITS_FILE [options]\n"
    "\n"
    "Perplexity of MODEL (GGUF file, Hugging Face directory or llama2.c checkpoint) with\n"
    "llama.cpp's protocol: the text is tokenized whole (BOS first when the vocabulary adds\n"
    "one), cut into chunks of --ctx tokens, each chunk evaluated alone with BOS as its first\n"
    "token, and the second half of every chunk scored. Numbers are comparable with\n"
    "llama-perplexity -c CTX, and do not depend on --threads.\n"
    "\n"
    "options:\n"
    "  -f, --text FILE     text to evaluate\n"
    "  --tokens FILE       pre-tokenized input: token ids separated by white space, used as is\n"
    "  -c, --ctx N         tokens per chunk (default 512)\n"
    "  --chunks N          evaluate only the first N chunks\n"
    "  -b, --batch N       tokens per forward batch (default: --ctx)\n"
    "  --int-dot           batches of fewer than 8 tokens (--batch 1..7) multiply Q4_0, Q8_0,\n"
    "                      Q4_K, Q5_K and Q6_K weights as llama.cpp does: activations quantized\n"
    "                      to 8 bits, integer dot products (faster; without it, and for larger\n"
    "                      batches, the products are exact float)\n"
    "  -t, --threads N     threads (default: all cores, or SMELT_THREADS)\n"
    "  --save-logits F     also save the model's log-probabilities to F (16 bits each, the\n"
    "                      format of llama-perplexity --kl-divergence-base) for a later --kld\n"
    "  --kld BASE          KL divergence of MODEL against BASE, which is either a file saved by\n"
    "                      --save-logits (or by llama-perplexity --kl-divergence-base; the\n"
    "                      tokens and --ctx then come from the file), or a model evaluated on\n"
    "                      the same text (e.g. the F16 GGUF a quantization was made from).\n"
    "                      PPL(base) is computed from the base log-probabilities as saved,\n"
    "                      which llama.cpp's format clamps to [max - 16, max] and rounds to 16\n"
    "                      bits (as llama-perplexity does), so it can differ slightly from the\n"
    "                      plain run's PPL of the base\n"
    "  --kl-divergence-base F, --kl-divergence\n"
    "                      llama-perplexity's spellings: --kl-divergence-base F alone is\n"
    "                      --save-logits F; with --kl-divergence it is --kld F\n"
    "  --vocab FILE        tokenizer to use (SentencePiece .model), e.g. for llama2.c models\n"
    "  --json              one JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q         no progress bar and no summary line (the results are still printed)\n"
    "  --no-sync           skip the final fsync of --save-logits' file\n"
    "  --manifest FILE     record the results as MODEL's \"validation\" in the release manifest\n"
    "                      FILE (with the text's digests, --ctx and chunks; MODEL is added to the\n"
    "                      manifest if absent); smelt verify --rerun-validation reruns it\n"
    "  --device cpu|cuda   where to compute (default cpu). cuda needs a build with CUDA and a\n"
    "                      usable GPU, and exits with status 1 otherwise (no silent fallback)\n";

/* Whitespace-separated decimal token ids. */
static int read_token_file(const char *path, int32_t **out, int64_t *n_out) {
    char *txt;
    size_t len;
    if (sm_read_file(path, (size_t)1 << 31, &txt, &len)) return -1;
    int32_t *ids = malloc(sizeof(int32_t) * (len / 2 + 1));
    if (!ids) {
        free(txt);
        return sm_error("out of memory");
    }
    int64_t n = 0;
    char *p = txt;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX || (*end && *end != ' ' && *end != '\n' && *end != '\t' && *end != '\r')) {
            int rc = sm_error("%s: offset %lld: expected a token id (a non-negative integer)", path, (long long)(p - txt));
            free(ids);
            free(txt);
            return rc;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    free(txt);
    *out = ids;
    *n_out = n;
    return 0;
}

static void add_dist(cJSON *j, const char *prefix, const sm_dist *d) {
    const struct { const char *k; double v; } F[] = {
        {"min", d->min}, {"p01", d->p01}, {"p1", d->p1}, {"p5", d->p5}, {"p10", d->p10}, {"p25", d->p25},
        {"median", d->median}, {"p75", d->p75}, {"p90", d->p90}, {"p95", d->p95}, {"p99", d->p99},
        {"p999", d->p999}, {"max", d->max}};
    char k[64];
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++) {
        snprintf(k, sizeof k, "%s_%s", prefix, F[i].k);
        cJSON_AddNumberToObject(j, k, F[i].v);
    }
}

static void print_json(cJSON *j, const sm_ppl_result *r, int64_t n_tokens, int threads, const char *device, const char *out) {
    cJSON_AddNumberToObject(j, "ppl", r->ppl);
    cJSON_AddNumberToObject(j, "ppl_stderr", r->ppl_stderr);
    cJSON_AddNumberToObject(j, "mean_nll", r->mean_nll);
    cJSON_AddNumberToObject(j, "n_ctx", (double)r->n_ctx);
    cJSON_AddNumberToObject(j, "n_chunks", (double)r->n_chunks);
    cJSON_AddNumberToObject(j, "n_scored", (double)r->n_scored);
    cJSON_AddNumberToObject(j, "n_tokens", (double)n_tokens);
    cJSON_AddNumberToObject(j, "n_evaluated", (double)(r->n_chunks * r->n_ctx));
    cJSON_AddNumberToObject(j, "seconds", r->seconds);
    cJSON_AddNumberToObject(j, "tokens_per_second", r->tokens_per_second);
    cJSON_AddNumberToObject(j, "threads", threads);
    cJSON_AddStringToObject(j, "isa", sm_isa_name(sm_isa_active()));
    cJSON_AddStringToObject(j, "device", device);
    cJSON *chunks = cJSON_AddArrayToObject(j, "chunk_mean_nll");
    for (int64_t c = 0; c < r->n_chunks; c++) cJSON_AddItemToArray(chunks, cJSON_CreateNumber(r->chunk_nll[c]));
    if (r->has_kld) {
        cJSON_AddNumberToObject(j, "ppl_base", r->ppl_base);
        cJSON_AddNumberToObject(j, "ppl_base_stderr", r->ppl_base_stderr);
        cJSON_AddNumberToObject(j, "delta_ppl", r->delta_ppl);
        cJSON_AddNumberToObject(j, "delta_ppl_stderr", r->delta_ppl_stderr);
        cJSON_AddNumberToObject(j, "ppl_ratio", r->ppl_ratio);
        cJSON_AddNumberToObject(j, "ppl_ratio_stderr", r->ppl_ratio_stderr);
        cJSON_AddNumberToObject(j, "ln_ppl_ratio", r->ln_ppl_ratio);
        cJSON_AddNumberToObject(j, "ln_ppl_ratio_stderr", r->ln_ppl_ratio_stderr);
        cJSON_AddNumberToObject(j, "ppl_correlation", r->ppl_correlation);
        cJSON_AddNumberToObject(j, "kld_mean", r->kld_mean);
        cJSON_AddNumberToObject(j, "kld_stderr", r->kld_stderr);
        add_dist(j, "kld", &r->kld);
        cJSON_AddNumberToObject(j, "dp_mean", r->dp_mean);
        cJSON_AddNumberToObject(j, "dp_stderr", r->dp_stderr);
        add_dist(j, "dp", &r->dp);
        cJSON_AddNumberToObject(j, "rms_dp", r->rms_dp);
        cJSON_AddNumberToObject(j, "rms_dp_stderr", r->rms_dp_stderr);
        cJSON_AddNumberToObject(j, "top1_agreement", r->top1_agreement);
        cJSON_AddNumberToObject(j, "top1_agreement_stderr", r->top1_stderr);
    }
    cli_report_print(j, out);
}

static void print_text(const sm_ppl_result *r, int threads, bool from_file) {
    printf("chunks %lld x %lld tokens, %lld scored, %.2f s, %.1f tokens/s (%d threads, %s)\n",
           (long long)r->n_chunks, (long long)r->n_ctx, (long long)r->n_scored, r->seconds, r->tokens_per_second,
           threads, sm_isa_name(sm_isa_active()));
    if (!r->has_kld) {
        printf("PPL = %.4f +/- %.5f\n", r->ppl, r->ppl_stderr);
        return;
    }
    printf("====== Perplexity statistics ======\n");
    printf("Mean PPL(Q)                   : %10.6f +/- %10.6f\n", r->ppl, r->ppl_stderr);
    printf("Mean PPL(base)                : %10.6f +/- %10.6f\n", r->ppl_base, r->ppl_base_stderr);
    printf("Cor(ln(PPL(Q)), ln(PPL(base))): %6.2f%%\n", 100.0 * r->ppl_correlation);
    printf("Mean ln(PPL(Q)/PPL(base))     : %10.6f +/- %10.6f\n", r->ln_ppl_ratio, r->ln_ppl_ratio_stderr);
    printf("Mean PPL(Q)/PPL(base)         : %10.6f +/- %10.6f\n", r->ppl_ratio, r->ppl_ratio_stderr);
    printf("Mean PPL(Q)-PPL(base)         : %10.6f +/- %10.6f\n\n", r->delta_ppl, r->delta_ppl_stderr);
    printf("====== KL divergence statistics ======\n");
    printf("Mean    KLD: %10.6f +/- %10.6f\n", r->kld_mean, r->kld_stderr);
    const sm_dist *k = &r->kld;
    printf("Maximum KLD: %10.6f\n99.9%%   KLD: %10.6f\n99.0%%   KLD: %10.6f\n95.0%%   KLD: %10.6f\n"
           "90.0%%   KLD: %10.6f\nMedian  KLD: %10.6f\n10.0%%   KLD: %10.6f\n 5.0%%   KLD: %10.6f\n"
           " 1.0%%   KLD: %10.6f\n 0.1%%   KLD: %10.6f\nMinimum KLD: %10.6f\n\n",
           k->max, k->p999, k->p99, k->p95, k->p90, k->median, k->p10, k->p5, k->p1, k->p01, k->min);
    printf("====== Token probability statistics ======\n");
    const sm_dist *d = &r->dp;
    printf("Mean    dp: %6.3f +/- %5.3f %%\n", 100.0 * r->dp_mean, 100.0 * r->dp_stderr);
    printf("Maximum dp: %6.3f%%\n99.9%%   dp: %6.3f%%\n99.0%%   dp: %6.3f%%\n95.0%%   dp: %6.3f%%\n"
           "90.0%%   dp: %6.3f%%\n75.0%%   dp: %6.3f%%\nMedian  dp: %6.3f%%\n25.0%%   dp: %6.3f%%\n"
           "10.0%%   dp: %6.3f%%\n 5.0%%   dp: %6.3f%%\n 1.0%%   dp: %6.3f%%\n 0.1%%   dp: %6.3f%%\n"
           "Minimum dp: %6.3f%%\n",
           100 * d->max, 100 * d->p999, 100 * d->p99, 100 * d->p95, 100 * d->p90, 100 * d->p75, 100 * d->median,
           100 * d->p25, 100 * d->p10, 100 * d->p5, 100 * d->p1, 100 * d->p01, 100 * d->min);
    printf("RMS dp    : %6.3f +/- %5.3f %%\n", 100.0 * r->rms_dp, 100.0 * r->rms_dp_stderr);
    printf("Same top p: %6.3f +/- %5.3f %%\n\n", 100.0 * r->top1_agreement, 100.0 * r->top1_stderr);
    if (from_file)
        printf("note: PPL(base) is computed from the base's log-probabilities as llama.cpp's KLD format\n"
           "      stores them (clamped to [max - 16, max], 16 bits), so it can differ slightly from\n"
           "      the base's plain `smelt ppl` value.\n");
    printf("summary: PPL = %.4f (base %.4f, %+.3f%%), mean KLD = %.6f, p99 KLD = %.6f, same top token %.2f%%\n",
           r->ppl, r->ppl_base, 100.0 * (r->ppl / r->ppl_base - 1), r->kld_mean, r->kld.p99, 100.0 * r->top1_agreement);
}

/* MODEL's "validation" in the manifest: the inputs (with digests) and options to rerun it, and
 * the numbers. 0, or 1 after printing the error. */
static int record_validation(const char *manifest, const char *model, const char *text, const char *tokens,
                             const char *kld, const sm_ppl_result *r, int argc, char **argv) {
    cJSON *m = NULL, *v = cJSON_CreateObject();
    int rc = sm_manifest_open_or_new(manifest, &m);
    const char *one[1] = {model};
    cJSON *a = rc ? NULL : sm_manifest_find_artifact(m, manifest, model);
    if (!rc && !a && !(rc = sm_manifest_add_artifacts(m, manifest, one, 1, NULL)))
        a = sm_manifest_find_artifact(m, manifest, model);
    if (!rc && !a) rc = sm_error("%s: cannot record it in %s", model, manifest);
    const cJSON *p = rc ? NULL : sm_manifest_provenance("ppl", argc, argv);
    if (p) {
        cJSON_AddItemToObject(v, "command_line", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "command_line"), 1));
        cJSON_AddItemToObject(v, "smelt_version", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "smelt_version"), 1));
        cJSON_Delete((cJSON *)p);
    }
    if (!rc && text) rc = sm_manifest_set_file(v, "text", manifest, text);
    if (!rc && tokens) rc = sm_manifest_set_file(v, "tokens", manifest, tokens);
    if (!rc && kld) {
        if (sm_is_dir(kld)) { /* a model directory: named, not hashed (its files are the base's) */
            char *abs = realpath(kld, NULL);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(v, "kld_base"), "path", abs ? abs : kld);
            free(abs);
        } else {
            rc = sm_manifest_set_file(v, "kld_base", manifest, kld);
        }
    }
    if (!rc) {
        cJSON_AddNumberToObject(v, "ctx", (double)r->n_ctx);
        cJSON_AddNumberToObject(v, "chunks", (double)r->n_chunks);
        cJSON_AddNumberToObject(v, "n_scored", (double)r->n_scored);
        static const struct { const char *name; size_t off; bool kld; } NUMS[] = {
            {"ppl", offsetof(sm_ppl_result, ppl), false},
            {"ppl_stderr", offsetof(sm_ppl_result, ppl_stderr), false},
            {"ppl_base", offsetof(sm_ppl_result, ppl_base), true},
            {"delta_ppl", offsetof(sm_ppl_result, delta_ppl), true},
            {"delta_ppl_stderr", offsetof(sm_ppl_result, delta_ppl_stderr), true},
            {"kld_mean", offsetof(sm_ppl_result, kld_mean), true},
            {"kld_stderr", offsetof(sm_ppl_result, kld_stderr), true},
            {"top1_agreement", offsetof(sm_ppl_result, top1_agreement), true},
            {"top1_agreement_stderr", offsetof(sm_ppl_result, top1_stderr), true},
        };
        for (size_t k = 0; k < sizeof NUMS / sizeof NUMS[0]; k++)
            if (!NUMS[k].kld || r->has_kld)
                cJSON_AddNumberToObject(v, NUMS[k].name, *(const double *)((const char *)r + NUMS[k].off));
        cJSON_DeleteItemFromObjectCaseSensitive(a, "validation");
        cJSON_AddItemToObject(a, "validation", v);
        v = NULL;
        rc = sm_manifest_save(m, manifest);
    }
    cJSON_Delete(v);
    cJSON_Delete(m);
    return rc ? cli_fail("ppl", "--manifest: %s", sm_last_error()) : 0;
}

static int run(int argc, char **argv) {
    const char *text = NULL, *tokens_path = NULL, *kld = NULL, *vocab = NULL, *device = "cpu", *kl_base = NULL;
    const char *manifest = NULL;
    cli_common com = {0};
    bool kl_flag = false;
    sm_ppl_opts o = {.n_ctx = 512, .bos_id = -1};
    long n_ctx = 512, n_chunks = 0, n_batch = 0;
    const cli_option opts[] = {
        CLI_OPT_THREADS(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com),
        {"-f --text", CLI_STR, &text, 0, 0, NULL},
        {"--tokens", CLI_STR, &tokens_path, 0, 0, NULL},
        {"-c --ctx --ctx-size", CLI_LONG, &n_ctx, 4, 1 << 20, NULL},
        {"--chunks", CLI_LONG, &n_chunks, 1, 1L << 30, NULL},
        {"-b --batch --batch-size", CLI_LONG, &n_batch, 1, 1 << 20, NULL},
        {"--save-logits", CLI_STR, &o.save_logits, 0, 0, NULL},
        {"--kl-divergence-base", CLI_STR, &kl_base, 0, 0, NULL},
        {"--kl-divergence", CLI_FLAG, &kl_flag, 0, 0, NULL},
        {"--int-dot", CLI_FLAG, &o.int_dot, 0, 0, NULL},
        {"--kld", CLI_STR, &kld, 0, 0, NULL},
        {"--vocab", CLI_STR, &vocab, 0, 0, NULL},
        {"--device", CLI_STR, &device, 0, 0, NULL},
        {"--manifest", CLI_STR, &manifest, 0, 0, NULL},
        {0},
    };
    const char *pos[1];
    int npos = 0;
    const int prc = cli_parse(&sm_cmd_ppl, NULL, argc, argv, opts, pos, 1, &npos);
    if (prc) return prc;
    const char *model = npos ? pos[0] : NULL;
    o.n_ctx = n_ctx;
    o.n_chunks = n_chunks;
    o.n_batch = n_batch;
    /* llama-perplexity's spellings: --kl-divergence-base F saves (= --save-logits F); with
     * --kl-divergence it names the base to compare against (= --kld F) */
    if (kl_flag && !kl_base) return cli_usage_error(&sm_cmd_ppl, "--kl-divergence needs --kl-divergence-base FILE (the saved base)");
    if (kl_base && kl_flag) {
        if (kld) return cli_usage_error(&sm_cmd_ppl, "give --kld or --kl-divergence-base with --kl-divergence, not both");
        kld = kl_base;
    } else if (kl_base) {
        if (o.save_logits) return cli_usage_error(&sm_cmd_ppl, "give --save-logits or --kl-divergence-base, not both");
        o.save_logits = kl_base;
    }
    if (!model) return cli_usage_error(&sm_cmd_ppl, "expected MODEL");
    /* a saved log-probability file starts with "_logits_"; anything else is taken for a model */
    const bool kld_file = kld && sm_sniff(kld, NULL) == SM_FILE_LOGITS;
    if (text && tokens_path) return cli_usage_error(&sm_cmd_ppl, "give --text or --tokens, not both");
    if (kld_file && (text || tokens_path))
        return cli_usage_error(&sm_cmd_ppl, "%s holds its own tokens: drop --text / --tokens", kld);
    if (!kld_file && !text && !tokens_path) return cli_usage_error(&sm_cmd_ppl, "give --text FILE or --tokens FILE");
    if (kld && o.save_logits) return cli_usage_error(&sm_cmd_ppl, "--save-logits and --kld cannot be combined");
    if (o.save_logits) {
        const char *inputs[] = {model, text, tokens_path, vocab, kld};
        const int orc = cli_check_output("ppl", "--save-logits", o.save_logits, false, inputs, 5);
        if (orc) return orc;
    }
    const int drc = cli_device(&sm_cmd_ppl, device, &o.device);
    if (drc) return drc;
    const int threads = cli_common_apply(&com);
    const bool json = com.json;
    o.quiet = com.quiet; /* the bar stays on a terminal with --json (stdout) */
    const double t0 = sm_now();

    sm_model *m = NULL;
    if (sm_model_load(model, vocab, &m)) return cli_fail_last("ppl");
    if (!kld_file) cli_warn_ctx("ppl", "--ctx", o.n_ctx, sm_model_hparams(m)->n_ctx_train);
    /* BOS replaces each chunk's first token when the vocabulary adds BOS (llama.cpp); token
     * ids given to a model without a tokenizer (llama2.c) follow the Llama convention, id 1 */
    const sm_tokenizer *tok = NULL;
    int rc = 0;
    o.bos_id = 1;
    if (sm_model_tokenizer(m, &tok) == 0) rc = sm_ppl_chunk_bos(tok, &o.bos_id);
    else if (text) rc = -1;
    else sm_clear_error();
    int32_t *ids = NULL;
    int64_t n_ids = 0;
    sm_ppl_result r;
    sm_model *base = NULL;
    if (rc == 0 && kld_file) {
        rc = sm_kl_divergence(m, kld, &o, &r);
    } else if (rc == 0) {
        if (tokens_path) rc = read_token_file(tokens_path, &ids, &n_ids);
        else { /* the whole file as one string, BOS first when the vocabulary adds it (llama.cpp) */
            size_t n = 0;
            rc = sm_calib_tokenize_file(tok, text, false, &ids, &n);
            n_ids = (int64_t)n;
        }
        if (rc == 0 && kld) {
            rc = sm_model_load(kld, vocab, &base);
            if (rc == 0) rc = sm_kl_divergence_models(m, base, ids, n_ids, &o, &r);
        } else if (rc == 0) {
            rc = sm_perplexity(m, ids, n_ids, &o, &r);
        }
    }
    free(ids);
    sm_model_free(base);
    sm_model_free(m);
    if (rc) return cli_fail_last("ppl");
    /* n_tokens: the tokens of the input (the text, the token file, or the saved base's tokens) */
    const int64_t n_tokens = kld_file ? r.n_chunks * r.n_ctx : n_ids;
    if (json) {
        const char *ins[3] = {model, text ? text : tokens_path, kld};
        size_t n_in = 1;
        for (int k = 1; k < 3; k++)
            if (ins[k]) ins[n_in++] = ins[k];
        print_json(cli_report_new("ppl", ins, n_in, o.save_logits), &r, n_tokens, threads, device, o.save_logits);
    } else {
        print_text(&r, threads, true);
        fflush(stdout); /* the results, then the summary line on stderr (as every command ends) */
        if (!com.quiet) {
            char b[32];
            cli_count(b, sizeof b, (long long)r.n_chunks, "chunk");
            if (r.has_kld)
                cli_summary("ppl", o.save_logits ? o.save_logits : model, sm_now() - t0,
                            "PPL = %.4f (base %.4f), mean KLD = %.6f, %s x %lld tokens", r.ppl, r.ppl_base, r.kld_mean, b,
                            (long long)r.n_ctx);
            else
                cli_summary("ppl", o.save_logits ? o.save_logits : model, sm_now() - t0, "PPL = %.4f +/- %.5f, %s x %lld tokens",
                            r.ppl, r.ppl_stderr, b, (long long)r.n_ctx);
        }
    }
    /* a NaN/Inf result is a failure (a CI step must not pass on "PPL = nan") */
    const bool finite = isfinite(r.ppl) && (!kld || (isfinite(r.kld_mean) && isfinite(r.ppl_base)));
    const int mrc = finite && manifest ? record_validation(manifest, model, text, tokens_path, kld, &r, argc, argv) : 0;
    sm_ppl_result_free(&r);
    if (!finite)
        return cli_fail("ppl", "%s: the result is not finite (NaN/Inf logits: non-finite weights or an overflow)", model);
    return mrc;
}

const sm_command sm_cmd_ppl = {"ppl", "perplexity and KL divergence of a model on a text", USAGE, run};
