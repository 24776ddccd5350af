/* cmd_generate.c - `smelt generate MODEL`: stream a continuation of a prompt (greedy at
 * temperature 0, else sampled with a seeded generator, so a run is reproducible). */
#include "cli.h"

#include "kernels/kernels.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt generate MODEL [--prompt TEXT] [options]\n"
    "\n"
    "Continue a prompt with MODEL (GGUF file, Hugging Face directory or llama2.c checkpoint)\n"
    "and print the text as it is generated. Without --prompt generation starts from BOS.\n"
    "\n"
    "options:\n"
    "  -p, --prompt TEXT   the prompt\n"
    "  -n, --n-predict N   tokens to generate (default 128)\n"
    "  --temp T            temperature (default 0: always the most likely token)\n"
    "  --top-k K           sample among the K most likely tokens only (default 40; 0: all)\n"
    "  --top-p P           ... and among the smallest set holding probability P (default 0.95)\n"
    "  -s, --seed S        random seed for sampling (default 1)\n"
    "  -c, --ctx N         context size (default: the model's, at most 4096)\n"
    "  --ignore-eos        do not stop at the end-of-sequence token\n"
    "  --exact-dot         exact float matrix products: by default Q4_0, Q8_0, Q4_K, Q5_K and\n"
    "                      Q6_K weights are multiplied one token at a time as llama.cpp does\n"
    "                      (activations quantized to 8 bits, integer dot products: faster, the\n"
    "                      same text on every CPU and thread count)\n"
    "  --ids               print token ids (one per line) instead of text\n"
    "  --vocab FILE        tokenizer to use (SentencePiece .model), e.g. for llama2.c models\n"
    "  -t, --threads N     threads (default: all cores, or SMELT_THREADS)\n"
    "  --json              no streaming: one JSON report on stdout with the generated ids and\n"
    "                      text (fields: docs/json.md)\n"
    "  --quiet, -q         no summary line (the text is still printed)\n"
    "  --device cpu|cuda   where to compute (default cpu). cuda needs a build with CUDA and a\n"
    "                      usable GPU, and exits with status 1 otherwise (no silent fallback)\n";

/* splitmix64: a small, well-mixed generator; the same seed gives the same text */
static uint64_t next_u64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct cand { float p; int32_t id; } cand;

static int by_prob(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int32_t argmax(const float *logits, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return (int32_t)best;
}

/* Temperature, top-k, top-p, then one draw. */
static int32_t sample(const float *logits, int64_t n, double temp, int64_t top_k, double top_p, cand *c,
                      uint64_t *rng) {
    float mx = logits[0];
    for (int64_t i = 1; i < n; i++) mx = fmaxf(mx, logits[i]);
    for (int64_t i = 0; i < n; i++) c[i] = (cand){(float)exp((logits[i] - mx) / temp), (int32_t)i};
    qsort(c, (size_t)n, sizeof *c, by_prob);
    int64_t keep = top_k > 0 && top_k < n ? top_k : n;
    double total = 0;
    for (int64_t i = 0; i < keep; i++) total += c[i].p;
    double acc = 0;
    for (int64_t i = 0; i < keep; i++) {
        acc += c[i].p;
        if (acc >= top_p * total) {
            keep = i + 1;
            break;
        }
    }
    total = 0;
    for (int64_t i = 0; i < keep; i++) total += c[i].p;
    const double u = (double)(next_u64(rng) >> 11) / 9007199254740992.0 * total;
    acc = 0;
    for (int64_t i = 0; i < keep; i++) {
        acc += c[i].p;
        if (u < acc) return c[i].id;
    }
    return c[keep - 1].id;
}

static int run(int argc, char **argv) {
    const char *prompt = NULL, *vocab = NULL, *device = "cpu";
    cli_common com = {0};
    long n_gen = 128, top_k = 40, n_ctx = 0, seed_l = 1;
    double temp = 0, top_p = 0.95;
    bool ignore_eos = false, print_ids = false, exact_dot = false;
    const cli_option opts[] = {
        CLI_OPT_THREADS(com), CLI_OPT_JSON(com),
        {"-p --prompt", CLI_STR, &prompt, 0, 0, NULL},
        {"-n --n-predict", CLI_LONG, &n_gen, 0, 1 << 24, NULL},
        {"--temp", CLI_DOUBLE, &temp, 0, 0, NULL},
        {"--top-k", CLI_LONG, &top_k, 0, 1L << 30, NULL},
        {"--top-p", CLI_DOUBLE, &top_p, 0, 0, NULL},
        {"-s --seed", CLI_LONG, &seed_l, 0, 0x7fffffffffffffffL, NULL},
        {"-c --ctx --ctx-size", CLI_LONG, &n_ctx, 1, 1 << 24, NULL},
        {"--vocab", CLI_STR, &vocab, 0, 0, NULL},
        {"--device", CLI_STR, &device, 0, 0, NULL},
        {"--ignore-eos", CLI_FLAG, &ignore_eos, 0, 0, NULL},
        {"--ids", CLI_FLAG, &print_ids, 0, 0, NULL},
        {"--exact-dot", CLI_FLAG, &exact_dot, 0, 0, NULL},
        {0},
    };
    const char *args[1];
    int nargs = 0;
    const int prc = cli_parse(&sm_cmd_generate, NULL, argc, argv, opts, args, 1, &nargs);
    if (prc) return prc;
    const char *model = nargs ? args[0] : NULL;
    const uint64_t seed = (uint64_t)seed_l;
    const bool json = com.json;
    if (!model) return cli_usage_error(&sm_cmd_generate, "expected MODEL");
    if (!(temp >= 0) || !(top_p > 0 && top_p <= 1))
        return cli_usage_error(&sm_cmd_generate, "--temp must be >= 0 and --top-p in (0, 1]");
    sm_device dev;
    const int drc = cli_device(&sm_cmd_generate, device, &dev);
    if (drc) return drc;
    cli_common_apply(&com);
    sm_model *m = NULL;
    if (sm_model_load(model, vocab, &m)) return cli_fail_last("generate");
    const sm_hparams *hp = sm_model_hparams(m);
    if (n_ctx > 0) cli_warn_ctx("generate", "--ctx", n_ctx, hp->n_ctx_train);
    const sm_tokenizer *tok = NULL;
    int rc = 1;
    int32_t *toks = NULL, *prompt_ids = NULL;
    float *logits = NULL;
    cand *cands = NULL;
    sm_context *ctx = NULL;
    char *text = NULL;
    size_t n_prompt = 0, shown = 0;
    if (sm_model_tokenizer(m, &tok)) {
        if (prompt || !print_ids) {
            cli_fail_last("generate");
            goto out;
        }
        sm_clear_error(); /* ids from BOS need no tokenizer */
    }
    if (prompt && sm_tokenize(tok, prompt, strlen(prompt), SM_TOK_ADD_SPECIAL, &prompt_ids, &n_prompt)) {
        cli_fail_last("generate");
        goto out;
    }
    const int32_t bos = tok ? sm_tokenizer_bos(tok) : 1, eos = tok ? sm_tokenizer_eos(tok) : -1;
    if (n_ctx <= 0) n_ctx = hp->n_ctx_train > 0 && hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    const size_t n_prompt_ids = n_prompt;
    if (n_prompt == 0) n_prompt = 1; /* BOS alone */
    if ((long)n_prompt >= n_ctx) {
        cli_fail("generate", "the prompt has %zu tokens; the context holds %ld", n_prompt, n_ctx);
        goto out;
    }
    if ((long)n_prompt + n_gen > n_ctx) n_gen = n_ctx - (long)n_prompt;
    toks = malloc(sizeof(int32_t) * (n_prompt + (size_t)n_gen + 1));
    logits = malloc(sizeof(float) * (size_t)hp->n_vocab);
    cands = malloc(sizeof(cand) * (size_t)hp->n_vocab);
    if (!toks || !logits || !cands || sm_context_new_on(m, dev, n_ctx, 512, &ctx)) {
        cli_fail("generate", "%s", toks && logits && cands ? sm_last_error() : "out of memory");
        goto out;
    }
    sm_context_set_int_dot(ctx, !exact_dot);
    if (n_prompt_ids) memcpy(toks, prompt_ids, sizeof(int32_t) * n_prompt_ids);
    else toks[0] = bos >= 0 ? bos : 1;
    uint64_t rng = seed;
    int64_t pos = 0, n_in = (int64_t)n_prompt;
    const double t0 = sm_now();
    int64_t produced = 0;
    for (; produced < n_gen; produced++) {
        if (sm_model_eval(m, ctx, toks + pos, n_in, pos, n_in - 1, logits)) {
            cli_fail_last("generate");
            goto out;
        }
        pos += n_in;
        const int32_t next = temp == 0 ? argmax(logits, hp->n_vocab)
                                       : sample(logits, hp->n_vocab, temp, top_k, top_p, cands, &rng);
        if (next == eos && !ignore_eos) break;
        toks[pos] = next;
        n_in = 1;
        if (print_ids) {
            if (!json) printf("%d\n", next);
        } else { /* the text of everything so far; print what is new */
            size_t len;
            free(text);
            text = NULL;
            if (sm_detokenize(tok, toks, (size_t)pos + 1, &text, &len)) {
                cli_fail_last("generate");
                goto out;
            }
            if (len > shown && !json) fwrite(text + shown, 1, len - shown, stdout);
            shown = len;
        }
        fflush(stdout);
    }
    const double secs = sm_now() - t0, tps = secs > 0 ? (double)produced / secs : 0;
    if (json) {
        const char *ins[1] = {model};
        cJSON *j = cli_report_new("generate", ins, 1, NULL);
        cJSON_AddNumberToObject(j, "n_prompt_tokens", (double)n_prompt);
        cJSON_AddNumberToObject(j, "n_tokens", (double)produced);
        cJSON *ids = cJSON_AddArrayToObject(j, "ids");
        for (int64_t k = 0; k < produced; k++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(toks[(int64_t)n_prompt + k]));
        if (text && !print_ids) {
            /* the generated part of the text (without the prompt's) */
            size_t pl = 0;
            char *ptext = NULL;
            if (n_prompt_ids && !sm_detokenize(tok, toks, n_prompt, &ptext, &pl) && pl <= shown)
                cJSON_AddStringToObject(j, "text", text + pl);
            else
                cJSON_AddStringToObject(j, "text", text);
            free(ptext);
        } else {
            cJSON_AddNullToObject(j, "text");
        }
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "tokens_per_second", tps);
        cli_report_print(j, NULL);
    } else if (!com.quiet) {
        char b[32];
        fprintf(stderr, "\n");
        cli_summary("generate", model, secs, "%s (%.1f tokens/s)", cli_count(b, sizeof b, (long long)produced, "token"), tps);
    }
    rc = 0;
out:
    sm_context_free(ctx);
    free(text);
    free(prompt_ids);
    free(cands);
    free(logits);
    free(toks);
    sm_model_free(m);
    return rc;
}

const sm_command sm_cmd_generate = {"generate", "continue a prompt with a model (streaming text)", USAGE, run};
