/* test_gguf.c - GGUF reader and writer: round trips of every value type and of tensors of
 * several ggml types, the exact byte layout of a tiny file (computed by hand from the GGUF
 * spec, independent of our writer), truncated and malformed files, writer refusals and
 * atomicity, and - when LLAMA_CPP_BIN is set - interoperability with llama.cpp's llama-gguf
 * in both directions. */
#include "formats/formats.h"
#include "testlib.h"

#include <dirent.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a little-endian byte builder, independent of the writer ---- */

typedef struct bb {
    uint8_t *p;
    size_t n, cap;
} bb;

static void bb_raw(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_le(bb *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        uint8_t c = (uint8_t)(v >> (8 * i));
        bb_raw(b, &c, 1);
    }
}
static void bb_u32(bb *b, uint32_t v) { bb_le(b, v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_le(b, v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_raw(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t a) {
    while (b->n % a) bb_le(b, 0, 1);
}
static void bb_header(bb *b, uint64_t n_tensors, uint64_t n_kv) {
    bb_raw(b, "GGUF", 4);
    bb_u32(b, 3);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, SM_GGUF_UINT32);
    bb_u32(b, v);
}
/* A tensor info with n dims (ne innermost first). */
static void bb_tinfo(bb *b, const char *name, uint32_t n, const int64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n);
    for (uint32_t i = 0; i < n; i++) bb_u64(b, (uint64_t)ne[i]);
    bb_u32(b, type);
    bb_u64(b, off);
}

static uint32_t g_rng = 12345;
static uint8_t rnd8(void) {
    g_rng = g_rng * 1103515245u + 12345u;
    return (uint8_t)(g_rng >> 16);
}

static void expect_bad(bb *b, const char *needle) {
    sm_gguf *g = NULL;
    CHECK_FAILS_WITH(sm_gguf_open_mem(b->p, b->n, "bad.gguf", &g), needle);
    CHECK(g == NULL);
    CHECK_MSG(strstr(sm_last_error(), "bad.gguf") != NULL, "error names the file: %s", sm_last_error());
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- the tiny file, byte by byte ---- */

/* Metadata a=u32 7, s="hi"; tensor t: f32 [2] = {1, 2}; default alignment 32. */
static const uint8_t TINY[160] = {
    'G', 'G', 'U', 'F', 3, 0, 0, 0,                    /* magic, version 3 */
    1, 0, 0, 0, 0, 0, 0, 0,                            /* n_tensors = 1 */
    2, 0, 0, 0, 0, 0, 0, 0,                            /* n_kv = 2 */
    1, 0, 0, 0, 0, 0, 0, 0, 'a', 4, 0, 0, 0, 7, 0, 0, 0, /* "a": u32 (4) 7          @24 */
    1, 0, 0, 0, 0, 0, 0, 0, 's', 8, 0, 0, 0,           /* "s": string (8)          @41 */
    2, 0, 0, 0, 0, 0, 0, 0, 'h', 'i',                  /* "hi" */
    1, 0, 0, 0, 0, 0, 0, 0, 't', 1, 0, 0, 0,           /* tensor "t", n_dims 1      @64 */
    2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                /* ne[0] = 2, type f32 (0) */
    0, 0, 0, 0, 0, 0, 0, 0,                            /* offset 0; infos end @97 */
    [128] = 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40, /* data @128: 1.0f, 2.0f; zero padding to 160 */
};

static int write_tiny(const char *path) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    sm_meta_set_u32(sm_gguf_writer_meta(w), "a", 7);
    sm_meta_set_str(sm_gguf_writer_meta(w), "s", "hi");
    int64_t shape[1] = {2};
    float data[2] = {1.0f, 2.0f};
    if (sm_gguf_add_tensor(w, "t", SM_TYPE_F32, 1, shape) || sm_gguf_writer_begin(w, path) ||
        sm_gguf_writer_write(w, data, sizeof data)) {
        sm_gguf_writer_abort(w);
        return -1;
    }
    return sm_gguf_writer_finish(w);
}

static void byte_layout(void) {
    const char *p = tl_tmp("tiny.gguf");
    CHECK_OK(write_tiny(p));
    size_t n = 0;
    char *got = tl_slurp(p, &n);
    CHECK(got && n == sizeof TINY);
    if (got && n == sizeof TINY)
        for (size_t i = 0; i < n; i++)
            if ((uint8_t)got[i] != TINY[i]) {
                CHECK_MSG(0, "byte %zu: got 0x%02x, expected 0x%02x", i, (uint8_t)got[i], TINY[i]);
                break;
            }
    free(got);

    /* and the reader understands the hand-made bytes */
    sm_gguf *g;
    CHECK_OK(sm_gguf_open_mem(TINY, sizeof TINY, "tiny", &g));
    if (!g) return;
    CHECK(sm_gguf_version(g) == 3);
    CHECK(sm_gguf_alignment(g) == 32);
    CHECK(sm_gguf_data_offset(g) == 128);
    CHECK(sm_gguf_n_kv(g) == 2 && !strcmp(sm_gguf_key(g, 0), "a") && !strcmp(sm_gguf_key(g, 1), "s"));
    uint64_t a = 0;
    CHECK_OK(sm_gguf_get_u64(g, "a", &a));
    CHECK(a == 7);
    CHECK(sm_gguf_get_str(g, "s") && !strcmp(sm_gguf_get_str(g, "s"), "hi"));
    CHECK(sm_gguf_n_tensors(g) == 1);
    const sm_tensor *t = sm_gguf_find_tensor(g, "t");
    CHECK(t && t->type == SM_TYPE_F32 && t->n_dims == 1 && t->shape[0] == 2 && t->nbytes == 8);
    CHECK(t && t->data == TINY + 128);
    CHECK(sm_gguf_find_tensor(g, "u") == NULL);
    sm_gguf_close(g);
}

/* ---- round trip of every value type and several tensor types ---- */

typedef struct tdesc {
    const char *name;
    sm_type type;
    int n_dims;
    int64_t shape[4];
    uint64_t nbytes; /* from ggml's block sizes, by hand */
} tdesc;

static const tdesc TENSORS[] = {
    {"w.f32", SM_TYPE_F32, 2, {3, 5}, 3 * 5 * 4},
    {"w.f16", SM_TYPE_F16, 2, {2, 4}, 2 * 4 * 2},
    {"w.q8_0", SM_TYPE_Q8_0, 2, {2, 64}, 2 * 2 * 34},   /* block_q8_0: f16 d + 32 x i8 */
    {"w.q4_K", SM_TYPE_Q4_K, 2, {3, 256}, 3 * 144},     /* block_q4_K: 2 f16 + 12 scales + 128 nibbles */
    {"w.3d", SM_TYPE_F32, 3, {2, 3, 4}, 2 * 3 * 4 * 4},
    {"w.4d", SM_TYPE_BF16, 4, {1, 2, 1, 3}, 6 * 2},
    {"blk.0.ffn_down.weight", SM_TYPE_Q6_K, 1, {512}, 2 * 210},
};
#define N_TENSORS (sizeof TENSORS / sizeof TENSORS[0])

static const char *UNICODE = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\xa6\x99"; /* "héllo ✓ 🦙" */

static void fill(uint8_t *buf, size_t n, unsigned seed) {
    g_rng = seed;
    for (size_t i = 0; i < n; i++) buf[i] = rnd8();
}

static void write_rich(const char *path, bool chunked) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    sm_meta_set_str(sm_gguf_writer_meta(w), "general.architecture", "llama");
    sm_meta_set_u32(sm_gguf_writer_meta(w), "general.alignment", 64);
    sm_meta_set_u8(sm_gguf_writer_meta(w), "v.u8", 200);
    sm_gguf_value v = {.type = SM_GGUF_INT8};
    v.v.i = -100;
    sm_meta_set_val(sm_gguf_writer_meta(w), "v.i8", &v);
    v = (sm_gguf_value){.type = SM_GGUF_UINT16};
    v.v.u = 65535;
    sm_meta_set_val(sm_gguf_writer_meta(w), "v.u16", &v);
    v = (sm_gguf_value){.type = SM_GGUF_INT16};
    v.v.i = -32768;
    sm_meta_set_val(sm_gguf_writer_meta(w), "v.i16", &v);
    sm_meta_set_u32(sm_gguf_writer_meta(w), "v.u32", 4000000000u);
    sm_meta_set_i32(sm_gguf_writer_meta(w), "v.i32", -2000000000);
    sm_meta_set_f32(sm_gguf_writer_meta(w), "v.f32", 0.1f);
    sm_meta_set_bool(sm_gguf_writer_meta(w), "v.bool", true);
    sm_meta_set_bool(sm_gguf_writer_meta(w), "v.false", false);
    sm_meta_set_str(sm_gguf_writer_meta(w), "v.str", UNICODE);
    sm_meta_set_str(sm_gguf_writer_meta(w), "v.empty", "");
    sm_meta_set_u64(sm_gguf_writer_meta(w), "v.u64", UINT64_MAX);
    v = (sm_gguf_value){.type = SM_GGUF_INT64};
    v.v.i = INT64_MIN;
    sm_meta_set_val(sm_gguf_writer_meta(w), "v.i64", &v);
    v = (sm_gguf_value){.type = SM_GGUF_FLOAT64};
    v.v.f = 0.1234567890123456789;
    sm_meta_set_val(sm_gguf_writer_meta(w), "v.f64", &v);
    /* arrays of every fixed type */
    const uint8_t a_u8[] = {0, 1, 255};
    const int8_t a_i8[] = {-128, 0, 127};
    const uint16_t a_u16[] = {1, 65535};
    const int16_t a_i16[] = {-1, 2, -3};
    const uint32_t a_u32[] = {7, 4000000000u};
    const int32_t a_i32[] = {-5, 6, -7, 8};
    const float a_f32[] = {3.145f, -2.718f, 1e-30f};
    const uint8_t a_bool[] = {1, 0, 1, 1};
    const uint64_t a_u64[] = {UINT64_MAX, 0};
    const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    const double a_f64[] = {1.0 / 3, -1e300};
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.u8", SM_GGUF_UINT8, a_u8, 3);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.i8", SM_GGUF_INT8, a_i8, 3);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.u16", SM_GGUF_UINT16, a_u16, 2);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.i16", SM_GGUF_INT16, a_i16, 3);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.u32", SM_GGUF_UINT32, a_u32, 2);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.i32", SM_GGUF_INT32, a_i32, 4);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.f32", SM_GGUF_FLOAT32, a_f32, 3);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.bool", SM_GGUF_BOOL, a_bool, 4);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.u64", SM_GGUF_UINT64, a_u64, 2);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.i64", SM_GGUF_INT64, a_i64, 2);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.f64", SM_GGUF_FLOAT64, a_f64, 2);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "a.empty", SM_GGUF_INT32, NULL, 0);
    const char *strs[] = {"hello", "", UNICODE, "<0x0A>"};
    sm_meta_set_arr_str(sm_gguf_writer_meta(w), "a.str", strs, 4);
    sm_meta_set_arr_str(sm_gguf_writer_meta(w), "a.str_empty", NULL, 0);
    /* array of arrays: [[1, 2], [], [3]] of i32 */
    const int32_t one_two[] = {1, 2}, three[] = {3};
    sm_gguf_value inner[3] = {{.type = SM_GGUF_ARRAY}, {.type = SM_GGUF_ARRAY}, {.type = SM_GGUF_ARRAY}};
    inner[0].v.arr.type = inner[1].v.arr.type = inner[2].v.arr.type = SM_GGUF_INT32;
    inner[0].v.arr.n = 2;
    inner[0].v.arr.data = (void *)one_two;
    inner[2].v.arr.n = 1;
    inner[2].v.arr.data = (void *)three;
    sm_gguf_value nested = {.type = SM_GGUF_ARRAY};
    nested.v.arr.type = SM_GGUF_ARRAY;
    nested.v.arr.n = 3;
    nested.v.arr.items = inner;
    sm_meta_set_val(sm_gguf_writer_meta(w), "a.nested", &nested);
    /* replacing keeps the position, removing drops the key */
    sm_meta_set_u32(sm_gguf_writer_meta(w), "general.architecture", 1);
    sm_meta_set_str(sm_gguf_writer_meta(w), "general.architecture", "llama2");
    sm_meta_set_u32(sm_gguf_writer_meta(w), "v.removed", 1);
    sm_meta_remove(sm_gguf_writer_meta(w), "v.removed");
    sm_meta_remove(sm_gguf_writer_meta(w), "v.never_set");

    for (size_t i = 0; i < N_TENSORS; i++)
        CHECK_OK(sm_gguf_add_tensor(w, TENSORS[i].name, TENSORS[i].type, TENSORS[i].n_dims, TENSORS[i].shape));
    CHECK_OK(sm_gguf_writer_begin(w, path));
    for (size_t i = 0; i < N_TENSORS; i++) {
        uint8_t *buf = malloc(TENSORS[i].nbytes);
        fill(buf, TENSORS[i].nbytes, (unsigned)i + 1);
        if (chunked) {
            uint64_t half = TENSORS[i].nbytes / 2;
            CHECK_OK(sm_gguf_writer_write(w, buf, half));
            CHECK_OK(sm_gguf_writer_write(w, buf + half, 0));
            CHECK_OK(sm_gguf_writer_write(w, buf + half, TENSORS[i].nbytes - half));
        } else {
            CHECK_OK(sm_gguf_writer_write(w, buf, TENSORS[i].nbytes));
        }
        free(buf);
    }
    CHECK_OK(sm_gguf_writer_finish(w));
}

static const char *const EXPECTED_KEYS[] = {
    "general.architecture", "general.alignment", "v.u8", "v.i8", "v.u16", "v.i16", "v.u32", "v.i32",
    "v.f32", "v.bool", "v.false", "v.str", "v.empty", "v.u64", "v.i64", "v.f64", "a.u8", "a.i8",
    "a.u16", "a.i16", "a.u32", "a.i32", "a.f32", "a.bool", "a.u64", "a.i64", "a.f64", "a.empty",
    "a.str", "a.str_empty", "a.nested",
};

static void check_arr(const sm_gguf *g, const char *key, sm_gguf_vtype et, const void *data, size_t n) {
    const sm_gguf_value *v = sm_gguf_find(g, key);
    CHECK_MSG(v && v->type == SM_GGUF_ARRAY && v->v.arr.type == et && v->v.arr.n == n, "%s", key);
    if (v && v->v.arr.n == n && n)
        CHECK_MSG(memcmp(v->v.arr.data, data, n * (et == SM_GGUF_UINT8 || et == SM_GGUF_INT8 || et == SM_GGUF_BOOL ? 1
                                                   : et == SM_GGUF_UINT16 || et == SM_GGUF_INT16                ? 2
                                                   : et == SM_GGUF_UINT32 || et == SM_GGUF_INT32 || et == SM_GGUF_FLOAT32 ? 4
                                                                                                          : 8)) == 0,
                  "%s", key);
}

static void check_rich(const char *path) {
    sm_gguf *g;
    CHECK_OK(sm_gguf_open(path, &g));
    if (!g) return;
    CHECK(sm_gguf_version(g) == 3);
    CHECK(sm_gguf_alignment(g) == 64);
    CHECK(sm_gguf_data_offset(g) % 64 == 0);
    CHECK(!strcmp(sm_gguf_path(g), path));
    size_t nk = sizeof EXPECTED_KEYS / sizeof EXPECTED_KEYS[0];
    CHECK(sm_gguf_n_kv(g) == nk);
    for (size_t i = 0; i < nk && i < sm_gguf_n_kv(g); i++)
        CHECK_MSG(!strcmp(sm_gguf_key(g, i), EXPECTED_KEYS[i]), "key %zu: %s != %s", i, sm_gguf_key(g, i),
                  EXPECTED_KEYS[i]);
    CHECK(sm_gguf_key(g, nk) == NULL && sm_gguf_val(g, nk) == NULL);

    const sm_gguf_value *v;
    CHECK(!strcmp(sm_gguf_get_str(g, "general.architecture"), "llama2"));
    CHECK((v = sm_gguf_find(g, "v.u8")) && v->type == SM_GGUF_UINT8 && v->v.u == 200);
    CHECK((v = sm_gguf_find(g, "v.i8")) && v->type == SM_GGUF_INT8 && v->v.i == -100);
    CHECK((v = sm_gguf_find(g, "v.u16")) && v->type == SM_GGUF_UINT16 && v->v.u == 65535);
    CHECK((v = sm_gguf_find(g, "v.i16")) && v->type == SM_GGUF_INT16 && v->v.i == -32768);
    CHECK((v = sm_gguf_find(g, "v.u32")) && v->type == SM_GGUF_UINT32 && v->v.u == 4000000000u);
    CHECK((v = sm_gguf_find(g, "v.i32")) && v->type == SM_GGUF_INT32 && v->v.i == -2000000000);
    CHECK((v = sm_gguf_find(g, "v.f32")) && v->type == SM_GGUF_FLOAT32 && v->v.f == (double)0.1f);
    CHECK((v = sm_gguf_find(g, "v.u64")) && v->type == SM_GGUF_UINT64 && v->v.u == UINT64_MAX);
    CHECK((v = sm_gguf_find(g, "v.i64")) && v->type == SM_GGUF_INT64 && v->v.i == INT64_MIN);
    CHECK((v = sm_gguf_find(g, "v.f64")) && v->type == SM_GGUF_FLOAT64 && v->v.f == 0.1234567890123456789);
    CHECK((v = sm_gguf_find(g, "v.str")) && v->type == SM_GGUF_STRING && v->v.str.len == strlen(UNICODE) &&
          !strcmp(v->v.str.ptr, UNICODE));
    CHECK((v = sm_gguf_find(g, "v.empty")) && v->type == SM_GGUF_STRING && v->v.str.len == 0 && !v->v.str.ptr[0]);
    CHECK(sm_gguf_find(g, "v.removed") == NULL);

    /* typed getters */
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    bool b = false;
    CHECK_OK(sm_gguf_get_u64(g, "v.u8", &u));
    CHECK(u == 200);
    CHECK_OK(sm_gguf_get_u64(g, "v.u64", &u));
    CHECK(u == UINT64_MAX);
    CHECK_OK(sm_gguf_get_i64(g, "v.u32", &i));
    CHECK(i == 4000000000LL);
    CHECK_OK(sm_gguf_get_i64(g, "v.i16", &i));
    CHECK(i == -32768);
    CHECK_FAILS_WITH(sm_gguf_get_u64(g, "v.i32", &u), "v.i32");   /* negative */
    CHECK_FAILS_WITH(sm_gguf_get_i64(g, "v.u64", &i), "v.u64");   /* above INT64_MAX */
    CHECK_FAILS_WITH(sm_gguf_get_u64(g, "v.f32", &u), "integer");
    CHECK_FAILS_WITH(sm_gguf_get_u64(g, "v.bool", &u), "v.bool");
    CHECK_FAILS_WITH(sm_gguf_get_u64(g, "nope", &u), "nope");
    CHECK_OK(sm_gguf_get_f64(g, "v.f32", &f));
    CHECK(f == (double)0.1f);
    CHECK_OK(sm_gguf_get_f64(g, "v.f64", &f));
    CHECK(f == 0.1234567890123456789);
    CHECK_FAILS_WITH(sm_gguf_get_f64(g, "v.u8", &f), "v.u8");
    CHECK_OK(sm_gguf_get_bool(g, "v.bool", &b));
    CHECK(b);
    CHECK_OK(sm_gguf_get_bool(g, "v.false", &b));
    CHECK(!b);
    CHECK_FAILS_WITH(sm_gguf_get_bool(g, "v.u8", &b), "bool");
    CHECK(sm_gguf_get_str(g, "v.u8") == NULL && sm_gguf_get_str(g, "nope") == NULL);

    /* arrays */
    const uint8_t a_u8[] = {0, 1, 255};
    const int8_t a_i8[] = {-128, 0, 127};
    const uint16_t a_u16[] = {1, 65535};
    const int16_t a_i16[] = {-1, 2, -3};
    const uint32_t a_u32[] = {7, 4000000000u};
    const int32_t a_i32[] = {-5, 6, -7, 8};
    const float a_f32[] = {3.145f, -2.718f, 1e-30f};
    const uint8_t a_bool[] = {1, 0, 1, 1};
    const uint64_t a_u64[] = {UINT64_MAX, 0};
    const int64_t a_i64[] = {INT64_MIN, INT64_MAX};
    const double a_f64[] = {1.0 / 3, -1e300};
    check_arr(g, "a.u8", SM_GGUF_UINT8, a_u8, 3);
    check_arr(g, "a.i8", SM_GGUF_INT8, a_i8, 3);
    check_arr(g, "a.u16", SM_GGUF_UINT16, a_u16, 2);
    check_arr(g, "a.i16", SM_GGUF_INT16, a_i16, 3);
    check_arr(g, "a.u32", SM_GGUF_UINT32, a_u32, 2);
    check_arr(g, "a.i32", SM_GGUF_INT32, a_i32, 4);
    check_arr(g, "a.f32", SM_GGUF_FLOAT32, a_f32, 3);
    check_arr(g, "a.bool", SM_GGUF_BOOL, a_bool, 4);
    check_arr(g, "a.u64", SM_GGUF_UINT64, a_u64, 2);
    check_arr(g, "a.i64", SM_GGUF_INT64, a_i64, 2);
    check_arr(g, "a.f64", SM_GGUF_FLOAT64, a_f64, 2);
    check_arr(g, "a.empty", SM_GGUF_INT32, NULL, 0);
    v = sm_gguf_find(g, "a.str");
    const char *strs[] = {"hello", "", UNICODE, "<0x0A>"};
    CHECK(v && v->type == SM_GGUF_ARRAY && v->v.arr.type == SM_GGUF_STRING && v->v.arr.n == 4);
    if (v && v->v.arr.n == 4)
        for (int k = 0; k < 4; k++)
            CHECK(v->v.arr.items[k].type == SM_GGUF_STRING && v->v.arr.items[k].v.str.len == strlen(strs[k]) &&
                  !strcmp(v->v.arr.items[k].v.str.ptr, strs[k]));
    v = sm_gguf_find(g, "a.str_empty");
    CHECK(v && v->type == SM_GGUF_ARRAY && v->v.arr.type == SM_GGUF_STRING && v->v.arr.n == 0);
    v = sm_gguf_find(g, "a.nested");
    CHECK(v && v->type == SM_GGUF_ARRAY && v->v.arr.type == SM_GGUF_ARRAY && v->v.arr.n == 3);
    if (v && v->v.arr.n == 3) {
        const sm_gguf_value *it = v->v.arr.items;
        CHECK(it[0].type == SM_GGUF_ARRAY && it[0].v.arr.type == SM_GGUF_INT32 && it[0].v.arr.n == 2 &&
              ((int32_t *)it[0].v.arr.data)[0] == 1 && ((int32_t *)it[0].v.arr.data)[1] == 2);
        CHECK(it[1].type == SM_GGUF_ARRAY && it[1].v.arr.n == 0);
        CHECK(it[2].type == SM_GGUF_ARRAY && it[2].v.arr.n == 1 && ((int32_t *)it[2].v.arr.data)[0] == 3);
    }

    /* tensors */
    CHECK(sm_gguf_n_tensors(g) == N_TENSORS);
    const uint8_t *base = sm_gguf_n_tensors(g) ? sm_gguf_tensor(g, 0)->data : NULL;
    uint64_t expect_off = 0;
    for (size_t k = 0; k < N_TENSORS && k < sm_gguf_n_tensors(g); k++) {
        const tdesc *d = &TENSORS[k];
        const sm_tensor *t = sm_gguf_tensor(g, k);
        CHECK(t == sm_gguf_find_tensor(g, d->name));
        CHECK_MSG(!strcmp(t->name, d->name) && t->type == d->type && t->n_dims == d->n_dims, "%s", d->name);
        for (int j = 0; j < d->n_dims; j++) CHECK_MSG(t->shape[j] == d->shape[j], "%s dim %d", d->name, j);
        CHECK_MSG(t->nbytes == d->nbytes, "%s: %llu bytes, expected %llu", d->name, (unsigned long long)t->nbytes,
                  (unsigned long long)d->nbytes);
        CHECK_MSG((uint64_t)((const uint8_t *)t->data - base) == expect_off, "%s offset", d->name);
        expect_off += (d->nbytes + 63) / 64 * 64;
        uint8_t *buf = malloc(d->nbytes);
        fill(buf, d->nbytes, (unsigned)k + 1);
        CHECK_MSG(memcmp(buf, t->data, d->nbytes) == 0, "%s data", d->name);
        free(buf);
    }
    /* the file ends with the last tensor's padding */
    size_t fsize = 0;
    char *all = tl_slurp(path, &fsize);
    CHECK(fsize == sm_gguf_data_offset(g) + expect_off);
    free(all);
    sm_gguf_close(g);
}

static void round_trip(void) {
    const char *p = tl_tmp("rich.gguf"), *q = tl_tmp("rich_chunked.gguf");
    write_rich(p, false);
    check_rich(p);
    write_rich(q, true);
    check_rich(q);
    size_t n1 = 0, n2 = 0;
    char *a = tl_slurp(p, &n1), *b = tl_slurp(q, &n2);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);

    /* copying every value and tensor through set_val / add_tensor reproduces the file */
    sm_gguf *g;
    CHECK_OK(sm_gguf_open(p, &g));
    if (!g) return;
    const char *r = tl_tmp("rich_copy.gguf");
    sm_gguf_writer *w = sm_gguf_writer_new();
    for (size_t i = 0; i < sm_gguf_n_kv(g); i++) sm_meta_set_val(sm_gguf_writer_meta(w), sm_gguf_key(g, i), sm_gguf_val(g, i));
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        CHECK_OK(sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->shape));
    }
    CHECK_OK(sm_gguf_writer_begin(w, r));
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++)
        CHECK_OK(sm_gguf_writer_write(w, sm_gguf_tensor(g, i)->data, sm_gguf_tensor(g, i)->nbytes));
    CHECK_OK(sm_gguf_writer_finish(w));
    sm_gguf_close(g);
    a = tl_slurp(p, &n1);
    b = tl_slurp(r, &n2);
    CHECK(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
}

/* ---- truncation: every prefix of valid files ---- */

static void truncated_file(const char *path) {
    size_t n = 0;
    char *full = tl_slurp(path, &n);
    CHECK(full != NULL);
    if (!full) return;
    sm_gguf *g;
    CHECK_OK(sm_gguf_open_mem(full, n, "full", &g));
    if (!g) {
        free(full);
        return;
    }
    /* where the last byte of tensor data is: shorter prefixes must fail, longer ones (only
     * the final padding missing) still hold every tensor */
    uint64_t data_end = sm_gguf_data_offset(g);
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        uint64_t end = (uint64_t)((const char *)t->data - full) + t->nbytes;
        if (end > data_end) data_end = end;
    }
    sm_gguf_close(g);
    int bad = 0;
    for (size_t len = 0; len < n; len++) {
        char *copy = malloc(len ? len : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, full, len);
        int rc = sm_gguf_open_mem(copy, len, "prefix", &g);
        if (len < data_end) {
            if (rc == 0 || !strstr(sm_last_error(), "prefix: ")) bad++;
        } else if (rc != 0) {
            bad++;
        }
        if (rc == 0) sm_gguf_close(g);
        free(copy);
    }
    CHECK_MSG(bad == 0, "%s: %d prefixes misbehaved", path, bad);
    free(full);
}

static void truncation(void) {
    const char *p = tl_tmp("trunc_tiny.gguf");
    CHECK_OK(write_tiny(p));
    truncated_file(p);
    const char *q = tl_tmp("trunc_rich.gguf");
    write_rich(q, false);
    truncated_file(q);
}

/* ---- malformed files ---- */

static void malformed_header(void) {
    bb b = {0};
    bb_raw(&b, "GGUG", 4);
    bb_u32(&b, 3);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_bad(&b, "offset 0: expected the GGUF magic");

    bb_raw(&b, "GG", 2);
    expect_bad(&b, "shorter than 4 bytes");

    bb_raw(&b, "GGUF", 4);
    bb_u32(&b, 1);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_bad(&b, "version 1 is not supported");

    bb_raw(&b, "GGUF", 4);
    bb_u32(&b, 0x03000000);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_bad(&b, "big-endian");

    bb_raw(&b, "GGUF", 4);
    bb_u32(&b, 4);
    bb_u64(&b, 0);
    bb_u64(&b, 0);
    expect_bad(&b, "offset 4: expected GGUF version 2 or 3, found 4");

    bb_header(&b, 0, UINT64_MAX);
    expect_bad(&b, "offset 16: expected a metadata count");

    bb_header(&b, 0, 1000);
    bb_kv_u32(&b, "a", 1);
    expect_bad(&b, "metadata count that fits");

    bb_header(&b, UINT64_MAX / 2, 0);
    expect_bad(&b, "offset 8: expected a tensor count");

    /* version 2 has the same layout and is accepted */
    bb_raw(&b, "GGUF", 4);
    bb_u32(&b, 2);
    bb_u64(&b, 0);
    bb_u64(&b, 1);
    bb_kv_u32(&b, "a", 1);
    sm_gguf *g;
    CHECK_OK(sm_gguf_open_mem(b.p, b.n, "v2", &g));
    CHECK(g && sm_gguf_version(g) == 2 && sm_gguf_n_kv(g) == 1);
    sm_gguf_close(g);
    free(b.p);
}

static void malformed_kv(void) {
    bb b = {0};
    bb_header(&b, 0, 1);
    bb_u64(&b, (uint64_t)1 << 40);
    bb_raw(&b, "abcdefgh", 8);
    expect_bad(&b, "offset 24: expected metadata key of at most 65535 bytes");

    bb_header(&b, 0, 1);
    bb_u64(&b, 100);
    bb_raw(&b, "abcdefghi", 9);
    bb_u32(&b, 0);
    expect_bad(&b, "offset 32: expected metadata key (100 bytes)");

    bb_header(&b, 0, 1);
    bb_str(&b, "");
    bb_u32(&b, SM_GGUF_UINT32);
    bb_u32(&b, 1);
    expect_bad(&b, "non-empty metadata key");

    bb_header(&b, 0, 1);
    bb_u64(&b, 3);
    bb_raw(&b, "a\0b", 3);
    bb_u32(&b, SM_GGUF_UINT32);
    bb_u32(&b, 1);
    expect_bad(&b, "without NUL bytes");

    bb_header(&b, 0, 2);
    bb_kv_u32(&b, "dup", 1);
    bb_kv_u32(&b, "dup", 2);
    expect_bad(&b, "offset 43: expected unique keys, but 'dup' repeats key 0");

    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    expect_bad(&b, "offset 33: key 'k': expected metadata value type (0..12), found 13");

    /* string value: longer than the file, longer than the limit */
    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_STRING);
    bb_u64(&b, 1000);
    bb_raw(&b, "xyz", 3);
    expect_bad(&b, "offset 45: key 'k': expected string value (1000 bytes), but only 3 bytes remain");

    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_STRING);
    bb_u64(&b, ((uint64_t)64 << 20) + 1);
    bb_raw(&b, "xyz", 3);
    expect_bad(&b, "expected string value of at most 67108864 bytes");

    /* arrays */
    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_ARRAY);
    bb_u32(&b, SM_GGUF_UINT32);
    bb_u64(&b, UINT64_MAX / 2);
    bb_u32(&b, 1);
    expect_bad(&b, "offset 41: key 'k': expected an array of u32 that fits the 4 bytes left");

    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_ARRAY);
    bb_u32(&b, SM_GGUF_STRING);
    bb_u64(&b, 1000);
    bb_str(&b, "a");
    expect_bad(&b, "expected an array of str that fits");

    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_ARRAY);
    bb_u32(&b, 77);
    bb_u64(&b, 0);
    expect_bad(&b, "offset 37: key 'k': expected array element type (0..12), found 77");

    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_ARRAY);
    for (int d = 0; d < 1000; d++) {
        bb_u32(&b, SM_GGUF_ARRAY);
        bb_u64(&b, 1);
    }
    expect_bad(&b, "expected arrays nested at most 8 deep");

    /* nesting within the limit is fine */
    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_ARRAY);
    for (int d = 0; d < 7; d++) {
        bb_u32(&b, SM_GGUF_ARRAY);
        bb_u64(&b, 1);
    }
    bb_u32(&b, SM_GGUF_UINT8);
    bb_u64(&b, 1);
    bb_le(&b, 42, 1);
    sm_gguf *g;
    CHECK_OK(sm_gguf_open_mem(b.p, b.n, "nest", &g));
    sm_gguf_close(g);
    free(b.p);
    memset(&b, 0, sizeof b);

    /* bools are 0 or 1 */
    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_BOOL);
    bb_le(&b, 2, 1);
    expect_bad(&b, "offset 37: key 'k': expected a bool (0 or 1), found 2");
}

static void malformed_bool_array(void) {
    bb b = {0};
    bb_header(&b, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, SM_GGUF_ARRAY);
    bb_u32(&b, SM_GGUF_BOOL);
    bb_u64(&b, 3);
    bb_le(&b, 0xff0100, 3);
    expect_bad(&b, "offset 51: key 'k': expected a bool (0 or 1), found 255");
}

static void malformed_alignment(void) {
    bb b = {0};
    bb_header(&b, 0, 1);
    bb_kv_u32(&b, "general.alignment", 0);
    expect_bad(&b, "offset 53: expected general.alignment to be a non-zero power of two, found 0");

    bb_header(&b, 0, 1);
    bb_kv_u32(&b, "general.alignment", 3);
    expect_bad(&b, "found 3");

    bb_header(&b, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, SM_GGUF_UINT64);
    bb_u64(&b, 64);
    expect_bad(&b, "offset 49: expected general.alignment of type u32, found u64");
}

/* A file with one tensor info (fields as given) and enough data after it. */
static void one_tensor(bb *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off,
                       size_t data_bytes) {
    bb_header(b, 1, 0);
    bb_tinfo(b, name, n_dims, ne, type, off);
    bb_pad(b, 32);
    for (size_t i = 0; i < data_bytes; i++) bb_le(b, 0, 1);
}

static void malformed_tensors(void) {
    bb b = {0};
    int64_t ne[5] = {32, 2, 1, 1, 1};
    one_tensor(&b, "t", 5, ne, SM_TYPE_F32, 0, 256);
    expect_bad(&b, "offset 33: tensor 't': expected 1..4 dimensions, found 5");

    one_tensor(&b, "t", 0, ne, SM_TYPE_F32, 0, 256);
    expect_bad(&b, "expected 1..4 dimensions, found 0");

    int64_t neg[2] = {32, -1};
    one_tensor(&b, "t", 2, neg, SM_TYPE_F32, 0, 256);
    expect_bad(&b, "offset 45: tensor 't': expected dimension 1 >= 0, found -1");

    int64_t big[3] = {(int64_t)1 << 32, (int64_t)1 << 32, 2};
    one_tensor(&b, "t", 3, big, SM_TYPE_F32, 0, 256);
    expect_bad(&b, "expected an element count below 2^63");

    int64_t huge_bytes[2] = {(int64_t)1 << 31, (int64_t)1 << 31};
    one_tensor(&b, "t", 2, huge_bytes, SM_TYPE_F64, 0, 256);
    expect_bad(&b, "offset 53: tensor 't': expected a size in bytes below 2^64");

    one_tensor(&b, "t", 2, ne, 4, 0, 256); /* 4 = removed Q4_2 */
    expect_bad(&b, "offset 53: tensor 't': expected a known ggml type, found 4");
    one_tensor(&b, "t", 2, ne, 36, 0, 256); /* 36 = removed IQ4_NL_4_4 */
    expect_bad(&b, "expected a known ggml type, found 36");
    one_tensor(&b, "t", 2, ne, SM_TYPE_U8, 0, 256);
    expect_bad(&b, "expected a known ggml type, found 100");
    one_tensor(&b, "t", 2, ne, 0xffffffffu, 0, 256);
    expect_bad(&b, "expected a known ggml type");

    int64_t row16[2] = {16, 2};
    one_tensor(&b, "t", 2, row16, SM_TYPE_Q8_0, 0, 256);
    expect_bad(&b, "expected a row length that is a multiple of q8_0's block size 32, found 16");

    one_tensor(&b, "t", 2, ne, SM_TYPE_F32, 4, 256);
    expect_bad(&b, "offset 57: tensor 't': expected a data offset that is a multiple of the alignment 32, found 4");

    one_tensor(&b, "t", 2, ne, SM_TYPE_F32, 0, 255); /* 32*2*4 = 256 bytes needed */
    expect_bad(&b, "offset 57: tensor 't': expected 256 bytes of data at file offset 96, but the file has 351 bytes");

    one_tensor(&b, "t", 2, ne, SM_TYPE_F32, (uint64_t)1 << 63, 256);
    expect_bad(&b, "expected 256 bytes of data");

    /* no room even for the padding before the data section */
    bb_header(&b, 1, 0);
    bb_tinfo(&b, "t", 1, ne, SM_TYPE_F32, 0);
    expect_bad(&b, "offset 57: expected padding up to the data section at offset 64");

    /* overlap: u at 0 (256 bytes) and v at 128 */
    bb_header(&b, 2, 0);
    bb_tinfo(&b, "u", 2, ne, SM_TYPE_F32, 0);
    bb_tinfo(&b, "v", 2, ne, SM_TYPE_F32, 128);
    bb_pad(&b, 32);
    for (int i = 0; i < 512; i++) bb_le(&b, 0, 1);
    expect_bad(&b, "offset 98: tensor 'v': expected data not overlapping tensor 'u' (bytes 0..256 of the data section), found offset 128");

    /* the same two tensors in the other order of offsets also overlap */
    bb_header(&b, 2, 0);
    bb_tinfo(&b, "u", 2, ne, SM_TYPE_F32, 128);
    bb_tinfo(&b, "v", 2, ne, SM_TYPE_F32, 0);
    bb_pad(&b, 32);
    for (int i = 0; i < 512; i++) bb_le(&b, 0, 1);
    expect_bad(&b, "offset 57: tensor 'u': expected data not overlapping tensor 'v'");

    bb_header(&b, 2, 0);
    bb_tinfo(&b, "u", 2, ne, SM_TYPE_F32, 0);
    bb_tinfo(&b, "u", 2, ne, SM_TYPE_F32, 256);
    bb_pad(&b, 32);
    for (int i = 0; i < 512; i++) bb_le(&b, 0, 1);
    expect_bad(&b, "offset 65: expected unique tensor names, but 'u' repeats tensor 0");

    one_tensor(&b, "", 2, ne, SM_TYPE_F32, 0, 256);
    expect_bad(&b, "offset 24: expected a non-empty tensor name");

    /* valid: tensors stored out of order, with gaps, zero-sized, and with alignment 64 */
    bb_header(&b, 3, 1);
    bb_kv_u32(&b, "general.alignment", 64);
    int64_t zero[2] = {0, 3};
    bb_tinfo(&b, "late", 2, ne, SM_TYPE_F32, 512);
    bb_tinfo(&b, "early", 2, ne, SM_TYPE_F32, 0);
    bb_tinfo(&b, "empty", 2, zero, SM_TYPE_F32, 256);
    bb_pad(&b, 64);
    size_t data_at = b.n;
    for (int i = 0; i < 768; i++) bb_le(&b, (uint64_t)i, 1);
    sm_gguf *g;
    CHECK_OK(sm_gguf_open_mem(b.p, b.n, "ok", &g));
    if (g) {
        CHECK(sm_gguf_data_offset(g) == data_at && sm_gguf_alignment(g) == 64);
        const sm_tensor *t = sm_gguf_find_tensor(g, "late");
        CHECK(t && t->data == b.p + data_at + 512 && t->nbytes == 256 && t->shape[0] == 2 && t->shape[1] == 32);
        t = sm_gguf_find_tensor(g, "empty");
        CHECK(t && t->nbytes == 0 && t->shape[0] == 3 && t->shape[1] == 0);
        sm_gguf_close(g);
    }
    free(b.p);
}

/* ---- writer refusals, atomicity ---- */

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

static void writer_refusals(void) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    int64_t s2[2] = {2, 256};
    CHECK_OK(sm_gguf_add_tensor(w, "a", SM_TYPE_Q4_K, 2, s2));
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, "a", SM_TYPE_F32, 2, s2), "declared twice");
    int64_t s100[2] = {2, 100};
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, "b", SM_TYPE_Q4_K, 2, s100), "not a multiple of q4_K's block size 256");
    int64_t s5[5] = {1, 1, 1, 1, 32};
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, "b", SM_TYPE_F32, 5, s5), "5 dimensions");
    int64_t s0[2] = {0, 32};
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, "b", SM_TYPE_F32, 2, s0), "dimension 0 is 0");
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, "b", SM_TYPE_U8, 2, s2), "cannot be stored in GGUF");
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, "", SM_TYPE_F32, 2, s2), "empty");
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, longname, SM_TYPE_F32, 2, s2), "at most 63");
    longname[63] = 0;
    CHECK_OK(sm_gguf_add_tensor(w, longname, SM_TYPE_F32, 1, s2 + 1));
    int64_t sbig[3] = {(int64_t)1 << 40, (int64_t)1 << 40, 256};
    CHECK_FAILS_WITH(sm_gguf_add_tensor(w, "c", SM_TYPE_F32, 3, sbig), "overflows");
    sm_gguf_writer_abort(w);

    /* bad metadata is reported by begin, and nothing is created */
    const char *dir = tl_tmp("refusals");
    CHECK(mkdir(dir, 0755) == 0);
    char path[1100];
    snprintf(path, sizeof path, "%s/out.gguf", dir);
    w = sm_gguf_writer_new();
    sm_meta_set_u32(sm_gguf_writer_meta(w), "general.alignment", 3);
    CHECK_FAILS_WITH(sm_gguf_writer_begin(w, path), "power of two");
    sm_gguf_writer_abort(w);
    w = sm_gguf_writer_new();
    sm_meta_set_u64(sm_gguf_writer_meta(w), "general.alignment", 64);
    CHECK_FAILS_WITH(sm_gguf_writer_begin(w, path), "must be a u32");
    sm_gguf_writer_abort(w);
    w = sm_gguf_writer_new();
    sm_meta_set_u32(sm_gguf_writer_meta(w), "", 1);
    CHECK_FAILS_WITH(sm_gguf_writer_begin(w, path), "key is empty");
    sm_gguf_writer_abort(w);
    w = sm_gguf_writer_new();
    sm_meta_set_arr(sm_gguf_writer_meta(w), "k", SM_GGUF_STRING, "x", 1);
    CHECK_FAILS_WITH(sm_gguf_writer_begin(w, path), "fixed-size element type");
    sm_gguf_writer_abort(w);
    CHECK(count_dir_entries(dir) == 0);

    /* wrong byte counts */
    w = sm_gguf_writer_new();
    int64_t s[2] = {2, 32};
    CHECK_OK(sm_gguf_add_tensor(w, "q", SM_TYPE_Q8_0, 2, s)); /* 2 x 34 bytes */
    CHECK_OK(sm_gguf_add_tensor(w, "f", SM_TYPE_F32, 1, s + 1));
    CHECK_FAILS_WITH(sm_gguf_writer_write(w, "x", 1), "before begin");
    CHECK_OK(sm_gguf_writer_begin(w, path));
    uint8_t buf[256] = {0};
    CHECK_FAILS_WITH(sm_gguf_writer_write(w, buf, 69), "tensor 'q': 69 bytes written, but only 68 of its 68 bytes remain");
    CHECK_FAILS_WITH(sm_gguf_writer_finish(w), "failed write");
    CHECK(count_dir_entries(dir) == 0);

    /* too few bytes */
    w = sm_gguf_writer_new();
    CHECK_OK(sm_gguf_add_tensor(w, "q", SM_TYPE_Q8_0, 2, s));
    CHECK_OK(sm_gguf_add_tensor(w, "f", SM_TYPE_F32, 1, s + 1));
    CHECK_OK(sm_gguf_writer_begin(w, path));
    CHECK_OK(sm_gguf_writer_write(w, buf, 68));
    CHECK_OK(sm_gguf_writer_write(w, buf, 100));
    CHECK(count_dir_entries(dir) == 1); /* the temporary */
    CHECK(access(path, F_OK) != 0);
    CHECK_FAILS_WITH(sm_gguf_writer_finish(w), "tensor 'f' got 100 of its 128 bytes");
    CHECK(count_dir_entries(dir) == 0);

    /* too many: a write after the last tensor */
    w = sm_gguf_writer_new();
    CHECK_OK(sm_gguf_add_tensor(w, "f", SM_TYPE_F32, 1, s + 1));
    CHECK_OK(sm_gguf_writer_begin(w, path));
    CHECK_OK(sm_gguf_writer_write(w, buf, 128));
    CHECK_FAILS_WITH(sm_gguf_writer_write(w, buf, 1), "after all 1 tensors were complete");
    sm_gguf_writer_abort(w);
    CHECK(count_dir_entries(dir) == 0);

    /* metadata changed after begin */
    w = sm_gguf_writer_new();
    CHECK_OK(sm_gguf_writer_begin(w, path));
    sm_meta_set_u32(sm_gguf_writer_meta(w), "late", 1);
    CHECK_FAILS_WITH(sm_gguf_writer_finish(w), "set after begin");
    CHECK(count_dir_entries(dir) == 0);

    /* abort after begin removes the temporary; a missing directory fails cleanly */
    w = sm_gguf_writer_new();
    CHECK_OK(sm_gguf_add_tensor(w, "f", SM_TYPE_F32, 1, s + 1));
    CHECK_OK(sm_gguf_writer_begin(w, path));
    CHECK_OK(sm_gguf_writer_write(w, buf, 64));
    sm_gguf_writer_abort(w);
    CHECK(count_dir_entries(dir) == 0);
    snprintf(path, sizeof path, "%s/no/such/dir.gguf", dir);
    w = sm_gguf_writer_new();
    CHECK_FAILS_WITH(sm_gguf_writer_begin(w, path), "cannot create");
    sm_gguf_writer_abort(w);

    /* no tensors at all: header, metadata, padding */
    snprintf(path, sizeof path, "%s/meta_only.gguf", dir);
    w = sm_gguf_writer_new();
    sm_meta_set_u32(sm_gguf_writer_meta(w), "a", 7);
    CHECK_OK(sm_gguf_writer_begin(w, path));
    CHECK_OK(sm_gguf_writer_finish(w));
    size_t n = 0;
    char *d = tl_slurp(path, &n);
    CHECK(d && n == 64 && memcmp(d, "GGUF\3\0\0\0\0\0\0\0\0\0\0\0\1", 17) == 0);
    free(d);
    sm_gguf *g;
    CHECK_OK(sm_gguf_open(path, &g));
    CHECK(g && sm_gguf_n_tensors(g) == 0 && sm_gguf_n_kv(g) == 1);
    sm_gguf_close(g);

    CHECK_FAILS_WITH(sm_gguf_open(tl_tmp("does-not-exist.gguf"), &g), "cannot open");
}

/* ---- llama.cpp interoperability (only with LLAMA_CPP_BIN) ---- */

static char *run_cmd(const char *cmd, int *status) {
    FILE *f = popen(cmd, "r");
    if (!f) {
        *status = -1;
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *out = malloc(cap);
    size_t k;
    while ((k = fread(out + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) out = realloc(out, cap *= 2);
    }
    out[n] = 0;
    *status = pclose(f);
    return out;
}

static void llama_reads_ours(const char *bin) {
    const char *p = tl_tmp("for_llama.gguf");
    sm_gguf_writer *w = sm_gguf_writer_new();
    sm_meta_set_str(sm_gguf_writer_meta(w), "some.parameter.string", "hello world");
    sm_meta_set_u32(sm_gguf_writer_meta(w), "general.alignment", 64);
    sm_meta_set_f32(sm_gguf_writer_meta(w), "some.f32", 0.5f);
    const char *strs[] = {"a", UNICODE, ""};
    sm_meta_set_arr_str(sm_gguf_writer_meta(w), "some.arr.str", strs, 3);
    const int32_t ints[] = {1, -2, 3};
    sm_meta_set_arr(sm_gguf_writer_meta(w), "some.arr.i32", SM_GGUF_INT32, ints, 3);
    sm_meta_set_bool(sm_gguf_writer_meta(w), "some.bool", true);
    /* llama-gguf checks that tensor i holds the value 100 + i in every element */
    static const int64_t shapes[3][3] = {{7, 0, 0}, {3, 5, 0}, {2, 3, 4}};
    static const int dims[3] = {1, 2, 3};
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "tensor_%d", i);
        CHECK_OK(sm_gguf_add_tensor(w, name, SM_TYPE_F32, dims[i], shapes[i]));
    }
    CHECK_OK(sm_gguf_writer_begin(w, p));
    for (int i = 0; i < 3; i++) {
        int64_t nel = 1;
        for (int j = 0; j < dims[i]; j++) nel *= shapes[i][j];
        float *data = malloc((size_t)nel * sizeof *data);
        for (int64_t j = 0; j < nel; j++) data[j] = 100.0f + (float)i;
        CHECK_OK(sm_gguf_writer_write(w, data, (uint64_t)nel * 4));
        free(data);
    }
    CHECK_OK(sm_gguf_writer_finish(w));

    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/llama-gguf' '%s' r 2>&1", bin, p);
    int st;
    char *out = run_cmd(cmd, &st);
    CHECK_MSG(st == 0, "llama-gguf r failed (%d):\n%s", st, out ? out : "");
    if (out) {
        CHECK(strstr(out, "alignment:   64") != NULL);
        CHECK(strstr(out, "n_kv: 6") != NULL);
        CHECK(strstr(out, "kv[0]: key = some.parameter.string") != NULL);
        CHECK(strstr(out, "kv[5]: key = some.bool") != NULL);
        CHECK(strstr(out, "find key: some.parameter.string found, kv[0] value = hello world") != NULL);
        CHECK(strstr(out, "n_tensors: 3") != NULL);
        CHECK(strstr(out, "tensor[0]: name = tensor_0, size = 28, offset = 0") != NULL);
        CHECK(strstr(out, "tensor[1]: name = tensor_1, size = 60, offset = 64") != NULL);
        CHECK(strstr(out, "tensor[2]: name = tensor_2, size = 96, offset = 128") != NULL);
        CHECK(strstr(out, "n_dims = 3, ne = (4, 3, 2, 1), name = tensor_2") != NULL);
        CHECK(strstr(out, "tensor_1 data[:10] : 101.000000") != NULL);
    }
    free(out);
}

static void ours_reads_llama(const char *bin) {
    const char *p = tl_tmp("from_llama.gguf");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/llama-gguf' from_llama.gguf w 2>&1", tl_tmpdir(), bin);
    int st;
    char *out = run_cmd(cmd, &st);
    CHECK_MSG(st == 0, "llama-gguf w failed (%d):\n%s", st, out ? out : "");
    free(out);
    sm_gguf *g;
    CHECK_OK(sm_gguf_open(p, &g));
    if (!g) return;
    /* the values gguf_ex_write sets (examples/gguf/gguf.cpp) */
    const sm_gguf_value *v;
    CHECK((v = sm_gguf_find(g, "some.parameter.uint8")) && v->type == SM_GGUF_UINT8 && v->v.u == 0x12);
    CHECK((v = sm_gguf_find(g, "some.parameter.int8")) && v->type == SM_GGUF_INT8 && v->v.i == -0x13);
    CHECK((v = sm_gguf_find(g, "some.parameter.uint16")) && v->type == SM_GGUF_UINT16 && v->v.u == 0x1234);
    CHECK((v = sm_gguf_find(g, "some.parameter.int16")) && v->type == SM_GGUF_INT16 && v->v.i == -0x1235);
    CHECK((v = sm_gguf_find(g, "some.parameter.uint32")) && v->type == SM_GGUF_UINT32 && v->v.u == 0x12345678);
    CHECK((v = sm_gguf_find(g, "some.parameter.int32")) && v->type == SM_GGUF_INT32 && v->v.i == -0x12345679);
    CHECK((v = sm_gguf_find(g, "some.parameter.float32")) && v->type == SM_GGUF_FLOAT32 &&
          v->v.f == (double)0.123456789f);
    CHECK((v = sm_gguf_find(g, "some.parameter.uint64")) && v->type == SM_GGUF_UINT64 &&
          v->v.u == 0x123456789abcdef0ull);
    CHECK((v = sm_gguf_find(g, "some.parameter.int64")) && v->type == SM_GGUF_INT64 &&
          v->v.i == -0x123456789abcdef1ll);
    CHECK((v = sm_gguf_find(g, "some.parameter.float64")) && v->type == SM_GGUF_FLOAT64 &&
          v->v.f == 0.1234567890123456789);
    CHECK((v = sm_gguf_find(g, "some.parameter.bool")) && v->type == SM_GGUF_BOOL && v->v.u == 1);
    CHECK(sm_gguf_get_str(g, "some.parameter.string") &&
          !strcmp(sm_gguf_get_str(g, "some.parameter.string"), "hello world"));
    const int16_t i16[] = {1, 2, 3, 4};
    const float f32[] = {3.145f, 2.718f, 1.414f};
    check_arr(g, "some.parameter.arr.i16", SM_GGUF_INT16, i16, 4);
    check_arr(g, "some.parameter.arr.f32", SM_GGUF_FLOAT32, f32, 3);
    v = sm_gguf_find(g, "some.parameter.arr.str");
    CHECK(v && v->v.arr.type == SM_GGUF_STRING && v->v.arr.n == 3 && !strcmp(v->v.arr.items[1].v.str.ptr, "world"));
    CHECK(sm_gguf_n_tensors(g) == 10);
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        char name[32];
        snprintf(name, sizeof name, "tensor_%zu", i);
        CHECK(!strcmp(t->name, name) && t->type == SM_TYPE_F32);
        const float *d = t->data;
        int64_t nel = sm_tensor_nelements(t);
        CHECK(t->nbytes == (uint64_t)nel * 4);
        bool ok = true;
        for (int64_t j = 0; j < nel; j++) ok &= d[j] == 100.0f + (float)i;
        CHECK_MSG(ok, "%s data", name);
    }
    /* writing the same metadata and tensors reproduces llama.cpp's bytes exactly */
    const char *q = tl_tmp("from_llama_copy.gguf");
    sm_gguf_writer *w = sm_gguf_writer_new();
    for (size_t i = 0; i < sm_gguf_n_kv(g); i++) sm_meta_set_val(sm_gguf_writer_meta(w), sm_gguf_key(g, i), sm_gguf_val(g, i));
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        CHECK_OK(sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->shape));
    }
    CHECK_OK(sm_gguf_writer_begin(w, q));
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++)
        CHECK_OK(sm_gguf_writer_write(w, sm_gguf_tensor(g, i)->data, sm_gguf_tensor(g, i)->nbytes));
    CHECK_OK(sm_gguf_writer_finish(w));
    sm_gguf_close(g);
    size_t n1 = 0, n2 = 0;
    char *a = tl_slurp(p, &n1), *b = tl_slurp(q, &n2);
    CHECK_MSG(a && b && n1 == n2 && memcmp(a, b, n1) == 0, "llama.cpp wrote %zu bytes, we wrote %zu", n1, n2);
    free(a);
    free(b);
}

static void llama_cpp_interop(void) {
    const char *bin = tl_llama_cpp_bin("the llama.cpp interoperability checks");
    if (!bin) return;
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/llama-gguf", bin);
    CHECK_MSG(access(exe, X_OK) == 0, "%s not found (LLAMA_CPP_BIN is set)", exe);
    if (access(exe, X_OK) != 0) return;
    llama_reads_ours(bin);
    ours_reads_llama(bin);
}

void run_tests(void) {
    TEST(byte_layout);
    TEST(round_trip);
    TEST(truncation);
    TEST(malformed_header);
    TEST(malformed_kv);
    TEST(malformed_bool_array);
    TEST(malformed_alignment);
    TEST(malformed_tensors);
    TEST(writer_refusals);
    TEST(llama_cpp_interop);
}
