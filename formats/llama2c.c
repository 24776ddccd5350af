/* llama2c.c - reader for Karpathy's llama2.c checkpoints (the legacy "version 0" fp32 export
 * that run.c reads: `stories260K.bin`).
 *
 * Layout (llama2.c export.py legacy_export / run.c memory_map_weights): seven little-endian
 * int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
 * vocab_size means the classifier is stored separately), then float32 arrays:
 * token_embedding[vocab][dim], rms_att[L][dim], wq[L][dim][dim], wk[L][kv_dim][dim],
 * wv[L][kv_dim][dim], wo[L][dim][dim], rms_ffn[L][dim], w1[L][hidden][dim],
 * w2[L][dim][hidden], w3[L][hidden][dim], rms_final[dim], freq_cis_real[seq_len][head/2],
 * freq_cis_imag[seq_len][head/2], then wcls[vocab][dim] only if not shared.
 * The file size must equal that sum exactly. Each per-layer slice becomes one tensor named as
 * in GGUF (llama2.c's rope pairs adjacent elements, ggml's layout, so q/k need no permute);
 * the RoPE tables are skipped (llama.cpp computes rope itself). */
#include "checkpoint_internal.h"
#include "formats.h"

#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES 28
#define MAX_SIDE ((int64_t)1 << 20)   /* any one dimension */
#define MAX_LAYERS 4096

static int32_t rd_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (int32_t)u;
}

typedef struct section {
    const char *gguf;    /* the tensor name, or the part after "blk.N." */
    bool per_layer;
    int64_t rows, cols;  /* per layer (cols 0 for a vector) */
    bool skip;           /* read over, not a tensor */
} section;

int sm_llama2c_open(const char *path, sm_ckpt **out, sm_llama2c_config *cfg) {
    *out = NULL;
    memset(cfg, 0, sizeof *cfg);
    sm_ckpt *c = sm_ckpt_new(SM_CKPT_LLAMA2C, path);
    if (!c) return -1;
    const sm_mmap *m = sm_ckpt_add_mmap(c, path);
    if (!m) goto fail;
    const uint8_t *base = m->data;
    const uint64_t size = m->size;
    if (size < HEADER_BYTES) {
        sm_error("%s: offset 0: expected a 28-byte llama2.c header, the file has %llu bytes", path,
                 (unsigned long long)size);
        goto fail;
    }
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = rd_i32(base + 4 * i);
    static const char *const FIELD[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++) {
        int64_t v = i == 5 ? (int64_t)llabs((long long)h[i]) : h[i];
        int64_t max = i == 2 ? MAX_LAYERS : MAX_SIDE;
        if (v <= 0 || v > max) {
            sm_error("%s: offset %d: %s = %d, expected %s1..%lld", path, 4 * i, FIELD[i], h[i], i == 5 ? "+/-" : "",
                     (long long)max);
            goto fail;
        }
    }
    cfg->dim = h[0];
    cfg->hidden_dim = h[1];
    cfg->n_layers = h[2];
    cfg->n_heads = h[3];
    cfg->n_kv_heads = h[4];
    cfg->shared_classifier = h[5] > 0;
    cfg->vocab_size = h[5] > 0 ? h[5] : -h[5];
    cfg->seq_len = h[6];
    if (cfg->dim % cfg->n_heads || cfg->n_heads % cfg->n_kv_heads || (cfg->dim / cfg->n_heads) % 2) {
        sm_error("%s: offset 0: inconsistent header: dim %d, n_heads %d, n_kv_heads %d (expected dim divisible "
                 "by n_heads into an even head size, n_heads divisible by n_kv_heads)",
                 path, cfg->dim, cfg->n_heads, cfg->n_kv_heads);
        goto fail;
    }
    const int64_t D = cfg->dim, F = cfg->hidden_dim, L = cfg->n_layers, V = cfg->vocab_size;
    const int64_t KV = D / cfg->n_heads * cfg->n_kv_heads, HALF = D / cfg->n_heads / 2, S = cfg->seq_len;
    const section secs[] = {
        {"token_embd.weight", false, V, D, false},
        {"attn_norm.weight", true, D, 0, false},
        {"attn_q.weight", true, D, D, false},
        {"attn_k.weight", true, KV, D, false},
        {"attn_v.weight", true, KV, D, false},
        {"attn_output.weight", true, D, D, false},
        {"ffn_norm.weight", true, D, 0, false},
        {"ffn_gate.weight", true, F, D, false},
        {"ffn_down.weight", true, D, F, false},
        {"ffn_up.weight", true, F, D, false},
        {"output_norm.weight", false, D, 0, false},
        {"freq_cis_real", false, S, HALF, true},
        {"freq_cis_imag", false, S, HALF, true},
        {"output.weight", false, V, D, false},
    };
    /* the separate classifier exists only with a negative vocab_size */
    const size_t n_secs = sizeof secs / sizeof secs[0] - (cfg->shared_classifier ? 1 : 0);
    /* every factor is <= 2^20 and L <= 2^12, so no product or sum can overflow 64 bits */
    uint64_t expect = HEADER_BYTES;
    for (size_t i = 0; i < n_secs; i++)
        expect += (uint64_t)secs[i].rows * (uint64_t)(secs[i].cols ? secs[i].cols : 1) * 4 *
                  (uint64_t)(secs[i].per_layer ? L : 1);
    if (size != expect) {
        sm_error("%s: offset %llu: file size %llu, expected exactly %llu bytes for a llama2.c fp32 checkpoint "
                 "(dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, vocab %d, seq_len %d, %s classifier)",
                 path, (unsigned long long)(size < expect ? size : expect), (unsigned long long)size,
                 (unsigned long long)expect, cfg->dim, cfg->hidden_dim, cfg->n_layers, cfg->n_heads, cfg->n_kv_heads,
                 cfg->vocab_size, cfg->seq_len, cfg->shared_classifier ? "shared" : "separate");
        goto fail;
    }
    uint64_t off = HEADER_BYTES;
    for (size_t i = 0; i < n_secs; i++) {
        const section *s = &secs[i];
        const uint64_t per = (uint64_t)s->rows * (uint64_t)(s->cols ? s->cols : 1) * 4;
        for (int64_t l = 0; l < (s->per_layer ? L : 1); l++, off += per) {
            if (s->skip) continue;
            char name[48];
            if (s->per_layer) snprintf(name, sizeof name, "blk.%lld.%s", (long long)l, s->gguf);
            else snprintf(name, sizeof name, "%s", s->gguf);
            sm_tensor *x = sm_ckpt_add_tensor(c);
            if (!x) goto fail;
            x->name = sm_ckpt_strdup(c, name);
            if (!x->name) goto fail;
            x->type = SM_TYPE_F32;
            x->n_dims = s->cols ? 2 : 1;
            x->shape[0] = s->rows;
            x->shape[1] = s->cols;
            x->data = base + off;
            x->nbytes = per;
        }
    }
    if (sm_ckpt_finish(c)) goto fail;
    *out = c;
    return 0;
fail:
    sm_ckpt_close(c);
    return -1;
}
