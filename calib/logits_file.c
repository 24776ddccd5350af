/* logits_file.c - the compressed log-probability file of KL-divergence runs, in llama.cpp's
 * --kl-divergence-base layout (described in calib.h): encoding one record, and a
 * bounds-checked reader that keeps the file mmapped. */
#include "calib_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB (1 << 24)

/* Round to nearest, ties to even, by llama.cpp's float trick (valid for |v| < 2^22). */
static int nearest_int(float v) {
    float f = v + 12582912.f;
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

double sm_logits_record_encode(const float *logits, int64_t n_vocab, int32_t tok, uint16_t *rec) {
    float max_logit = logits[0], min_logit = logits[0];
    for (int64_t i = 1; i < n_vocab; i++) {
        max_logit = fmaxf(max_logit, logits[i]);
        min_logit = fminf(min_logit, logits[i]);
    }
    min_logit = fmaxf(min_logit, max_logit - 16);
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; i++) sum_exp += expf(logits[i] - max_logit);
    const float log_sum_exp = (float)log(sum_exp);
    const float min_log_prob = min_logit - max_logit - log_sum_exp;
    const float scale = (max_logit - min_logit) / 65535.f;
    memcpy(rec, &scale, 4);
    memcpy(rec + 2, &min_log_prob, 4);
    uint16_t *q = rec + 4;
    if (scale != 0) {
        const float inv_scale = 1 / scale;
        for (int64_t i = 0; i < n_vocab; i++)
            q[i] = logits[i] > min_logit ? (uint16_t)nearest_int(inv_scale * (logits[i] - min_logit)) : 0;
    } else {
        memset(q, 0, sizeof(uint16_t) * (size_t)n_vocab);
    }
    if (n_vocab % 2) q[n_vocab] = 0;
    return max_logit + log_sum_exp - logits[tok];
}

static int32_t rd32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

int32_t sm_logits_file_token(const sm_logits_file *f, int64_t i) { return rd32(f->tokens + 4 * i); }

const unsigned char *sm_logits_file_record(const sm_logits_file *f, int64_t c, int64_t j) {
    const int64_t scored = f->n_ctx - 1 - f->n_ctx / 2;
    return f->records + (size_t)((c * scored + j) * f->nv) * 2;
}

int sm_logits_file_parse(const char *name, const void *data, size_t size, sm_logits_file *f) {
    const unsigned char *p = data;
    if (size < 20 || memcmp(p, "_logits_", 8) != 0)
        return sm_error("%s: offset 0: expected the \"_logits_\" header of a log-probability file", name);
    f->n_ctx = rd32(p + 8);
    f->n_vocab = rd32(p + 12);
    f->n_chunk = rd32(p + 16);
    if (f->n_ctx < 4 || f->n_ctx > (1 << 24))
        return sm_error("%s: offset 8: expected a context size in [4, 2^24], got %d", name, f->n_ctx);
    if (f->n_vocab < 1 || f->n_vocab > MAX_VOCAB)
        return sm_error("%s: offset 12: expected a vocabulary size in [1, 2^24], got %d", name, f->n_vocab);
    if (f->n_chunk < 1 || f->n_chunk > (1 << 24))
        return sm_error("%s: offset 16: expected a chunk count in [1, 2^24], got %d", name, f->n_chunk);
    f->nv = sm_logits_record_len(f->n_vocab);
    const uint64_t n_tok = (uint64_t)f->n_chunk * (uint64_t)f->n_ctx; /* < 2^48 */
    const uint64_t scored = (uint64_t)(f->n_ctx - 1 - f->n_ctx / 2);
    const uint64_t rec_bytes = (uint64_t)f->nv * 2;                     /* < 2^26 */
    const uint64_t n_rec = (uint64_t)f->n_chunk * scored;               /* < 2^48 */
    if (n_rec > UINT64_MAX / rec_bytes)
        return sm_error("%s: header describes an impossibly large file", name);
    const uint64_t want = 20 + 4 * n_tok + n_rec * rec_bytes;
    if (want < n_rec * rec_bytes || (uint64_t)size != want)
        return sm_error("%s: %zu bytes, expected %llu for %d chunks of %d tokens over %d vocabulary entries", name,
                        size, (unsigned long long)want, f->n_chunk, f->n_ctx, f->n_vocab);
    f->tokens = p + 20;
    f->records = p + 20 + 4 * n_tok;
    for (uint64_t i = 0; i < n_tok; i++) {
        int32_t t = rd32(f->tokens + 4 * i);
        if (t < 0 || t >= f->n_vocab)
            return sm_error("%s: offset %llu: expected a token id below %d, got %d", name,
                            (unsigned long long)(20 + 4 * i), f->n_vocab, t);
    }
    for (uint64_t r = 0; r < n_rec; r++) {
        const unsigned char *rec = f->records + r * rec_bytes;
        float scale, min_lp;
        memcpy(&scale, rec, 4);
        memcpy(&min_lp, rec + 4, 4);
        if (!isfinite(scale) || scale < 0 || !isfinite(min_lp) || min_lp > 0)
            return sm_error("%s: offset %llu: expected a finite non-negative scale and a log-probability <= 0", name,
                            (unsigned long long)(rec - p));
    }
    return 0;
}

int sm_logits_file_open(const char *path, sm_logits_file *f) {
    memset(f, 0, sizeof *f);
    if (sm_mmap_open(&f->map, path)) return -1;
    if (sm_logits_file_parse(path, f->map.data, f->map.size, f)) {
        sm_mmap_close(&f->map);
        return -1;
    }
    return 0;
}

void sm_logits_file_close(sm_logits_file *f) {
    if (f) sm_mmap_close(&f->map);
}
