/* test_imatrix.c - llama.cpp importance-matrix files: a legacy .dat laid out by hand from
 * llama.cpp's documented format, GGUF and .dat round trips, and malformed files. */
#include "testlib.h"

#include "calib/calib.h"
#include "formats/formats.h"

#include <string.h>

static size_t put_i32(uint8_t *b, size_t k, int32_t v) { memcpy(b + k, &v, 4); return k + 4; }
static size_t put_f32(uint8_t *b, size_t k, float v) { memcpy(b + k, &v, 4); return k + 4; }

/* two entries: "blk.0.attn_q.weight" with ncall 4 and values {8, 4, 2, 0} (mean*ncall),
 * "blk.0.ffn_down.weight" with ncall 2 and values {1, 3}; trailer: 10 chunks, "calib.txt". */
static size_t legacy_bytes(uint8_t *b) {
    size_t k = put_i32(b, 0, 2);
    const char *n1 = "blk.0.attn_q.weight", *n2 = "blk.0.ffn_down.weight";
    k = put_i32(b, k, (int32_t)strlen(n1));
    memcpy(b + k, n1, strlen(n1)); k += strlen(n1);
    k = put_i32(b, k, 4); k = put_i32(b, k, 4);
    k = put_f32(b, k, 8); k = put_f32(b, k, 4); k = put_f32(b, k, 2); k = put_f32(b, k, 0);
    k = put_i32(b, k, (int32_t)strlen(n2));
    memcpy(b + k, n2, strlen(n2)); k += strlen(n2);
    k = put_i32(b, k, 2); k = put_i32(b, k, 2);
    k = put_f32(b, k, 1); k = put_f32(b, k, 3);
    k = put_i32(b, k, 10);
    k = put_i32(b, k, 9);
    memcpy(b + k, "calib.txt", 9);
    return k + 9;
}

static void legacy(void) {
    uint8_t b[512];
    size_t n = legacy_bytes(b);
    const char *p = tl_tmp("legacy.dat");
    CHECK(tl_write_file(p, b, n) == 0);
    sm_imatrix m;
    CHECK_OK(sm_imatrix_load(p, &m));
    CHECK(m.legacy && m.n_entries == 2 && m.chunk_count == 10);
    CHECK(m.n_datasets == 1 && !strcmp(m.datasets[0], "calib.txt"));
    const float *w = sm_imatrix_find(&m, "blk.0.attn_q.weight", 4, 0);
    CHECK(w && w[0] == 2.0f && w[1] == 1.0f && w[2] == 0.5f && w[3] == 0.0f);
    w = sm_imatrix_find(&m, "blk.0.ffn_down.weight", 2, 0);
    CHECK(w && w[0] == 0.5f && w[1] == 1.5f);
    CHECK(sm_imatrix_find(&m, "blk.0.ffn_down.weight", 3, 0) == NULL);
    CHECK(sm_imatrix_find(&m, "nope", 2, 0) == NULL);
    /* re-saved as .dat then GGUF, the weights are the same */
    m.chunk_size = 512;
    CHECK_OK(sm_imatrix_save_dat(&m, tl_tmp("again.dat")));
    sm_imatrix m2;
    CHECK_OK(sm_imatrix_load(tl_tmp("again.dat"), &m2));
    w = sm_imatrix_find(&m2, "blk.0.attn_q.weight", 4, 0);
    CHECK(w && w[0] == 2.0f && w[2] == 0.5f);
    sm_imatrix_free(&m2);
    sm_imatrix_free(&m);
    /* every truncation fails cleanly, except where the optional trailer may end */
    for (size_t cut = 0; cut < n; cut++) {
        CHECK(tl_write_file(p, b, cut) == 0);
        sm_imatrix t;
        int rc = sm_imatrix_load(p, &t);
        size_t body = n - 4 - 4 - 9;
        if (cut == body || cut == body + 4) CHECK_OK(rc); /* trailer optional, as in llama.cpp */
        else CHECK_MSG(rc != 0, "truncated at %zu accepted", cut);
        if (rc == 0) sm_imatrix_free(&t);
    }
}

static void gguf_round_trip(void) {
    sm_imatrix m = {0};
    float sums[6] = {2, 4, 6, 0, 1, 2};
    int64_t counts[2] = {2, 0}; /* second matrix has no data: weights 1 */
    CHECK_OK(sm_imatrix_add(&m, "blk.1.ffn_up.weight", 2, 3, sums, counts));
    float s2[2] = {9, 3};
    int64_t c2[1] = {3};
    CHECK_OK(sm_imatrix_add(&m, "blk.0.attn_k.weight", 1, 2, s2, c2));
    CHECK_FAILS_WITH(sm_imatrix_add(&m, "blk.0.attn_k.weight", 1, 2, s2, c2), "twice");
    CHECK_OK(sm_imatrix_add_dataset(&m, "kjv-calib.txt"));
    m.chunk_count = 7;
    m.chunk_size = 512;
    const char *p = tl_tmp("im.gguf");
    CHECK_OK(sm_imatrix_save_gguf(&m, p));
    sm_imatrix_free(&m);

    /* the file is a GGUF with llama.cpp's keys and tensor names */
    sm_gguf *g;
    CHECK_OK(sm_gguf_open(p, &g));
    CHECK(!strcmp(sm_gguf_get_str(g, "general.type"), "imatrix"));
    const sm_tensor *t = sm_gguf_find_tensor(g, "blk.1.ffn_up.weight.in_sum2");
    CHECK(t && t->type == SM_TYPE_F32 && t->n_dims == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    t = sm_gguf_find_tensor(g, "blk.1.ffn_up.weight.counts");
    CHECK(t && t->shape[0] == 2 && t->shape[1] == 1);
    sm_gguf_close(g);

    CHECK_OK(sm_imatrix_load(p, &m));
    CHECK(!m.legacy && m.chunk_count == 7 && m.chunk_size == 512 && m.n_datasets == 1);
    const float *w = sm_imatrix_find(&m, "blk.1.ffn_up.weight", 3, 0);
    CHECK(w && w[0] == 1.0f && w[1] == 2.0f && w[2] == 3.0f);
    w = sm_imatrix_find(&m, "blk.1.ffn_up.weight", 3, 1);
    CHECK(w && w[0] == 1.0f && w[1] == 1.0f);
    w = sm_imatrix_find(&m, "blk.0.attn_k.weight", 2, 0);
    CHECK(w && w[0] == 3.0f && w[1] == 1.0f);
    sm_imatrix_free(&m);
}

static void malformed(void) {
    uint8_t b[64];
    size_t k = put_i32(b, 0, -1);
    CHECK(tl_write_file(tl_tmp("neg.dat"), b, k) == 0);
    sm_imatrix m;
    CHECK_FAILS_WITH(sm_imatrix_load(tl_tmp("neg.dat"), &m), "entry count");
    k = put_i32(b, 0, 1);
    k = put_i32(b, k, 1000000); /* name longer than the file */
    CHECK(tl_write_file(tl_tmp("name.dat"), b, k) == 0);
    CHECK_FAILS_WITH(sm_imatrix_load(tl_tmp("name.dat"), &m), "name length");
    k = put_i32(b, 0, 1);
    k = put_i32(b, k, 1); b[k++] = 'a';
    k = put_i32(b, k, 1); k = put_i32(b, k, 0x40000000); /* values beyond the file */
    CHECK(tl_write_file(tl_tmp("vals.dat"), b, k) == 0);
    CHECK_FAILS_WITH(sm_imatrix_load(tl_tmp("vals.dat"), &m), "do not fit");
    CHECK_FAILS_WITH(sm_imatrix_load(tl_tmp("missing.dat"), &m), "cannot open");
}

void run_tests(void) {
    TEST(legacy);
    TEST(gguf_round_trip);
    TEST(malformed);
}
