/* test_llama2c.c - the llama2.c checkpoint reader against stories260K (header and offsets from
 * stories260k/SOURCE.md, bytes read independently with stdio) and hostile inputs. */
#include "formats/formats.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

/* n bytes at offset off of a file, read with stdio (malloc'ed). */
static uint8_t *read_at(const char *path, long off, size_t n) {
    FILE *f = fopen(path, "rb");
    uint8_t *b = malloc(n);
    if (!f || !b || fseek(f, off, SEEK_SET) || fread(b, 1, n, f) != n) {
        if (f) fclose(f);
        free(b);
        return NULL;
    }
    fclose(f);
    return b;
}

static void same_bytes(const char *path, const sm_ckpt *c, const char *name, long off, int n_dims, int64_t d0,
                       int64_t d1) {
    const sm_tensor *t = sm_ckpt_find(c, name);
    CHECK_MSG(t != NULL, "%s", name);
    if (!t) return;
    CHECK(t->type == SM_TYPE_F32 && t->n_dims == n_dims && t->shape[0] == d0 && (n_dims == 1 || t->shape[1] == d1));
    size_t n = (size_t)(d0 * (n_dims == 2 ? d1 : 1) * 4);
    CHECK(t->nbytes == n);
    uint8_t *want = read_at(path, off, n);
    CHECK_MSG(want && !memcmp(want, t->data, n), "%s bytes at offset %ld", name, off);
    free(want);
}

static void stories260k(void) {
    const char *path = tl_asset("models/stories260k/stories260K.bin");
    sm_ckpt *c = NULL;
    sm_llama2c_config cfg;
    CHECK_OK(sm_llama2c_open(path, &c, &cfg));
    if (!c) return;
    CHECK(c->kind == SM_CKPT_LLAMA2C);
    CHECK(cfg.dim == 64 && cfg.hidden_dim == 172 && cfg.n_layers == 5 && cfg.n_heads == 8 && cfg.n_kv_heads == 4);
    CHECK(cfg.vocab_size == 512 && cfg.seq_len == 512 && cfg.shared_classifier);
    /* token_embd, 9 per layer, output_norm; RoPE tables skipped; classifier shared */
    CHECK(c->n_tensors == 1 + 5 * 9 + 1);
    CHECK(sm_ckpt_find(c, "output.weight") == NULL);
    /* offsets from SOURCE.md's table: per-layer slices of the stacked arrays */
    same_bytes(path, c, "token_embd.weight", 28, 2, 512, 64);
    same_bytes(path, c, "blk.0.attn_norm.weight", 131100, 1, 64, 0);
    same_bytes(path, c, "blk.4.attn_norm.weight", 131100 + 4 * 256, 1, 64, 0);
    same_bytes(path, c, "blk.0.attn_q.weight", 132380, 2, 64, 64);
    same_bytes(path, c, "blk.2.attn_q.weight", 132380 + 2 * 16384, 2, 64, 64);
    same_bytes(path, c, "blk.1.attn_k.weight", 214300 + 8192, 2, 32, 64);
    same_bytes(path, c, "blk.4.attn_v.weight", 255260 + 4 * 8192, 2, 32, 64);
    same_bytes(path, c, "blk.3.attn_output.weight", 296220 + 3 * 16384, 2, 64, 64);
    same_bytes(path, c, "blk.0.ffn_norm.weight", 378140, 1, 64, 0);
    same_bytes(path, c, "blk.1.ffn_gate.weight", 379420 + 44032, 2, 172, 64);
    same_bytes(path, c, "blk.4.ffn_down.weight", 599580 + 4 * 44032, 2, 64, 172);
    same_bytes(path, c, "blk.0.ffn_up.weight", 819740, 2, 172, 64);
    same_bytes(path, c, "output_norm.weight", 1039900, 1, 64, 0);
    sm_ckpt_close(c);
}

/* A minimal valid checkpoint: dim 4, hidden 6, 1 layer, 2 heads, 1 kv head, vocab v, seq 3. */
static size_t tiny(uint8_t **out, int32_t vocab) {
    const int32_t hdr[7] = {4, 6, 1, 2, 1, vocab, 3};
    int32_t V = vocab < 0 ? -vocab : vocab;
    size_t floats = (size_t)(V * 4 + 4 + 16 + 8 + 8 + 16 + 4 + 24 * 3 + 4 + 3 * 1 * 2 + (vocab < 0 ? V * 4 : 0));
    size_t n = 28 + 4 * floats;
    uint8_t *b = calloc(1, n);
    memcpy(b, hdr, sizeof hdr);
    float *f = (float *)(b + 28);
    for (size_t i = 0; i < floats; i++) f[i] = (float)i;
    *out = b;
    return n;
}

static void separate_classifier(void) {
    uint8_t *b;
    size_t n = tiny(&b, -5);
    const char *p = tl_tmp("tiny-unshared.bin");
    CHECK(tl_write_file(p, b, n) == 0);
    sm_ckpt *c = NULL;
    sm_llama2c_config cfg;
    CHECK_OK(sm_llama2c_open(p, &c, &cfg));
    if (c) {
        CHECK(!cfg.shared_classifier && cfg.vocab_size == 5);
        const sm_tensor *o = sm_ckpt_find(c, "output.weight");
        CHECK(o && o->shape[0] == 5 && o->shape[1] == 4);
        /* wcls is the last 20 floats of the file */
        if (o) CHECK(((const float *)o->data)[0] == (float)((n - 28) / 4 - 20));
        sm_ckpt_close(c);
    }
    free(b);
}

static void hostile(void) {
    uint8_t *b;
    size_t n = tiny(&b, 5);
    const char *p = tl_tmp("tiny-bad.bin");
    sm_ckpt *c = NULL;
    sm_llama2c_config cfg;
    CHECK(tl_write_file(p, b, n) == 0);
    CHECK_OK(sm_llama2c_open(p, &c, &cfg));
    sm_ckpt_close(c);
    c = NULL;
    /* one byte short, one byte long */
    CHECK(tl_write_file(p, b, n - 1) == 0);
    CHECK_FAILS_WITH(sm_llama2c_open(p, &c, &cfg), "expected exactly");
    CHECK(c == NULL);
    uint8_t *longer = calloc(1, n + 1);
    memcpy(longer, b, n);
    CHECK(tl_write_file(p, longer, n + 1) == 0);
    CHECK_FAILS_WITH(sm_llama2c_open(p, &c, &cfg), "expected exactly");
    free(longer);
    /* header fields */
    CHECK(tl_write_file(p, b, 20) == 0);
    CHECK_FAILS_WITH(sm_llama2c_open(p, &c, &cfg), "28-byte");
    int32_t bad[][7] = {
        {0, 6, 1, 2, 1, 5, 3},          /* dim 0 */
        {4, 6, -1, 2, 1, 5, 3},         /* negative layers */
        {4, 6, 1, 3, 1, 5, 3},          /* dim not divisible by heads */
        {4, 6, 1, 2, 3, 5, 3},          /* kv heads > heads */
        {4, 6, 1, 4, 1, 5, 3},          /* odd head size (1) */
        {4, 6, 1, 2, 1, INT32_MIN, 3},  /* |vocab| overflows */
        {1 << 20, 1 << 20, 4096, 2, 1, 1 << 20, 1 << 20}, /* huge: size check, no overflow */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(b, bad[i], 28);
        CHECK(tl_write_file(p, b, n) == 0);
        CHECK_FAILS_WITH(sm_llama2c_open(p, &c, &cfg), "offset");
        CHECK(c == NULL);
    }
    free(b);
    CHECK_FAILS_WITH(sm_llama2c_open(tl_tmp("absent.bin"), &c, &cfg), "cannot open");
}

void run_tests(void) {
    TEST(stories260k);
    TEST(separate_classifier);
    TEST(hostile);
}
