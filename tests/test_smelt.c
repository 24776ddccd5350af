/* test_smelt.c - the .smelt codec and reader: chunk layouts against the byte layout written out
 * by hand from docs/smelt-format.md, round trips of every plane layout over sizes that do and
 * do not fill a chunk, malformed chunks refused, and a packed file whose every byte is damaged
 * in turn: the reader either refuses it with an error or (for bytes no checksum covers, as JSON
 * whitespace cannot be) decodes exactly the original. */
#include "formats/sink.h"
#include "formats/smelt_internal.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

/* two BF16 values 1.0 (0x3f80) and -1.5 (0xbfc0): too short for zstd to shrink, so both planes
 * are stored: u32 2, u32 2, exponents 0x7f 0x7f, sign|mantissa 0x00 0xc0 */
static void bf16_layout(void) {
    const uint8_t src[4] = {0x80, 0x3f, 0xc0, 0xbf};
    const uint8_t want[12] = {2, 0, 0, 0, 2, 0, 0, 0, 0x7f, 0x7f, 0x00, 0xc0};
    uint8_t out[128], scratch[4], back[4];
    size_t n = 0;
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_DCtx *d = ZSTD_createDCtx();
    CHECK_OK(smelt_chunk_encode(c, 3, SMELT_PLANES_BF16, src, 4, scratch, out, &n));
    CHECK(n == sizeof want && !memcmp(out, want, n));
    CHECK_OK(smelt_chunk_decode(d, SMELT_PLANES_BF16, out, n, back, 4, scratch));
    CHECK(!memcmp(back, src, 4));
    /* F32 1.0f = 00 00 80 3f: b4 planes are bytes 0, 1, 2, 3 */
    const uint8_t f[4] = {0x00, 0x00, 0x80, 0x3f};
    CHECK_OK(smelt_chunk_encode(c, 3, SMELT_PLANES_B4, f, 4, scratch, out, &n));
    CHECK(n == 20 && out[16] == 0x00 && out[18] == 0x80 && out[19] == 0x3f && out[0] == 1 && out[12] == 1);
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
}

/* every layout, sizes from 0 to beyond one chunk, compressible and random data */
static void round_trips(void) {
    ZSTD_CCtx *c = ZSTD_createCCtx();
    ZSTD_DCtx *d = ZSTD_createDCtx();
    const size_t sizes[] = {0, 4, 12, 1000, 65536, 100004};
    uint8_t *src = malloc(100004), *out = malloc(smelt_chunk_bound(SMELT_PLANES_B4, 100004)), *back = malloc(100004),
            *scratch = malloc(100004);
    uint32_t x = 12345;
    for (size_t i = 0; i < 100004; i++) {
        x = x * 1664525u + 1013904223u;
        src[i] = i % 2 ? (uint8_t)(0x3c + (x >> 30)) : (uint8_t)(x >> 24); /* float-like high bytes */
    }
    for (int p = 0; p < 4; p++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = 0;
            CHECK_OK(smelt_chunk_encode(c, 3, (smelt_planes)p, src, sizes[k], scratch, out, &n));
            CHECK(n <= smelt_chunk_bound((smelt_planes)p, sizes[k]));
            memset(back, 0xee, sizes[k]);
            CHECK_OK(smelt_chunk_decode(d, (smelt_planes)p, out, n, back, sizes[k], scratch));
            CHECK_MSG(!memcmp(back, src, sizes[k]), "layout %d, %zu bytes", p, sizes[k]);
            if (sizes[k] >= 1000) { /* a plane length beyond the chunk, a short chunk */
                out[0] ^= 0x40;
                CHECK_FAILS_WITH(smelt_chunk_decode(d, (smelt_planes)p, out, n, back, sizes[k], scratch), "plane 0");
                out[0] ^= 0x40;
                CHECK(smelt_chunk_decode(d, (smelt_planes)p, out, n - 1, back, sizes[k], scratch) != 0);
            }
        }
    free(src), free(out), free(back), free(scratch);
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
}

typedef struct buf { uint8_t *p; size_t n; } buf;
static int collect(void *ctx, const void *p, size_t n) {
    buf *b = ctx;
    b->p = realloc(b->p, b->n + n);
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* every byte of a small packed GGUF damaged in turn */
static void damaged_bytes(void) {
    const char *gguf = tl_tmp("d.gguf"), *pk = tl_tmp("d.smelt");
    char args[1024];
    size_t gn = 0, n = 0;
    char *src = getenv("SMELT_SOURCE_DIR");
    snprintf(args, sizeof args, "pack %s/tests/fuzz-seeds/gguf/rich.gguf -o %s -q --chunk-size 64", src ? src : "..", pk);
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "%s/tests/fuzz-seeds/gguf/rich.gguf", src ? src : "..");
    uint8_t *orig = (uint8_t *)tl_slurp(args, &gn), *img = (uint8_t *)tl_slurp(pk, &n);
    (void)gguf;
    CHECK(orig && img && n > 100);
    if (!orig || !img) return;
    size_t refused = 0, same = 0;
    setenv("SMELT_THREADS", "1", 1); /* thousands of tiny decodes: no thread team each time */
    for (size_t i = 0; i < n; i++) {
        img[i] ^= 0x21;
        sm_smelt *s;
        buf b = {0};
        if (sm_smelt_open_mem(img, n, "d.smelt", &s)) refused++;
        else {
            if (sm_smelt_extract(s, 0, collect, &b)) refused++;
            else {
                CHECK_MSG(b.n == gn && !memcmp(b.p, orig, gn), "byte %zu damaged: decoded without error, but wrong", i);
                same++;
            }
            sm_smelt_close(s);
        }
        free(b.p);
        img[i] ^= 0x21;
    }
    CHECK(refused + same == n && refused > n * 9 / 10);
    free(orig), free(img);
}

/* One model through a sink of format f (split none) at path: F32, F16, BF16 (over two 256 KiB
 * chunks, not a multiple of them), Q8_0 and an odd-sized F32 tensor, metadata of several types. */
static int write_model(const char *path, sm_sink_format f, bool raw) {
    const sm_sink_opts o = {.format = f, .raw = raw};
    sm_sink *s = sm_sink_open(path, &o);
    if (!s) return -1;
    sm_meta *m = sm_sink_meta(s);
    sm_meta_set_str(m, "general.architecture", "llama");
    sm_meta_set_u32(m, "llama.block_count", 2);
    sm_meta_set_f32(m, "llama.rope.freq_base", 10000.5f);
    const char *toks[3] = {"<s>", "a", "b"};
    sm_meta_set_arr_str(m, "tokenizer.ggml.tokens", toks, 3);
    const int64_t s1[2] = {300, 1000}, s2[2] = {4, 64}, s3[1] = {7};
    const sm_type types[5] = {SM_TYPE_BF16, SM_TYPE_F16, SM_TYPE_F32, SM_TYPE_Q8_0, SM_TYPE_F32};
    const char *names[5] = {"a.weight", "b.weight", "c.weight", "d.weight", "e.bias"};
    const int64_t *shapes[5] = {s1, s2, s2, s2, s3};
    int rc = 0;
    for (int i = 0; i < 5 && !rc; i++) rc = sm_sink_add(s, names[i], types[i], i == 4 ? 1 : 2, shapes[i]);
    if (!rc) rc = sm_sink_begin(s);
    uint32_t x = 99;
    for (int i = 0; i < 5 && !rc; i++) {
        const uint64_t nb = s->tensors[i].nbytes;
        uint8_t *b = malloc(nb);
        for (uint64_t k = 0; k < nb; k++) {
            x = x * 1664525u + 1013904223u;
            b[k] = k % 2 ? (uint8_t)(0x3c + (x >> 30)) : (uint8_t)(x >> 24);
        }
        for (uint64_t k = 0; k < nb && !rc; k += 70001) /* in uneven pieces */
            rc = sm_sink_write(s, b + k, nb - k < 70001 ? nb - k : 70001);
        free(b);
    }
    if (!rc) rc = sm_sink_finish(s);
    sm_sink_close(s);
    return rc;
}

/* The sink's .smelt (streamed, no intermediate GGUF) is byte for byte sm_smelt_pack of the GGUF
 * the GGUF sink writes (named as the .smelt holds it), packed and raw; and the same on a second
 * run (the inner file name once carried the process id). */
static void sink_matches_pack(void) {
    char d1[512], d2[512], d3[512], g[600], p1[600], p2[600], p3[600];
    snprintf(d1, sizeof d1, "%s", tl_tmp("sp1"));
    snprintf(d2, sizeof d2, "%s", tl_tmp("sp2"));
    snprintf(d3, sizeof d3, "%s", tl_tmp("sp3"));
    CHECK(!mkdir(d1, 0700) && !mkdir(d2, 0700) && !mkdir(d3, 0700));
    snprintf(g, sizeof g, "%s/m.gguf", d1);
    CHECK_OK(write_model(g, SM_SINK_GGUF, false));
    for (int raw = 0; raw < 2; raw++) {
        snprintf(p1, sizeof p1, "%s/m.smelt", d1);
        snprintf(p2, sizeof p2, "%s/m.smelt", d2);
        snprintf(p3, sizeof p3, "%s/m.smelt", d3);
        const sm_smelt_pack_opts o = {.raw = raw, .quiet = true};
        CHECK_OK(sm_smelt_pack(g, p1, &o));
        CHECK_OK(write_model(p2, SM_SINK_SMELT, raw));
        CHECK_MSG(tl_same_file(p1, p2), "raw=%d: the sink's .smelt differs from pack of its GGUF", raw);
        CHECK_OK(write_model(p3, SM_SINK_SMELT, raw));
        size_t n2, n3;
        char *a = tl_slurp(p2, &n2), *b = tl_slurp(p3, &n3);
        CHECK(a && b && n2 == n3 && !memcmp(a, b, n2));
        free(a), free(b);
        CHECK(sm_smelt_verify_file(p2, NULL, NULL) == 0);
    }
}

void run_tests(void) {
    TEST(sink_matches_pack);
    TEST(bf16_layout);
    TEST(round_trips);
    TEST(damaged_bytes);
}
