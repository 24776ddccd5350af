/* calib_set.c - calibration sets: a text file tokenized once, cut into fixed-length samples.
 *
 * Every sample is seqlen consecutive tokens of the text whose first token is replaced by BOS
 * (when the vocabulary adds BOS), exactly as llama.cpp's llama-imatrix and llama-perplexity
 * treat their chunks (and as tiny-llama-kjv was trained): the model always sees a sequence
 * that starts like a document. Two ways to pick the windows:
 *   - in order: chunk k is tokens [k*seqlen, (k+1)*seqlen), as llama-imatrix cuts its text;
 *   - random (the GPTQ paper's sampling): each window starts at a uniformly drawn offset in
 *     [0, n_tokens - seqlen], drawn with a seeded splitmix64 generator, so the same seed gives
 *     the same set on every machine. Windows may overlap. */
#include "calib/calib.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TEXT_BYTES ((size_t)1 << 31)

int sm_calib_tokenize_file(const sm_tokenizer *t, const char *path, bool parse_special, int32_t **ids, size_t *n) {
    *ids = NULL;
    *n = 0;
    char *text = NULL;
    size_t len = 0;
    if (sm_read_file(path, MAX_TEXT_BYTES, &text, &len)) return -1;
    const int rc = sm_tokenize(t, text, len, SM_TOK_ADD_SPECIAL | (parse_special ? SM_TOK_PARSE_SPECIAL : 0), ids, n);
    free(text);
    if (rc) return sm_error_ctx("%s: tokenizing", path);
    return 0;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static uint64_t uniform(uint64_t *s, uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = splitmix64(s);
    while (r >= limit);
    return r % n;
}

int sm_calib_cut(const int32_t *tokens, size_t n_tokens, int32_t bos, const sm_calib_opts *o, sm_calib_set *out) {
    memset(out, 0, sizeof *out);
    const int64_t L = o->seqlen;
    if (L < 2 || L > (1 << 24)) return sm_error("calibration: sequence length %lld is out of range", (long long)L);
    if ((uint64_t)n_tokens < (uint64_t)L)
        return sm_error("calibration: the text has %zu tokens, fewer than one sequence of %lld", n_tokens, (long long)L);
    int64_t n = o->n_samples;
    const int64_t fit = (int64_t)(n_tokens / (size_t)L);
    if (o->in_order) {
        if (n <= 0 || n > fit) n = fit;
    } else if (n <= 0) {
        n = fit;
    }
    if (n > ((int64_t)1 << 40) / L) return sm_error("calibration: %lld samples of %lld tokens are too many", (long long)n, (long long)L);
    out->tokens = malloc(sizeof(int32_t) * (size_t)(n * L));
    if (!out->tokens) return sm_error("out of memory for %lld calibration samples", (long long)n);
    out->starts = malloc(sizeof(int64_t) * (size_t)n);
    if (!out->starts) {
        sm_calib_set_free(out);
        return sm_error("out of memory");
    }
    uint64_t state = o->seed;
    for (int64_t k = 0; k < n; k++) {
        const int64_t s = o->in_order ? k * L : (int64_t)uniform(&state, (uint64_t)(n_tokens - (size_t)L) + 1);
        out->starts[k] = s;
        memcpy(out->tokens + k * L, tokens + s, sizeof(int32_t) * (size_t)L);
        if (bos >= 0) out->tokens[k * L] = bos;
    }
    out->n_samples = n;
    out->seqlen = L;
    return 0;
}

void sm_calib_set_free(sm_calib_set *s) {
    free(s->tokens);
    free(s->starts);
    memset(s, 0, sizeof *s);
}
