/* moe_testlib.c - tiny mixture-of-experts GGUF fixtures and a synthetic per-expert imatrix
 * (see moe_testlib.h). */
#include "moe_testlib.h"

#include "calib/calib.h"
#include "formats/formats.h"
#include "formats/sink.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const tm_moe TM_MIXTRAL = {"llama", 8, 256, 8, 4, 32, 8, 2, 256, 256, NULL, 0, 0x6d697874};
const tm_moe TM_QWEN3MOE = {"qwen3moe", 4, 256, 4, 2, 64, 6, 2, 128, 256, NULL, 0, 0x7177656e};

typedef struct rng { uint64_t s; } rng;

static double uniform(rng *r) { /* splitmix64 -> (0, 1) */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}

static float normal(rng *r) { return (float)(sqrt(-2.0 * log(uniform(r))) * cos(6.283185307179586 * uniform(r))); }

/* n values ~ N(0, scale^2), one in 512 of them 8x larger (the outliers real weights have) */
static void fill_random(rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = normal(r) * scale * (uniform(r) < 1.0 / 512 ? 8.0f : 1.0f);
}

typedef struct spec {
    char name[96];
    int n_dims;
    int64_t shape[3];
} spec;

static int n_specs(const tm_moe *c) { return 3 + c->n_layer * (strcmp(c->arch, "qwen3moe") ? 10 : 12); }

/* the tensors of the model, llama.cpp's names, outermost dimension first */
static void specs(const tm_moe *c, spec *s) {
    const int64_t E = c->n_embd, Q = (int64_t)c->n_head * c->head_dim, KV = (int64_t)c->n_head_kv * c->head_dim;
    const int64_t X = c->n_expert, F = c->n_ff_exp;
    int k = 0;
#define T(nd, a, b, cc, ...) (snprintf(s[k].name, sizeof s[k].name, __VA_ARGS__), s[k].n_dims = nd, \
                              s[k].shape[0] = a, s[k].shape[1] = b, s[k].shape[2] = cc, k++)
    T(2, c->n_vocab, E, 0, "token_embd.weight");
    T(1, E, 0, 0, "output_norm.weight");
    T(2, c->n_vocab, E, 0, "output.weight");
    for (int l = 0; l < c->n_layer; l++) {
        T(1, E, 0, 0, "blk.%d.attn_norm.weight", l);
        T(2, Q, E, 0, "blk.%d.attn_q.weight", l);
        T(2, KV, E, 0, "blk.%d.attn_k.weight", l);
        T(2, KV, E, 0, "blk.%d.attn_v.weight", l);
        T(2, E, Q, 0, "blk.%d.attn_output.weight", l);
        if (!strcmp(c->arch, "qwen3moe")) {
            T(1, c->head_dim, 0, 0, "blk.%d.attn_q_norm.weight", l);
            T(1, c->head_dim, 0, 0, "blk.%d.attn_k_norm.weight", l);
        }
        T(1, E, 0, 0, "blk.%d.ffn_norm.weight", l);
        T(2, X, E, 0, "blk.%d.ffn_gate_inp.weight", l);
        T(3, X, F, E, "blk.%d.ffn_gate_exps.weight", l);
        T(3, X, F, E, "blk.%d.ffn_up_exps.weight", l);
        T(3, X, E, F, "blk.%d.ffn_down_exps.weight", l);
    }
#undef T
}

static void set_keys(const tm_moe *c, sm_meta *m) {
    char k[128];
    const char *a = c->arch;
#define KEY(suffix) (snprintf(k, sizeof k, "%s." suffix, a), k)
    sm_meta_set_str(m, "general.architecture", a);
    sm_meta_set_str(m, "general.name", "smelt tiny moe fixture");
    sm_meta_set_u32(m, "general.file_type", 0);
    sm_meta_set_u32(m, KEY("context_length"), 512);
    sm_meta_set_u32(m, KEY("embedding_length"), (uint32_t)c->n_embd);
    sm_meta_set_u32(m, KEY("block_count"), (uint32_t)c->n_layer);
    sm_meta_set_u32(m, KEY("feed_forward_length"), (uint32_t)c->n_ff_exp);
    sm_meta_set_u32(m, KEY("attention.head_count"), (uint32_t)c->n_head);
    sm_meta_set_u32(m, KEY("attention.head_count_kv"), (uint32_t)c->n_head_kv);
    sm_meta_set_f32(m, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    sm_meta_set_f32(m, KEY("rope.freq_base"), 10000.0f);
    sm_meta_set_u32(m, KEY("expert_count"), (uint32_t)c->n_expert);
    sm_meta_set_u32(m, KEY("expert_used_count"), (uint32_t)c->n_expert_used);
    if (!strcmp(a, "qwen3moe")) {
        sm_meta_set_u32(m, KEY("expert_feed_forward_length"), (uint32_t)c->n_ff_exp);
        sm_meta_set_u32(m, KEY("attention.key_length"), (uint32_t)c->head_dim);
        sm_meta_set_u32(m, KEY("attention.value_length"), (uint32_t)c->head_dim);
    } else {
        sm_meta_set_u32(m, KEY("rope.dimension_count"), (uint32_t)c->head_dim);
        sm_meta_set_u32(m, KEY("vocab_size"), (uint32_t)c->n_vocab);
    }
#undef KEY
}

/* one tensor's values: from the dense model where it has them, else random */
static int fill_tensor(const tm_moe *c, const sm_gguf *dense, const spec *s, rng *r, float *x, int64_t n) {
    const char *exps = strstr(s->name, "_exps.weight");
    char src[96];
    snprintf(src, sizeof src, "%s", s->name);
    if (exps) snprintf(src + (exps - s->name), sizeof src - (size_t)(exps - s->name), ".weight");
    const sm_tensor *t = dense && !strstr(s->name, "gate_inp") ? sm_gguf_find_tensor(dense, src) : NULL;
    if (t) {
        const int64_t per = exps ? n / s->shape[0] : n;
        CHECK_MSG(t->type == SM_TYPE_F32 && sm_tensor_nelements(t) == per, "%s: dense %s is not F32 of %lld values",
                  c->dense, src, (long long)per);
        if (t->type != SM_TYPE_F32 || sm_tensor_nelements(t) != per) return -1;
        const float *w = t->data;
        double ss = 0;
        for (int64_t i = 0; i < per; i++) ss += (double)w[i] * w[i];
        const float noise = exps ? c->noise * (float)sqrt(ss / (double)per) : 0.0f;
        for (int64_t i = 0; i < n; i++) x[i] = w[i % per] + (noise > 0 ? noise * normal(r) : 0.0f);
        return 0;
    }
    CHECK_MSG(!dense || strstr(s->name, "gate_inp"), "%s: the dense model lacks %s", c->dense, src);
    if (dense && !strstr(s->name, "gate_inp")) return -1;
    if (s->n_dims == 1) {
        for (int64_t i = 0; i < n; i++) x[i] = 1.0f + 0.1f * normal(r);
        return 0;
    }
    const int64_t cols = s->shape[s->n_dims - 1];
    fill_random(r, x, n, strstr(s->name, "token_embd") ? 1.0f : 1.0f / sqrtf((float)cols));
    return 0;
}

int tm_make_moe(const char *path, const tm_moe *c) {
    const int ns = n_specs(c);
    spec *s = calloc((size_t)ns, sizeof *s);
    sm_gguf *dense = NULL;
    sm_sink *w = NULL;
    float *x = NULL;
    int rc = -1;
    rng r = {c->seed};
    if (!s || (c->dense && sm_gguf_open(c->dense, &dense))) goto done;
    specs(c, s);
    if (!(w = sm_sink_open(path, NULL))) goto done;
    if (dense) sm_meta_set_quantized(sm_sink_meta(w), dense, 0);
    set_keys(c, sm_sink_meta(w));
    if (dense) { /* an F32 file carries no quantization version */
        sm_meta_remove(sm_sink_meta(w), "general.quantization_version");
        sm_meta_set_str(sm_sink_meta(w), "general.name", "smelt tiny moe fixture (kjv)");
    }
    for (int i = 0; i < ns; i++)
        if (sm_sink_add(w, s[i].name, SM_TYPE_F32, s[i].n_dims, s[i].shape)) goto done;
    if (sm_sink_begin(w)) goto done;
    for (int i = 0; i < ns; i++) {
        int64_t n = 1;
        for (int d = 0; d < s[i].n_dims; d++) n *= s[i].shape[d];
        free(x);
        if (!(x = malloc((size_t)n * sizeof *x))) goto done;
        if (fill_tensor(c, dense, &s[i], &r, x, n) || sm_sink_write(w, x, (uint64_t)n * 4)) goto done;
    }
    rc = sm_sink_finish(w);
done:
    CHECK_MSG(rc == 0, "writing the %s expert fixture %s: %s", c->arch, path, sm_last_error());
    sm_sink_close(w);
    if (dense) sm_gguf_close(dense);
    free(x);
    free(s);
    return rc;
}

int tm_make_imatrix(const char *model, const char *path, bool legacy) {
    sm_gguf *g = NULL;
    sm_imatrix im = {0};
    int rc = -1;
    rng r = {0x696d6174};
    if (sm_gguf_open(model, &g)) goto done;
    im.chunk_size = 512;
    im.chunk_count = 3;
    if (sm_imatrix_add_dataset(&im, "synthetic")) goto done;
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        if (strncmp(t->name, "blk.", 4) || t->n_dims < 2) continue;
        const int64_t n_mat = t->n_dims == 3 ? t->shape[0] : 1, cols = sm_tensor_row_len(t);
        float *sums = malloc((size_t)(n_mat * cols) * sizeof *sums);
        int64_t *counts = malloc((size_t)n_mat * sizeof *counts);
        if (!sums || !counts) { free(sums); free(counts); goto done; }
        for (int64_t m = 0; m < n_mat; m++) {
            /* expert 1 saw no token; the others a different share of the 1536 */
            counts[m] = n_mat == 1 ? 1536 : m == 1 ? 0 : 64 + (int64_t)(uniform(&r) * 700);
            for (int64_t j = 0; j < cols; j++) {
                const double v = exp(2.0 * normal(&r)); /* per-column importance spread over orders of magnitude */
                sums[m * cols + j] = counts[m] ? (float)(v * (double)counts[m]) : 0.0f;
            }
        }
        int arc = sm_imatrix_add(&im, t->name, n_mat, cols, sums, counts);
        free(sums);
        free(counts);
        if (arc) goto done;
    }
    rc = legacy ? sm_imatrix_save_dat(&im, path) : sm_imatrix_save_gguf(&im, path);
done:
    CHECK_MSG(rc == 0, "writing the imatrix %s for %s: %s", path, model, sm_last_error());
    sm_imatrix_free(&im);
    if (g) sm_gguf_close(g);
    return rc;
}
