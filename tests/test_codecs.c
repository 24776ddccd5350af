/* test_codecs.c - the quantize codecs against ggml's golden vectors (tests/data/golden/).
 *
 * The golden files hold, for each type, ggml_quantize_chunk's bytes for the inputs below (with
 * and without importance weights), a hash of ggml's dequantization of each row and ggml's
 * squared round-trip error per row (see tests/data/golden/README.md). Every check runs once
 * per instruction set this CPU has (scalar, avx2, avx512), so the SIMD kernels are held to
 * the same bytes. Also: thread-count independence and the refusals. */
#include "testlib.h"

#include "kernels/kernels.h"
#include "quantize/codec_internal.h"
#include "quantize/iq_grids.h"
#include "quantize/quantize.h"

#include <float.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* ---- the golden inputs; /work/golden-gen/inputs.h (outside the repo) is a verbatim copy ---- */

#define GOLD_ROWS 24
#define GOLD_COLS 512

static uint64_t gold_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* uniform in (0, 1], exactly (k + 1) / 2^24 */
static float gold_unif(uint64_t *s) { return (float)((gold_next(s) >> 40) + 1) * 0x1p-24f; }
/* approximately standard normal: a centred sum of 12 uniforms, in exact integer arithmetic */
static float gold_gauss(uint64_t *s) {
    int64_t acc = 0;
    for (int k = 0; k < 12; k++) acc += (int64_t)(gold_next(s) >> 40);
    return (float)(2 * acc - 12 * ((INT64_C(1) << 24) - 1)) * 0x1p-25f;
}

static void gold_row(int r, float *x) {
    uint64_t s = 1000 + (uint64_t)r;
    static const float gscale[6] = {0.02f, 0.05f, 0.1f, 1.0f, 0.003f, 7.0f};
    static const float hscale[4] = {0.02f, 0.1f, 1.0f, 0.01f};
    for (int j = 0; j < GOLD_COLS; j++) {
        float v;
        if (r < 6) v = gscale[r] * gold_gauss(&s);
        else if (r < 10) v = hscale[r - 6] * (gold_gauss(&s) / sqrtf(gold_unif(&s)));
        else if (r == 10) v = 0.0f;
        else if (r == 11) v = 0.5f;
        else if (r == 12) v = j == 100 ? 25.0f : j == 300 ? -40.0f : 0.02f * gold_gauss(&s);
        else if (r == 13) v = 1e-8f * gold_gauss(&s);
        else if (r == 14) v = 0.1f * gold_unif(&s);
        else if (r == 15) v = -0.3f * gold_unif(&s);
        else if (r == 16) {
            int k = (j / 32) % 4;
            v = k == 0 ? 0.0f : k == 1 ? 0.05f * gold_gauss(&s) : k == 2 ? -0.25f : 1.0f + 0.05f * gold_gauss(&s);
        } else if (r == 17) v = (j % 2 ? -1.0f : 1.0f) * (0.01f + 0.02f * gold_unif(&s));
        else if (r == 18) v = (float)((int)(gold_next(&s) % 17) - 8) * 0.125f;
        else if (r == 19) v = (float)((int)(gold_next(&s) % 16) - 8);
        else if (r == 20) v = (j / 16) % 2 ? 0.0f : 0.04f * gold_gauss(&s);
        else if (r == 21) v = gold_next(&s) % 16 == 0 ? 0.1f * gold_gauss(&s) : 0.0f;
        else if (r == 22) v = 0.02f * gold_gauss(&s) * ldexpf(1.0f, j / 64 - 4);
        else v = 1e-30f * gold_gauss(&s);
        x[j] = v;
    }
}

/* importance weights: positive, spread over [0.01, 5.01], every 61st zero */
static void gold_imatrix(float *w) {
    uint64_t s = 77;
    for (int j = 0; j < GOLD_COLS; j++) {
        float u = gold_unif(&s);
        w[j] = j % 61 == 60 ? 0.0f : 0.01f + 5.0f * u * u;
    }
}

/* ---- golden files ---- */

typedef struct gold_variant {
    bool with_imatrix;
    const uint8_t *bytes; /* GOLD_ROWS rows */
    size_t nbytes;
    uint64_t deq_hash[GOLD_ROWS]; /* XXH64 of ggml's dequantized row */
    double sse[GOLD_ROWS];        /* ggml's sum of squared round-trip errors per row */
} gold_variant;

typedef struct gold_file {
    char *data;
    int nvariants;
    gold_variant v[2];
} gold_file;

static float g_x[GOLD_ROWS * GOLD_COLS], g_imat[GOLD_COLS];

static uint64_t rd64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* Loads tests/data/golden/<type>.bin; false (with a failed check) if absent or malformed. */
static bool gold_load(sm_type t, gold_file *g) {
    const char *root = getenv("SMELT_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/golden/%s.bin", root ? root : "..", sm_type_name(t));
    size_t n = 0;
    memset(g, 0, sizeof *g);
    g->data = tl_slurp(path, &n);
    CHECK_MSG(g->data != NULL, "cannot read %s", path);
    if (!g->data) return false;
    const char *p = g->data, *end = g->data + n;
    const size_t row_bytes = (size_t)sm_type_row_bytes(t, GOLD_COLS);
    bool ok = n >= 40 && !memcmp(p, "SMGOLD1\n", 8) && rd32(p + 8) == (uint32_t)t && rd32(p + 12) == GOLD_ROWS &&
              rd32(p + 16) == GOLD_COLS && rd32(p + 20) >= 1 && rd32(p + 20) <= 2;
    CHECK_MSG(ok, "%s: bad header", path);
    if (!ok) return false;
    /* the inputs regenerated here must be the ones ggml saw */
    CHECK_MSG(rd64(p + 24) == XXH64(g_x, sizeof g_x, 0), "%s: input hash differs (PRNG drift?)", path);
    CHECK_MSG(rd64(p + 32) == XXH64(g_imat, sizeof g_imat, 0), "%s: imatrix hash differs", path);
    g->nvariants = (int)rd32(p + 20);
    p += 40;
    for (int k = 0; k < g->nvariants; k++) {
        gold_variant *v = &g->v[k];
        ok = end - p >= 16 && rd64(p + 8) == row_bytes * GOLD_ROWS &&
             (size_t)(end - p) >= 16 + row_bytes * GOLD_ROWS + 16 * GOLD_ROWS;
        CHECK_MSG(ok, "%s: variant %d truncated", path, k);
        if (!ok) return false;
        v->with_imatrix = rd32(p) != 0;
        v->nbytes = row_bytes * GOLD_ROWS;
        v->bytes = (const uint8_t *)p + 16;
        p += 16 + v->nbytes;
        for (int r = 0; r < GOLD_ROWS; r++, p += 16) {
            v->deq_hash[r] = rd64(p);
            memcpy(&v->sse[r], p + 8, 8);
        }
    }
    return true;
}

static const sm_type QUANT_TYPES[] = {SM_TYPE_Q4_0, SM_TYPE_Q4_1, SM_TYPE_Q5_0, SM_TYPE_Q5_1,
                                      SM_TYPE_Q8_0, SM_TYPE_Q2_K, SM_TYPE_Q3_K, SM_TYPE_Q4_K,
                                      SM_TYPE_Q5_K, SM_TYPE_Q6_K, SM_TYPE_IQ4_NL, SM_TYPE_IQ4_XS,
                                      SM_TYPE_TQ1_0, SM_TYPE_TQ2_0, SM_TYPE_MXFP4,
                                      SM_TYPE_IQ2_XXS, SM_TYPE_IQ2_XS, SM_TYPE_IQ2_S, SM_TYPE_IQ3_XXS,
                                      SM_TYPE_IQ3_S, SM_TYPE_IQ1_S, SM_TYPE_IQ1_M};
#define N_QUANT_TYPES (sizeof QUANT_TYPES / sizeof QUANT_TYPES[0])

static double row_sse(const float *deq, const float *x) {
    double s = 0;
    for (int j = 0; j < GOLD_COLS; j++) {
        double d = (double)deq[j] - (double)x[j];
        s += d * d;
    }
    return s;
}

/* Our bytes equal ggml's, row by row; reports the first differing byte. */
static void check_bytes(sm_type t, const gold_variant *v, const uint8_t *ours) {
    const size_t rb = (size_t)sm_type_row_bytes(t, GOLD_COLS);
    for (int r = 0; r < GOLD_ROWS; r++) {
        const uint8_t *a = ours + r * rb, *b = v->bytes + r * rb;
        if (memcmp(a, b, rb)) {
            size_t k = 0;
            while (a[k] == b[k]) k++;
            CHECK_MSG(0, "%s%s (%s): row %d differs from ggml at byte %zu of the row (block %zu): %02x vs %02x",
                      sm_type_name(t), v->with_imatrix ? "+imatrix" : "", sm_isa_name(sm_isa_active()), r, k,
                      k / sm_type_get(t)->block_bytes, a[k], b[k]);
        }
    }
}

/* Our dequantizer on ggml's bytes reproduces ggml's floats (by hash) and its error. */
static void check_dequant(sm_type t, const gold_variant *v) {
    const size_t rb = (size_t)sm_type_row_bytes(t, GOLD_COLS);
    float deq[GOLD_COLS];
    for (int r = 0; r < GOLD_ROWS; r++) {
        CHECK_OK(sm_dequantize_row(t, v->bytes + r * rb, deq, GOLD_COLS));
        CHECK_MSG(XXH64(deq, sizeof deq, 0) == v->deq_hash[r], "%s: dequantized row %d differs from ggml's",
                  sm_type_name(t), r);
        CHECK_MSG(row_sse(deq, g_x + r * GOLD_COLS) == v->sse[r], "%s: row %d error differs", sm_type_name(t), r);
    }
}

/* Round-trip error of our own bytes on the gaussian (rows 0-5) and heavy-tailed (6-9) rows is
 * no worse than ggml's. */
static void check_rmse(sm_type t, const gold_variant *v, const uint8_t *ours) {
    const size_t rb = (size_t)sm_type_row_bytes(t, GOLD_COLS);
    float deq[GOLD_COLS];
    for (int group = 0; group < 2; group++) {
        double ours_sse = 0, ggml_sse = 0;
        for (int r = group * 6; r < (group ? 10 : 6); r++) {
            CHECK_OK(sm_dequantize_row(t, ours + r * rb, deq, GOLD_COLS));
            ours_sse += row_sse(deq, g_x + r * GOLD_COLS);
            ggml_sse += v->sse[r];
        }
        CHECK_MSG(ours_sse <= ggml_sse * 1.0001, "%s %s rows: sse %g vs ggml %g", sm_type_name(t),
                  group ? "heavy-tailed" : "gaussian", ours_sse, ggml_sse);
    }
}

static void golden_types(void) {
    for (size_t k = 0; k < N_QUANT_TYPES; k++) {
        sm_type t = QUANT_TYPES[k];
        gold_file g;
        if (!gold_load(t, &g)) { free(g.data); continue; }
        /* types ggml cannot quantize without importance weights have only that variant */
        const int want = sm_quantize_requires_imatrix(t) ? 1 : 2;
        CHECK_MSG(g.nvariants == want && g.v[want - 1].with_imatrix, "%s: expected %d variant(s)", sm_type_name(t), want);
        uint8_t *ours = malloc(g.v[0].nbytes);
        for (int vi = 0; vi < g.nvariants; vi++) {
            const gold_variant *v = &g.v[vi];
            check_dequant(t, v);
            for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
                sm_isa_set((sm_isa)isa);
                memset(ours, 0x5a, v->nbytes);
                size_t n = sm_quantize_rows(t, g_x, ours, GOLD_ROWS, GOLD_COLS, v->with_imatrix ? g_imat : NULL);
                CHECK_MSG(n == v->nbytes, "%s: %s", sm_type_name(t), sm_last_error());
                check_bytes(t, v, ours);
                check_rmse(t, v, ours);
            }
            sm_isa_set(sm_cpu_isa());
        }
        free(ours);
        free(g.data);
    }
}

/* F16 and BF16 rows are ggml's conversions; Q8_K (dequantize only) decodes ggml's blocks. */
static void golden_plain_and_q8_K(void) {
    const sm_type plain[] = {SM_TYPE_F16, SM_TYPE_BF16};
    for (int k = 0; k < 2; k++) {
        gold_file g;
        if (!gold_load(plain[k], &g)) { free(g.data); continue; }
        uint8_t *ours = malloc(g.v[0].nbytes);
        CHECK(sm_quantize_rows(plain[k], g_x, ours, GOLD_ROWS, GOLD_COLS, NULL) == g.v[0].nbytes);
        CHECK_MSG(!memcmp(ours, g.v[0].bytes, g.v[0].nbytes), "%s bytes differ", sm_type_name(plain[k]));
        check_dequant(plain[k], &g.v[0]);
        free(ours);
        free(g.data);
    }
    gold_file g;
    if (gold_load(SM_TYPE_Q8_K, &g)) check_dequant(SM_TYPE_Q8_K, &g.v[0]);
    free(g.data);
    CHECK(!sm_quantize_supported(SM_TYPE_Q8_K));
}

/* The SIMD kernels group blocks across row ends and pad the last group, and each thread
 * takes its own range of rows: none of that may change a byte. Every ISA with 1 and 2
 * threads against the scalar code with 1 thread, on shapes whose super-blocks do not fill
 * the last group (3 per row, a single one). */
static void isa_and_thread_independence(void) {
    static const int64_t shapes[][2] = {{13, 768}, {1, 256}, {5, 512}};
    const int saved = omp_get_max_threads();
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1];
        float *x = malloc(sizeof(float) * (size_t)(rows * cols)), *w = malloc(sizeof(float) * (size_t)cols);
        uint64_t s = 4242 + si;
        for (int64_t i = 0; i < rows * cols; i++) x[i] = 0.03f * gold_gauss(&s) + (i % 97 == 0 ? 0.5f : 0.0f);
        for (int64_t j = 0; j < cols; j++) w[j] = gold_unif(&s);
        for (size_t k = 0; k < N_QUANT_TYPES; k++) {
            sm_type t = QUANT_TYPES[k];
            size_t nb = (size_t)sm_type_row_bytes(t, cols) * (size_t)rows;
            uint8_t *ref = malloc(nb), *b = malloc(nb);
            for (int wi = sm_quantize_requires_imatrix(t); wi < 2; wi++) {
                sm_isa_set(SM_ISA_SCALAR);
                omp_set_num_threads(1);
                CHECK(sm_quantize_rows(t, x, ref, rows, cols, wi ? w : NULL) == nb);
                for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
                    sm_isa_set((sm_isa)isa);
                    for (int nt = 1; nt <= 2; nt++) {
                        omp_set_num_threads(nt);
                        memset(b, 0x77, nb);
                        CHECK(sm_quantize_rows(t, x, b, rows, cols, wi ? w : NULL) == nb);
                        CHECK_MSG(!memcmp(ref, b, nb), "%s%s %lldx%lld: %s with %d thread(s) differs from scalar",
                                  sm_type_name(t), wi ? "+imatrix" : "", (long long)rows, (long long)cols,
                                  sm_isa_name((sm_isa)isa), nt);
                    }
                }
            }
            free(ref);
            free(b);
        }
        free(x);
        free(w);
    }
    sm_isa_set(sm_cpu_isa());
    omp_set_num_threads(saved);
}

/* ggml's scans keep the first of equal values, so a block's zero min or max carries the sign
 * of the first zero (it shows in Q4_1/Q5_1's f16 min): the SIMD paths must agree. */
static void signed_zeros(void) {
    enum { ROWS = 8, COLS = 256 };
    static float x[ROWS * COLS];
    static uint8_t ref[ROWS * 2 * COLS], b[ROWS * 2 * COLS];
    uint64_t s = 99;
    for (int r = 0; r < ROWS; r++) {
        for (int j = 0; j < COLS; j++) {
            float v = 0.01f + gold_unif(&s);
            x[r * COLS + j] = r % 2 ? -v : v; /* one-signed rows: the zeros are the min or the max */
        }
        for (int blk = 0; blk < COLS / 32; blk++)
            for (int z = 0; z < 3; z++) x[r * COLS + 32 * blk + (int)(gold_next(&s) % 32)] = gold_next(&s) % 2 ? -0.0f : 0.0f;
    }
    for (int j = 192; j < COLS; j++) x[(ROWS - 1) * COLS + j] = j % 3 ? 0.0f : -0.0f; /* all-zero blocks */
    for (size_t k = 0; k < N_QUANT_TYPES; k++) {
        sm_type t = QUANT_TYPES[k];
        if (sm_quantize_requires_imatrix(t)) continue;
        size_t nb = (size_t)sm_type_row_bytes(t, COLS) * ROWS;
        sm_isa_set(SM_ISA_SCALAR);
        CHECK(sm_quantize_rows(t, x, ref, ROWS, COLS, NULL) == nb);
        for (int isa = SM_ISA_AVX2; isa <= (int)sm_cpu_isa(); isa++) {
            sm_isa_set((sm_isa)isa);
            CHECK(sm_quantize_rows(t, x, b, ROWS, COLS, NULL) == nb);
            CHECK_MSG(!memcmp(ref, b, nb), "%s: %s differs from scalar on signed zeros", sm_type_name(t),
                      sm_isa_name((sm_isa)isa));
        }
    }
    sm_isa_set(sm_cpu_isa());
}

static void refusals(void) {
    float x[512] = {0}, w[512];
    uint8_t out[2048];
    for (int j = 0; j < 512; j++) { x[j] = 0.01f * (float)(j % 7); w[j] = 1.0f; }
    CHECK(sm_quantize_supported(SM_TYPE_Q4_K) && sm_quantize_supported(SM_TYPE_BF16));
    CHECK(sm_quantize_supported(SM_TYPE_IQ2_XXS) && !sm_quantize_supported(SM_TYPE_Q8_K));
    CHECK(sm_quantize_requires_imatrix(SM_TYPE_IQ2_XS) && !sm_quantize_requires_imatrix(SM_TYPE_Q4_K));

    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q4_K, x, out, 1, 100, NULL) == 0 ? -1 : 0, "multiple of the block size");
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q8_0, x, out, 1, 48, NULL) == 0 ? -1 : 0, "multiple of the block size");
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_IQ2_XXS, x, out, 1, 256, NULL) == 0 ? -1 : 0, "needs importance weights");
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q8_K, x, out, 1, 256, w) == 0 ? -1 : 0, "cannot produce");

    x[256 + 5] = NAN;
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q4_0, x, out, 2, 256, NULL) == 0 ? -1 : 0, "row 1, column 5");
    x[256 + 5] = -INFINITY;
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q6_K, x, out, 2, 256, NULL) == 0 ? -1 : 0, "not finite");
    x[256 + 5] = 1e10f; /* finite, but Q8_0's scale 1e10/127 does not fit an f16 */
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q8_0, x, out, 2, 256, NULL) == 0 ? -1 : 0, "row 1, block 0: scale");
    x[256 + 5] = 0;

    w[7] = -1;
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q4_K, x, out, 1, 256, w) == 0 ? -1 : 0, "importance weight 7");
    w[7] = NAN;
    CHECK_FAILS_WITH(sm_quantize_rows(SM_TYPE_Q4_K, x, out, 1, 256, w) == 0 ? -1 : 0, "importance weight 7");
    w[7] = 1;
    CHECK(sm_quantize_rows(SM_TYPE_Q4_K, x, out, 1, 256, w) == 144);
    CHECK(sm_quantize_rows(SM_TYPE_Q8_0, x, out, 0, 256, NULL) == 0); /* nothing to do */

    float deq[256];
    CHECK_FAILS_WITH(sm_dequantize_row(SM_TYPE_Q4_K, out, deq, 100), "whole number of blocks");
    CHECK_OK(sm_dequantize_row(SM_TYPE_Q4_K, out, deq, 256));
}

/* The i-quants' AVX2 neighbour search (eight neighbours at a time, lists of any length, so
 * every tail) against ggml's loop as written in iq2/iq3_find_best_neighbour: for every
 * off-grid index of every grid, on random inputs and on integer ones (many equal distances,
 * where the first in list order must win). */
static int ref_nearest(const q_iq_grid *g, const uint16_t *nb, const float *xval, const float *w, float scale) {
    float best_d2 = FLT_MAX;
    int best = -1;
    for (int j = 1; j <= nb[0]; ++j) {
        const int8_t *pg = g->pos + 8 * nb[j];
        float d2 = 0;
        for (int i = 0; i < g->dim; ++i) {
            float q = pg[i];
            float diff = scale * q - xval[i];
            d2 += w[i] * diff * diff;
        }
        if (d2 < best_d2) { best_d2 = d2; best = nb[j]; }
    }
    return best;
}

static void iq_neighbour_search(void) {
    if (sm_cpu_isa() < SM_ISA_AVX2) { fprintf(stderr, "  (no AVX2: the AVX2 search is not run)\n"); return; }
    static const q_iq_grid_id ids[] = {Q_IQ_GRID_2XXS, Q_IQ_GRID_2XS, Q_IQ_GRID_2S, Q_IQ_GRID_3XXS, Q_IQ_GRID_3S};
    uint64_t s = 99;
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        const q_iq_grid *g = q_iq_grid_get(ids[k]);
        CHECK(g != NULL);
        if (!g) continue;
        const int map_size = g->bits == 2 ? 1 << 16 : 1 << 12;
        int lists = 0, bad = 0, lens[8] = {0};
        for (int u = 0; u < map_size; u++) {
            if (g->bits == 2 && ((u & 0x5555) & (u >> 1 & 0x5555))) continue; /* a level 3 */
            if (g->map[u] >= 0) continue;
            const uint16_t *nb = q_iq_neighbours(g, u), *codes = g->codes + (nb - g->neighbours);
            lens[nb[0] % 8]++;
            for (int trial = 0; trial < 2; trial++) {
                float xval[8], w[8], scale = trial ? 1.0f : 0.5f + gold_unif(&s);
                for (int i = 0; i < g->dim; i++) {
                    xval[i] = trial ? (float)(gold_next(&s) % 16) : 8 * gold_unif(&s);
                    w[i] = trial ? 1.0f : gold_unif(&s);
                }
                const int want = ref_nearest(g, nb, xval, w, scale);
                const int got = q_iq_nearest_avx2(nb, codes, g->dim, xval, w, scale);
                bad += got != want;
                if (got != want && bad < 4)
                    fprintf(stderr, "  grid %d index %d (%d neighbours): %d, ggml's loop %d\n", (int)ids[k], u,
                            nb[0], got, want);
            }
            lists++;
        }
        CHECK_MSG(bad == 0, "grid %d: %d of %d searches differ", (int)ids[k], bad, 2 * lists);
        for (int r = 0; r < 8; r++) /* every tail length occurs */
            CHECK_MSG(lens[r] > 0 || g->dim == 4, "grid %d: no list of length %d mod 8", (int)ids[k], r);
    }
}

void run_tests(void) {
    for (int r = 0; r < GOLD_ROWS; r++) gold_row(r, g_x + r * GOLD_COLS);
    gold_imatrix(g_imat);
    fprintf(stderr, "cpu isa: %s\n", sm_isa_name(sm_cpu_isa()));
    TEST(golden_types);
    TEST(golden_plain_and_q8_K);
    TEST(isa_and_thread_independence);
    TEST(signed_zeros);
    TEST(iq_neighbour_search);
    TEST(refusals);
}
