/* test_gptq.c - GPTQ: the Hessian accumulator, the linear algebra, and the algorithm against
 * an independent, straightforward float64 OBS implementation written here.
 *
 *  (i)   on a linear with correlated inputs, GPTQ's ||WX - W-hat X||^2 is below round-to-nearest
 *        on the same grid, for every grid (HF int grids and GGUF block types);
 *  (ii)  the lazy-batched, blocked, multi-threaded implementation gives the same codes and the
 *        same loss as a column-by-column OBS (explicit H^-1 by Gauss-Jordan, updated after each
 *        column: no Cholesky, no batching), for several configurations;
 *  (iii) identical bytes for 1 and 2 threads and for every ISA;
 *  (iv)  GGUF output decodes (our ggml-compatible dequantizer) to exactly W-hat;
 *  (vi)  dead columns, singular Hessians (dampening), refusals. */
#include "testlib.h"

#include "kernels/kernels.h"
#include "quantize/codec_internal.h"
#include "quantize/gptq_internal.h"
#include "quantize/quantize.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixed pseudo-random inputs ---- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) { return ((double)(rng_next(s) >> 11) + 0.5) * 0x1p-53; }
static double rng_gauss(uint64_t *s) {
    const double u = rng_unif(s), v = rng_unif(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* X [ntok, cols]: a 48-dimensional latent mixed into every column (strong correlations), a
 * little noise, and column scales spread over two orders of magnitude (like activations). */
static float *make_inputs(int ntok, int cols, uint64_t seed) {
    uint64_t s = seed;
    const int lat = 48;
    double *mix = malloc(sizeof(double) * (size_t)(lat * cols));
    double *scale = malloc(sizeof(double) * (size_t)cols);
    for (int i = 0; i < lat * cols; i++) mix[i] = rng_gauss(&s);
    for (int j = 0; j < cols; j++) scale[j] = exp(1.2 * rng_gauss(&s));
    float *x = malloc(sizeof(float) * (size_t)(ntok * cols));
    double z[48];
    for (int t = 0; t < ntok; t++) {
        for (int k = 0; k < lat; k++) z[k] = rng_gauss(&s);
        for (int j = 0; j < cols; j++) {
            double v = 0.3 * rng_gauss(&s);
            for (int k = 0; k < lat; k++) v += z[k] * mix[k * cols + j] / 7.0;
            x[t * cols + j] = (float)(v * scale[j]);
        }
    }
    free(mix);
    free(scale);
    return x;
}

static float *make_weight(int rows, int cols, uint64_t seed) {
    uint64_t s = seed;
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int i = 0; i < rows * cols; i++) w[i] = (float)(0.05 * rng_gauss(&s));
    return w;
}

/* H = 2/n X^T X, straightforwardly (long double sums). */
static double *naive_hessian(const float *x, int ntok, int cols) {
    double *h = malloc(sizeof(double) * (size_t)(cols * cols));
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++) {
            long double s = 0;
            for (int t = 0; t < ntok; t++) s += (long double)x[t * cols + i] * x[t * cols + j];
            h[i * cols + j] = (double)(2.0L * s / ntok);
        }
    return h;
}

/* ||W X^T - Wq X^T||^2 over the tokens (the real output error), long double. */
static double output_error(const float *w, const float *wq, int rows, int cols, const float *x, int ntok) {
    long double tot = 0;
    for (int t = 0; t < ntok; t++)
        for (int r = 0; r < rows; r++) {
            long double s = 0;
            for (int c = 0; c < cols; c++) s += ((long double)w[r * cols + c] - wq[r * cols + c]) * x[t * cols + c];
            tot += s * s;
        }
    return (double)tot;
}

/* tr(D H D^T), D = W - Wq. */
static double naive_loss(const float *w, const double *wq, int rows, int cols, const double *h) {
    long double tot = 0;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < cols; i++) {
            const long double di = (long double)w[r * cols + i] - wq[r * cols + i];
            if (di == 0) continue;
            long double s = 0;
            for (int j = 0; j < cols; j++) s += h[i * cols + j] * ((long double)w[r * cols + j] - wq[r * cols + j]);
            tot += di * s;
        }
    return (double)tot;
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-300); }

static sm_gptq_opts int_opts(int bits, int gs, bool sym, bool act) {
    sm_gptq_opts o;
    sm_gptq_opts_default(&o);
    o.bits = bits;
    o.group_size = gs;
    o.sym = sym;
    o.act_order = act;
    return o;
}
static sm_gptq_opts gguf_opts(sm_type t) {
    sm_gptq_opts o;
    sm_gptq_opts_default(&o);
    o.gguf_type = t;
    return o;
}

/* ---- the shared fixture: 512 tokens x 256 columns, W 64 x 256 ---- */

enum { NT = 512, NC = 256, NR = 64 };
static float *g_x, *g_w;
static double *g_h;           /* sm_hessian's */

static void hessian_accumulator(void) {
    double *ref = naive_hessian(g_x, NT, NC);
    sm_hessian *h = sm_hessian_new(NC);
    CHECK_OK(sm_hessian_add(h, g_x, NT, NC));
    CHECK(sm_hessian_tokens(h) == NT && sm_hessian_cols(h) == NC);
    const double *m = sm_hessian_matrix(h);
    double worst = 0;
    for (int i = 0; i < NC * NC; i++) worst = fmax(worst, rel(m[i], ref[i]) * (fabs(ref[i]) > 1e-3 * fabs(ref[(i / NC) * NC + i / NC]) ? 1 : 0));
    CHECK_MSG(worst < 1e-12, "worst relative error %g", worst);
    bool sym = true;
    for (int i = 0; i < NC; i++)
        for (int j = 0; j < NC; j++) sym &= m[i * NC + j] == m[j * NC + i];
    CHECK(sym);

    /* batches split differently (and a strided batch), merged accumulators: same bits */
    sm_hessian *a = sm_hessian_new(NC), *b = sm_hessian_new(NC);
    float *wide = malloc(sizeof(float) * (size_t)(NT * (NC + 3)));
    for (int t = 0; t < NT; t++) memcpy(wide + t * (NC + 3), g_x + t * NC, sizeof(float) * NC);
    CHECK_OK(sm_hessian_add(a, g_x, 100, NC));
    CHECK_OK(sm_hessian_add(a, g_x + 100 * NC, 1, NC));
    CHECK_OK(sm_hessian_add(b, wide + 101 * (NC + 3), NT - 101, NC + 3));
    sm_hessian *ab = sm_hessian_new(NC);
    CHECK_OK(sm_hessian_add(ab, g_x, 100, NC));
    CHECK_OK(sm_hessian_add(ab, g_x + 100 * NC, 1, NC));
    CHECK_OK(sm_hessian_add(ab, wide + 101 * (NC + 3), NT - 101, NC + 3));
    CHECK(memcmp(sm_hessian_matrix(ab), m, sizeof(double) * NC * NC) == 0);
    CHECK_FAILS_WITH(sm_hessian_add(ab, g_x, 1, NC), "after");
    sm_hessian_free(ab);
    /* merging two accumulators: the same H up to the order of the last addition */
    CHECK_OK(sm_hessian_merge(a, b));
    CHECK(sm_hessian_tokens(a) == NT);
    const double *mm = sm_hessian_matrix(a);
    worst = 0;
    for (int i = 0; i < NC * NC; i++) worst = fmax(worst, fabs(mm[i] - m[i]) / m[(i / NC) * NC + i / NC]);
    CHECK_MSG(worst < 1e-12, "merged: %g", worst);

    /* non-finite input refused */
    sm_hessian *c = sm_hessian_new(NC);
    wide[5 * (NC + 3) + 7] = NAN;
    CHECK_FAILS_WITH(sm_hessian_add(c, wide, 10, NC + 3), "row 5, column 7");
    CHECK(sm_hessian_new(0) == NULL);
    free(wide);
    sm_hessian_free(a);
    sm_hessian_free(b);
    sm_hessian_free(c);
    sm_hessian_free(h);
    free(ref);
}

/* gq_gemm against a naive triple loop, every ISA, odd sizes, lower-only and strided. */
static void gemm_kernels(void) {
    const int m = 131, n = 517, k = 301;
    uint64_t s = 7;
    double *a = malloc(sizeof(double) * m * k), *b = malloc(sizeof(double) * k * n);
    double *c0 = malloc(sizeof(double) * m * n), *c = malloc(sizeof(double) * m * n), *c1 = malloc(sizeof(double) * m * n);
    for (int i = 0; i < m * k; i++) a[i] = rng_gauss(&s);
    for (int i = 0; i < k * n; i++) b[i] = rng_gauss(&s);
    for (int i = 0; i < m * n; i++) c0[i] = rng_gauss(&s);
    const sm_isa best = sm_cpu_isa();
    for (int isa = SM_ISA_SCALAR; isa <= (int)best; isa++) {
        sm_isa_set((sm_isa)isa);
        for (int lower = 0; lower < 2; lower++) {
            memcpy(c, c0, sizeof(double) * m * n);
            /* A given transposed (a_rs = 1): A[i][p] = a[p*m + i] */
            gq_gemm_args g = {.m = m, .n = n, .k = k, .sign = -1, .a = a, .a_rs = 1, .a_cs = m, .b = b, .b_rs = n,
                              .b_cs = 1, .c = c, .ldc = n, .lower = lower, .parallel = true};
            CHECK_OK(gq_gemm(&g));
            double worst = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < (lower ? (i + 1 < n ? i + 1 : n) : n); j++) {
                    double r = c0[i * n + j];
                    for (int p = 0; p < k; p++) r = fma(-a[p * m + i], b[p * n + j], r);
                    worst = fmax(worst, fabs(r - c[i * n + j]));
                }
            CHECK_MSG(worst == 0, "isa %s lower %d: max diff %g", sm_isa_name((sm_isa)isa), lower, worst);
            if (isa == SM_ISA_SCALAR && !lower) memcpy(c1, c, sizeof(double) * m * n);
            else if (!lower) CHECK(memcmp(c1, c, sizeof(double) * m * n) == 0);
        }
    }
    sm_isa_set(best);
    free(a);
    free(b);
    free(c0);
    free(c);
    free(c1);
}

/* U^T U = H^-1: check U^T U H = I (n not a multiple of the block size) and Cholesky refusal. */
static void inverse_cholesky(void) {
    const int n = 300, nt = 900;
    float *x = make_inputs(nt, n, 99);
    double *h = naive_hessian(x, nt, n);
    for (int i = 0; i < n; i++) h[i * n + i] += 0.01;
    double *a = malloc(sizeof(double) * n * n), *u = malloc(sizeof(double) * n * n);
    memcpy(a, h, sizeof(double) * n * n);
    CHECK_OK(gq_inverse_cholesky_upper(a, n, u, SM_DEVICE_CPU));
    bool upper = true;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) upper &= u[i * n + j] == 0;
    CHECK(upper);
    /* (U^T U H)[i][j] = sum_k U[k][i] (U H)[k][j] */
    double *uh = malloc(sizeof(double) * n * n), worst = 0;
    for (int k = 0; k < n; k++)
        for (int j = 0; j < n; j++) {
            long double s = 0;
            for (int l = k; l < n; l++) s += (long double)u[k * n + l] * h[l * n + j];
            uh[k * n + j] = (double)s;
        }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            long double s = 0;
            for (int k = 0; k <= i; k++) s += (long double)u[k * n + i] * uh[k * n + j];
            worst = fmax(worst, fabs((double)s - (i == j)));
        }
    free(uh);
    CHECK_MSG(worst < 1e-8, "max |U^T U H - I| = %g", worst);
    /* not positive definite */
    memcpy(a, h, sizeof(double) * n * n);
    a[17 * n + 17] = -1;
    CHECK_FAILS_WITH(gq_inverse_cholesky_upper(a, n, u, SM_DEVICE_CPU), "not positive definite");
    free(x);
    free(h);
    free(a);
    free(u);
}

/* ---- the straightforward OBS reference ---- */

/* Gauss-Jordan inverse with partial pivoting. */
static void gj_inverse(const double *a, double *inv, int n) {
    double *m = malloc(sizeof(double) * (size_t)(n * 2 * n));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2 * n; j++) m[i * 2 * n + j] = j < n ? a[i * n + j] : (j - n == i);
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int i = c + 1; i < n; i++)
            if (fabs(m[i * 2 * n + c]) > fabs(m[p * 2 * n + c])) p = i;
        for (int j = 0; j < 2 * n; j++) {
            double t = m[c * 2 * n + j];
            m[c * 2 * n + j] = m[p * 2 * n + j];
            m[p * 2 * n + j] = t;
        }
        const double d = m[c * 2 * n + c];
        for (int j = 0; j < 2 * n; j++) m[c * 2 * n + j] /= d;
        for (int i = 0; i < n; i++) {
            if (i == c) continue;
            const double f = m[i * 2 * n + c];
            if (f != 0)
                for (int j = 0; j < 2 * n; j++) m[i * 2 * n + j] -= f * m[c * 2 * n + j];
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) inv[i * n + j] = m[i * 2 * n + n + j];
    free(m);
}

/* One group's parameters, as gptq's find_params (int) or the fitted GGUF block (the grid's
 * level values come from decoding the block with every code). */
typedef struct ref_params {
    float scale;
    int zero;
    float *lv; /* GGUF: lv[L * block_size + position] = the value of level L there */
    int nlev;
} ref_params;

static void ref_fit_int(const sm_gptq_opts *o, const double *x, int n, ref_params *p) {
    const int maxq = (1 << o->bits) - 1;
    double xmin = 0, xmax = 0;
    for (int i = 0; i < n; i++) {
        xmin = fmin(xmin, x[i]);
        xmax = fmax(xmax, x[i]);
    }
    if (o->sym) {
        xmax = fmax(fabs(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) xmin = -1, xmax = 1;
    p->scale = sm_f16_to_f32(sm_f32_to_f16((float)((xmax - xmin) / maxq)));
    if (o->sym) {
        p->zero = (maxq + 1) / 2;
    } else {
        double z = rint(-xmin / p->scale);
        p->zero = (int)fmin(fmax(z, o->v1_zero ? 1 : 0), maxq);
    }
}

/* Writes code L at every position of a block (type-specific bit layout). */
static void set_all_codes(sm_type t, uint8_t *blk, int L) {
    switch (t) {
    case SM_TYPE_Q4_0: memset(((block_q4_0 *)blk)->qs, L * 0x11, 16); break;
    case SM_TYPE_Q4_1: memset(((block_q4_1 *)blk)->qs, L * 0x11, 16); break;
    case SM_TYPE_Q5_0:
        memset(((block_q5_0 *)blk)->qs, (L & 15) * 0x11, 16);
        memset(((block_q5_0 *)blk)->qh, (L >> 4) ? 0xFF : 0, 4);
        break;
    case SM_TYPE_Q5_1:
        memset(((block_q5_1 *)blk)->qs, (L & 15) * 0x11, 16);
        memset(((block_q5_1 *)blk)->qh, (L >> 4) ? 0xFF : 0, 4);
        break;
    case SM_TYPE_Q8_0: memset(((block_q8_0 *)blk)->qs, (uint8_t)(L - 128), 32); break;
    case SM_TYPE_Q4_K: memset(((block_q4_K *)blk)->qs, L * 0x11, 128); break;
    case SM_TYPE_Q5_K:
        memset(((block_q5_K *)blk)->qs, (L & 15) * 0x11, 128);
        memset(((block_q5_K *)blk)->qh, (L >> 4) ? 0xFF : 0, 32);
        break;
    case SM_TYPE_Q6_K:
        memset(((block_q6_K *)blk)->ql, (L & 15) * 0x11, 128);
        memset(((block_q6_K *)blk)->qh, ((L >> 4) & 3) * 0x55, 64);
        break;
    case SM_TYPE_Q2_K: memset(((block_q2_K *)blk)->qs, L * 0x55, 64); break;
    case SM_TYPE_Q3_K: /* level L: low bits L & 3, high-mask bit set for L >= 4 (value L - 4) */
        memset(((block_q3_K *)blk)->qs, (L & 3) * 0x55, 64);
        memset(((block_q3_K *)blk)->hmask, L >= 4 ? 0xFF : 0, 32);
        break;
    case SM_TYPE_IQ4_NL: memset(((block_iq4_nl *)blk)->qs, L * 0x11, 16); break;
    case SM_TYPE_IQ4_XS: memset(((block_iq4_xs *)blk)->qs, L * 0x11, 128); break;
    default: break;
    }
}

static void ref_fit_gguf(const sm_gptq_opts *o, const double *x, const float *imp, ref_params *p) {
    const sm_type_info *ti = sm_type_get(o->gguf_type);
    const int bs = ti->block_size;
    float xf[QK_K];
    uint8_t blk[256];
    for (int i = 0; i < bs; i++) xf[i] = (float)x[i];
    double sum = 0;
    for (int i = 0; i < bs; i++) sum += imp[i];
    CHECK(sm_quantize_rows(o->gguf_type, xf, blk, 1, bs, o->use_importance && sum > 0 ? imp : NULL) == ti->block_bytes);
    p->nlev = o->gguf_type == SM_TYPE_Q8_0 ? 256 : o->gguf_type == SM_TYPE_Q6_K ? 64
              : (o->gguf_type == SM_TYPE_Q5_0 || o->gguf_type == SM_TYPE_Q5_1 || o->gguf_type == SM_TYPE_Q5_K) ? 32
              : o->gguf_type == SM_TYPE_Q3_K ? 8 : o->gguf_type == SM_TYPE_Q2_K ? 4 : 16;
    free(p->lv);
    p->lv = malloc(sizeof(float) * (size_t)(p->nlev * bs));
    for (int L = 0; L < p->nlev; L++) {
        set_all_codes(o->gguf_type, blk, L);
        CHECK_OK(sm_dequantize_row(o->gguf_type, blk, p->lv + L * bs, bs));
    }
}

/* The nearest grid value; *code gets its code (GGUF: the level index). */
static double ref_quant(const sm_gptq_opts *o, const ref_params *p, int pos, double x, int *code) {
    if (o->gguf_type == SM_TYPE_INVALID) {
        const int maxq = (1 << o->bits) - 1;
        int q = (int)fmin(fmax(rint(x / p->scale) + p->zero, 0), maxq);
        *code = q;
        return (double)p->scale * (q - p->zero);
    }
    const int bs = sm_type_get(o->gguf_type)->block_size;
    int best = 0;
    for (int L = 1; L < p->nlev; L++)
        if (fabs(x - p->lv[L * bs + pos]) < fabs(x - p->lv[best * bs + pos])) best = L;
    *code = best;
    return p->lv[best * bs + pos];
}

static struct { const double *h; int n; double damp; double *inv; } g_inv_cache[2];
static void inv_cache_clear(void) {
    for (int i = 0; i < 2; i++) {
        free(g_inv_cache[i].inv);
        memset(&g_inv_cache[i], 0, sizeof g_inv_cache[i]);
    }
}

/* Column-by-column OBS. wq: W-hat in original order; codes (int grid) original order;
 * scales/zeros [n_groups][rows] (int grid). */
static void ref_obs(const float *w, int rows, int n, const double *h, const sm_gptq_opts *o, double *wq,
                    int *codes, float *scales, int *zeros) {
    const bool gguf = o->gguf_type != SM_TYPE_INVALID;
    const int group = gguf ? sm_type_get(o->gguf_type)->block_size : o->group_size == -1 ? n : o->group_size;
    const int ng = (n + group - 1) / group;
    double *diag = malloc(sizeof(double) * n), *a = malloc(sizeof(double) * n * n), *hinv = malloc(sizeof(double) * n * n);
    int *perm = malloc(sizeof(int) * n);
    double *W = malloc(sizeof(double) * rows * n), *W0 = malloc(sizeof(double) * rows * n);
    float *imp = malloc(sizeof(float) * n);
    ref_params *P = calloc((size_t)(rows * ng), sizeof(ref_params));
    double mean = 0;
    for (int i = 0; i < n; i++) {
        diag[i] = h[i * n + i] == 0 ? 1 : h[i * n + i];
        mean += diag[i] / n;
        imp[i] = (float)h[i * n + i];
        perm[i] = i;
    }
    if (o->act_order) /* stable insertion sort by decreasing diagonal */
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && diag[perm[j]] > diag[perm[j - 1]]; j--) {
                int t = perm[j];
                perm[j] = perm[j - 1];
                perm[j - 1] = t;
            }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) a[i * n + j] = i == j ? diag[perm[i]] + o->damp * mean : h[perm[i] * n + perm[j]];
    /* the inverse only depends on (H, order, dampening): computed once per order */
    int ci = o->act_order ? 1 : 0;
    if (g_inv_cache[ci].h != h || g_inv_cache[ci].n != n || g_inv_cache[ci].damp != o->damp) {
        free(g_inv_cache[ci].inv);
        g_inv_cache[ci].inv = malloc(sizeof(double) * n * n);
        gj_inverse(a, g_inv_cache[ci].inv, n);
        g_inv_cache[ci].h = h;
        g_inv_cache[ci].n = n;
        g_inv_cache[ci].damp = o->damp;
    }
    memcpy(hinv, g_inv_cache[ci].inv, sizeof(double) * n * n);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < n; c++) W0[r * n + c] = h[c * n + c] == 0 ? 0 : w[r * n + c];
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < n; k++) W[r * n + k] = W0[r * n + perm[k]];
    if (o->static_groups)
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < ng; g++) {
                const int len = n - g * group < group ? n - g * group : group;
                ref_fit_int(o, W0 + r * n + g * group, len, &P[g * rows + r]);
            }
    double *x = malloc(sizeof(double) * n);
    for (int k = 0; k < n; k++) {
        const int c = perm[k];
        if (!o->static_groups && k % group == 0) {
            const int len = n - k < group ? n - k : group;
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < len; j++) x[j] = W[r * n + k + j];
                if (gguf) ref_fit_gguf(o, x, imp + k, &P[(k / group) * rows + r]);
                else ref_fit_int(o, x, len, &P[(k / group) * rows + r]);
            }
        }
        const int gi = o->static_groups ? c / group : k / group;
        for (int r = 0; r < rows; r++) {
            int code;
            const double wk = W[r * n + k];
            const double q = ref_quant(o, &P[gi * rows + r], c % group, wk, &code);
            const double err = (wk - q) / hinv[k * n + k];
            for (int j = k + 1; j < n; j++) W[r * n + j] -= err * hinv[k * n + j];
            W[r * n + k] = q;
            if (codes) codes[r * n + c] = code;
        }
        /* remove column k from the inverse Hessian */
        for (int i = k + 1; i < n; i++) {
            const double f = hinv[i * n + k] / hinv[k * n + k];
            for (int j = k + 1; j < n; j++) hinv[i * n + j] -= f * hinv[k * n + j];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < n; k++) wq[r * n + perm[k]] = W[r * n + k];
    if (scales)
        for (int i = 0; i < rows * ng; i++) {
            scales[i] = P[i].scale;
            zeros[i] = P[i].zero;
        }
    free(x);
    free(diag);
    free(a);
    free(hinv);
    free(perm);
    free(W);
    free(W0);
    free(imp);
    for (int i = 0; i < rows * ng; i++) free(P[i].lv);
    free(P);
}

/* Quantizes w with o against Hessian h (cols n); the caller frees res. */
static int run_gptq(const double *h, int n, const float *w, int rows, const sm_gptq_opts *o, sm_gptq_result *res) {
    sm_gptq_hinv *p;
    if (sm_gptq_prepare(h, n, o, &p)) return -1;
    int rc = sm_gptq_quantize(p, w, rows, o, res);
    sm_gptq_hinv_free(p);
    return rc;
}

/* (i) */
static void beats_rtn(void) {
    struct {
        const char *name;
        sm_gptq_opts o;
    } cases[] = {
        {"int4 g128 sym", int_opts(4, 128, true, false)},   {"int4 g128 asym", int_opts(4, 128, false, false)},
        {"int4 g32 act-order", int_opts(4, 32, true, true)}, {"int8 g128", int_opts(8, 128, true, false)},
        {"int3 g64 asym", int_opts(3, 64, false, false)},    {"int2 g-1 asym", int_opts(2, -1, false, false)},
        {"Q4_0", gguf_opts(SM_TYPE_Q4_0)},                  {"Q4_1", gguf_opts(SM_TYPE_Q4_1)},
        {"Q5_0", gguf_opts(SM_TYPE_Q5_0)},                  {"Q5_1", gguf_opts(SM_TYPE_Q5_1)},
        {"Q8_0", gguf_opts(SM_TYPE_Q8_0)},                  {"Q4_K", gguf_opts(SM_TYPE_Q4_K)},
        {"Q5_K", gguf_opts(SM_TYPE_Q5_K)},                  {"Q6_K", gguf_opts(SM_TYPE_Q6_K)},
        {"Q2_K", gguf_opts(SM_TYPE_Q2_K)},                  {"Q3_K", gguf_opts(SM_TYPE_Q3_K)},
        {"IQ4_NL", gguf_opts(SM_TYPE_IQ4_NL)},              {"IQ4_XS", gguf_opts(SM_TYPE_IQ4_XS)},
    };
    double *wq = malloc(sizeof(double) * NR * NC);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sm_gptq_result res;
        CHECK_OK(run_gptq(g_h, NC, g_w, NR, &cases[i].o, &res));
        if (!res.deq) continue;
        for (int k = 0; k < NR * NC; k++) wq[k] = res.deq[k];
        /* the report is the real output error: 2/n ||(W - W-hat) X||^2 */
        const double out_err = output_error(g_w, res.deq, NR, NC, g_x, NT) * 2.0 / NT;
        CHECK_MSG(rel(res.loss_gptq, out_err) < 1e-9, "%s: loss %.12g vs output error %.12g", cases[i].name,
                  res.loss_gptq, out_err);
        CHECK_MSG(rel(res.loss_gptq, naive_loss(g_w, wq, NR, NC, g_h)) < 1e-9, "%s", cases[i].name);
        CHECK_MSG(res.loss_gptq < 0.8 * res.loss_rtn, "%s: gptq %g rtn %g", cases[i].name, res.loss_gptq, res.loss_rtn);
        fprintf(stderr, "  %-20s rtn %.6g  gptq %.6g  (x%.2f)\n", cases[i].name, res.loss_rtn, res.loss_gptq,
                res.loss_rtn / res.loss_gptq);
        sm_gptq_result_free(&res);
    }
    free(wq);
}

/* (ii) */
static void equals_column_by_column(void) {
    enum { N2 = 512, R2 = 16, T2 = 768 };
    float *x = make_inputs(T2, N2, 5);
    float *w = make_weight(R2, N2, 6);
    /* a few dead columns */
    for (int t = 0; t < T2; t++) x[t * N2 + 3] = x[t * N2 + 300] = 0;
    sm_hessian *hs = sm_hessian_new(N2);
    CHECK_OK(sm_hessian_add(hs, x, T2, N2));
    const double *h = sm_hessian_matrix(hs);
    struct {
        const char *name;
        sm_gptq_opts o;
        int block;
    } cases[] = {
        {"int4 g128 sym", int_opts(4, 128, true, false), 128},
        {"int4 g32 asym, batch 48", int_opts(4, 32, false, false), 48},
        {"int3 g64 act-order, batch 40", int_opts(3, 64, true, true), 40},
        {"int4 g32 act-order static", int_opts(4, 32, true, true), 128},
        {"int8 g-1", int_opts(8, -1, true, false), 128},
        {"int2 g16 asym act-order v1", int_opts(2, 16, false, true), 128},
        {"Q4_0", gguf_opts(SM_TYPE_Q4_0), 128},
        {"Q5_1 batch 20", gguf_opts(SM_TYPE_Q5_1), 20},
        {"Q4_K batch 96", gguf_opts(SM_TYPE_Q4_K), 96},
        {"Q6_K", gguf_opts(SM_TYPE_Q6_K), 128},
        {"Q5_K no importance", gguf_opts(SM_TYPE_Q5_K), 128},
        {"Q2_K batch 96", gguf_opts(SM_TYPE_Q2_K), 96},
        {"Q3_K", gguf_opts(SM_TYPE_Q3_K), 128},
        {"IQ4_NL batch 20", gguf_opts(SM_TYPE_IQ4_NL), 20},
        {"IQ4_XS", gguf_opts(SM_TYPE_IQ4_XS), 128},
        {"Q3_K no importance", gguf_opts(SM_TYPE_Q3_K), 128},
    };
    cases[3].o.static_groups = true;
    cases[5].o.v1_zero = true;
    cases[10].o.use_importance = false;
    cases[15].o.use_importance = false;
    double *wq = malloc(sizeof(double) * R2 * N2), *wg = malloc(sizeof(double) * R2 * N2);
    int *codes = malloc(sizeof(int) * R2 * N2), *zeros = malloc(sizeof(int) * R2 * N2);
    float *scales = malloc(sizeof(float) * R2 * N2);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sm_gptq_opts o = cases[i].o;
        o.block_size = cases[i].block;
        o.fit_passes = 1; /* the reference is one sweep (refit sweeps: refit_sweeps below) */
        const bool gguf = o.gguf_type != SM_TYPE_INVALID;
        ref_obs(w, R2, N2, h, &o, wq, gguf ? NULL : codes, scales, zeros);
        sm_gptq_result res;
        CHECK_OK(run_gptq(h, N2, w, R2, &o, &res));
        if (!res.deq) continue;
        int code_diff = 0, deq_diff = 0, param_diff = 0;
        for (int k = 0; k < R2 * N2; k++) {
            wg[k] = res.deq[k];
            deq_diff += wg[k] != wq[k];
            if (!gguf) code_diff += res.codes[k] != codes[k];
        }
        if (!gguf)
            for (int k = 0; k < res.n_groups * R2; k++)
                param_diff += sm_f16_to_f32(res.scales[k]) != scales[k] || res.zeros[k] != zeros[k];
        const double lref = naive_loss(w, wq, R2, N2, h);
        CHECK_MSG(code_diff == 0 && deq_diff == 0 && param_diff == 0, "%s: %d codes, %d values, %d group params differ",
                  cases[i].name, code_diff, deq_diff, param_diff);
        CHECK_MSG(rel(res.loss_gptq, lref) < 1e-5, "%s: loss %.10g, column-by-column %.10g", cases[i].name,
                  res.loss_gptq, lref);
        if (!gguf && o.act_order && !o.static_groups) { /* g_idx follows the permutation */
            bool ok = true;
            for (int k = 0; k < N2; k++) ok &= res.g_idx[res.perm[k]] == k / o.group_size;
            CHECK_MSG(ok, "%s: g_idx", cases[i].name);
        }
        if (!gguf && o.v1_zero) {
            bool ok = true;
            for (int k = 0; k < res.n_groups * R2; k++) ok &= res.zeros[k] >= 1;
            CHECK(ok);
        }
        /* dead columns quantize to 0 on the int grids */
        if (!gguf) CHECK(res.deq[3] == 0 && res.deq[N2 + 300] == 0);
        sm_gptq_result_free(&res);
    }
    free(wq);
    free(wg);
    free(codes);
    free(zeros);
    free(scales);
    free(x);
    free(w);
    sm_hessian_free(hs);
    inv_cache_clear();
}

/* Q2_K and Q3_K make a second sweep by default, whose scales are fitted on the values the
 * first sweep quantized; each row keeps the sweep with the smaller tr(dw H dw^T). So no row's
 * error (computed here from the naive Hessian product) is above the single sweep's, the total
 * is below it, and the bytes still decode to what is reported (gguf_bytes_decode_to_what). */
static void refit_sweeps(void) {
    const sm_type types[] = {SM_TYPE_Q2_K, SM_TYPE_Q3_K};
    double *wq = malloc(sizeof(double) * NC);
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        sm_gptq_opts one = gguf_opts(types[t]), two = gguf_opts(types[t]);
        one.fit_passes = 1;
        sm_gptq_result r1, r2;
        CHECK_OK(run_gptq(g_h, NC, g_w, NR, &one, &r1));
        CHECK_OK(run_gptq(g_h, NC, g_w, NR, &two, &r2));
        if (!r1.deq || !r2.deq) continue;
        double l1 = 0, l2 = 0;
        int worse = 0, better = 0;
        for (int r = 0; r < NR; r++) {
            for (int k = 0; k < NC; k++) wq[k] = r1.deq[r * NC + k];
            const double a = naive_loss(g_w + r * NC, wq, 1, NC, g_h);
            for (int k = 0; k < NC; k++) wq[k] = r2.deq[r * NC + k];
            const double b = naive_loss(g_w + r * NC, wq, 1, NC, g_h);
            worse += b > a * (1 + 1e-12);
            better += b < a;
            l1 += a;
            l2 += b;
        }
        fprintf(stderr, "  %s: one sweep %.6g, two %.6g (%d of %d rows better)\n", sm_type_name(types[t]), l1, l2,
                better, NR);
        CHECK_MSG(worse == 0, "%s: %d rows worse after the refit sweep", sm_type_name(types[t]), worse);
        CHECK_MSG(l2 < l1 && better > 0, "%s: two sweeps %g, one %g", sm_type_name(types[t]), l2, l1);
        CHECK(rel(r2.loss_gptq, l2) < 1e-6);
        sm_gptq_result_free(&r1);
        sm_gptq_result_free(&r2);
    }
    free(wq);
}

static bool same_result(const sm_gptq_result *a, const sm_gptq_result *b) {
    const size_t n = (size_t)(a->rows * a->cols);
    if (a->rows != b->rows || a->cols != b->cols || memcmp(a->deq, b->deq, n * sizeof(float))) return false;
    if (memcmp(&a->loss_gptq, &b->loss_gptq, sizeof(double)) || memcmp(&a->loss_rtn, &b->loss_rtn, sizeof(double)))
        return false;
    if (a->codes && (memcmp(a->codes, b->codes, n) || memcmp(a->scales, b->scales, (size_t)(a->n_groups * a->rows) * 2) ||
                     memcmp(a->zeros, b->zeros, (size_t)(a->n_groups * a->rows) * 4)))
        return false;
    if (a->packed && (a->packed_bytes != b->packed_bytes || memcmp(a->packed, b->packed, a->packed_bytes))) return false;
    return true;
}

/* (iii) */
static void threads_and_isas(void) {
    sm_gptq_opts cases[3] = {int_opts(4, 32, false, true), gguf_opts(SM_TYPE_Q4_K), int_opts(3, 128, true, false)};
    cases[2].block_size = 40;
    const sm_isa best = sm_cpu_isa();
    /* the Hessian too */
    setenv("SMELT_THREADS", "1", 1);
    sm_hessian *h1 = sm_hessian_new(NC);
    CHECK_OK(sm_hessian_add(h1, g_x, NT, NC));
    setenv("SMELT_THREADS", "2", 1);
    sm_hessian *h2 = sm_hessian_new(NC);
    CHECK_OK(sm_hessian_add(h2, g_x, NT, NC));
    CHECK(memcmp(sm_hessian_matrix(h1), sm_hessian_matrix(h2), sizeof(double) * NC * NC) == 0);
    sm_hessian_free(h1);
    sm_hessian_free(h2);
    for (int i = 0; i < 3; i++) {
        sm_gptq_result ref;
        setenv("SMELT_THREADS", "1", 1);
        sm_isa_set(SM_ISA_SCALAR);
        CHECK_OK(run_gptq(g_h, NC, g_w, NR, &cases[i], &ref));
        for (int isa = SM_ISA_SCALAR; isa <= (int)best; isa++)
            for (int th = 1; th <= (isa == (int)best ? 3 : 1); th++) {
                sm_gptq_result r;
                char buf[16];
                snprintf(buf, sizeof buf, "%d", th);
                setenv("SMELT_THREADS", buf, 1);
                sm_isa_set((sm_isa)isa);
                CHECK_OK(run_gptq(g_h, NC, g_w, NR, &cases[i], &r));
                CHECK_MSG(r.deq && same_result(&r, &ref), "case %d, isa %s, %d threads", i, sm_isa_name((sm_isa)isa), th);
                sm_gptq_result_free(&r);
            }
        sm_gptq_result_free(&ref);
    }
    unsetenv("SMELT_THREADS");
    sm_isa_set(best);
}

/* (iv) */
static void gguf_bytes_decode_to_what(void) {
    const sm_type types[] = {SM_TYPE_Q4_0, SM_TYPE_Q4_1, SM_TYPE_Q5_0, SM_TYPE_Q5_1,
                             SM_TYPE_Q8_0, SM_TYPE_Q4_K, SM_TYPE_Q5_K, SM_TYPE_Q6_K,
                             SM_TYPE_Q2_K, SM_TYPE_Q3_K, SM_TYPE_IQ4_NL, SM_TYPE_IQ4_XS};
    float *row = malloc(sizeof(float) * NC);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        sm_gptq_opts o = gguf_opts(types[i]);
        sm_gptq_result res;
        CHECK_OK(run_gptq(g_h, NC, g_w, NR, &o, &res));
        if (!res.packed) continue;
        const size_t rb = (size_t)sm_type_row_bytes(types[i], NC);
        CHECK(res.packed_bytes == rb * NR && !res.codes && !res.scales);
        int diff = 0;
        for (int r = 0; r < NR; r++) {
            CHECK_OK(sm_dequantize_row(types[i], (const uint8_t *)res.packed + r * rb, row, NC));
            diff += memcmp(row, res.deq + r * NC, sizeof(float) * NC) != 0;
        }
        CHECK_MSG(diff == 0, "%s: %d rows decode differently", sm_type_name(types[i]), diff);
        sm_gptq_result_free(&res);
    }
    free(row);
}

/* The integer grid's outputs are consistent: w-hat = scale * (code - zero) with g_idx. */
static void int_outputs_consistent(void) {
    sm_gptq_opts o = int_opts(4, 64, false, true);
    sm_gptq_result res;
    CHECK_OK(run_gptq(g_h, NC, g_w, NR, &o, &res));
    if (!res.deq) return;
    CHECK(res.n_groups == NC / 64 && res.perm);
    int bad = 0;
    for (int r = 0; r < NR; r++)
        for (int c = 0; c < NC; c++) {
            const int g = res.g_idx[c];
            const float s = sm_f16_to_f32(res.scales[g * NR + r]);
            bad += res.deq[r * NC + c] != s * (float)(res.codes[r * NC + c] - res.zeros[g * NR + r]);
            bad += res.codes[r * NC + c] > 15;
        }
    CHECK(bad == 0);
    /* act-order: perm sorts diag H decreasing */
    bool sorted = true;
    for (int k = 1; k < NC; k++) sorted &= g_h[res.perm[k - 1] * (NC + 1)] >= g_h[res.perm[k] * (NC + 1)];
    CHECK(sorted);
    sm_gptq_result_free(&res);
}

/* (vi) */
static void dead_columns_and_singular(void) {
    /* duplicated columns and fewer tokens than columns: singular H */
    enum { T3 = 100, N3 = 256, R3 = 16 };
    float *x = make_inputs(T3, N3, 11);
    for (int t = 0; t < T3; t++) {
        x[t * N3 + 10] = x[t * N3 + 11];
        x[t * N3 + 40] = 0; /* dead */
    }
    float *w = make_weight(R3, N3, 12);
    double *h = naive_hessian(x, T3, N3);
    sm_gptq_opts o = int_opts(4, 128, true, true);
    sm_gptq_result res;
    CHECK_OK(run_gptq(h, N3, w, R3, &o, &res));
    if (res.deq) {
        CHECK(isfinite(res.loss_gptq) && res.loss_gptq < res.loss_rtn);
        bool dead0 = true;
        for (int r = 0; r < R3; r++) dead0 &= res.deq[r * N3 + 40] == 0;
        CHECK(dead0);
        sm_gptq_result_free(&res);
    }
    o.damp = 0;
    sm_gptq_hinv *p = NULL;
    CHECK_FAILS_WITH(sm_gptq_prepare(h, N3, &o, &p), "not positive definite");
    CHECK(p == NULL);
    /* an all-zero Hessian: every column dead; H becomes I and the weights all zero */
    memset(h, 0, sizeof(double) * N3 * N3);
    o.damp = 0.01;
    CHECK_OK(run_gptq(h, N3, w, R3, &o, &res));
    if (res.deq) {
        bool zero = true;
        for (int k = 0; k < R3 * N3; k++) zero &= res.deq[k] == 0;
        CHECK(zero && res.loss_gptq == 0);
        sm_gptq_result_free(&res);
    }
    free(x);
    free(w);
    free(h);
}

static void refusals(void) {
    sm_gptq_hinv *p;
    sm_gptq_opts o = int_opts(4, 128, true, true);
    CHECK_OK(sm_gptq_prepare(g_h, NC, &o, &p));
    sm_gptq_result res;
    sm_gptq_opts q = gguf_opts(SM_TYPE_Q4_K);
    CHECK_FAILS_WITH(sm_gptq_quantize(p, g_w, NR, &q, &res), "act-order");
    q.act_order = true;
    CHECK_FAILS_WITH(sm_gptq_quantize(p, g_w, NR, &q, &res), "act-order");
    sm_gptq_hinv_free(p);
    o.act_order = false;
    CHECK_OK(sm_gptq_prepare(g_h, NC, &o, &p));
    o.bits = 5;
    CHECK_FAILS_WITH(sm_gptq_quantize(p, g_w, NR, &o, &res), "5 bits");
    o.bits = 4;
    o.group_size = 0;
    CHECK_FAILS_WITH(sm_gptq_quantize(p, g_w, NR, &o, &res), "group size");
    q = gguf_opts(SM_TYPE_IQ2_XS);
    CHECK_FAILS_WITH(sm_gptq_quantize(p, g_w, NR, &q, &res), "iq2_xs");
    float *w = malloc(sizeof(float) * NR * NC);
    memcpy(w, g_w, sizeof(float) * NR * NC);
    w[3 * NC + 5] = INFINITY;
    o.group_size = 128;
    CHECK_FAILS_WITH(sm_gptq_quantize(p, w, NR, &o, &res), "(3, 5)");
    /* a scale beyond f16 */
    w[3 * NC + 5] = 1e9f;
    CHECK_FAILS_WITH(sm_gptq_quantize(p, w, NR, &o, &res), "f16");
    q = gguf_opts(SM_TYPE_Q4_0);
    CHECK_FAILS_WITH(sm_gptq_quantize(p, w, NR, &q, &res), "f16");
    free(w);
    sm_gptq_hinv_free(p);
    o.damp = -1;
    CHECK_FAILS_WITH(sm_gptq_prepare(g_h, NC, &o, &p), "dampening");
    /* columns not a multiple of the block size */
    enum { N5 = 96 };
    double *h = calloc(N5 * N5, sizeof(double));
    for (int i = 0; i < N5; i++) h[i * N5 + i] = 1;
    o.damp = 0.01;
    CHECK_OK(sm_gptq_prepare(h, N5, &o, &p));
    q = gguf_opts(SM_TYPE_Q6_K);
    CHECK_FAILS_WITH(sm_gptq_quantize(p, g_w, 1, &q, &res), "multiple of the q6_K block size");
    sm_gptq_hinv_free(p);
    free(h);
}

void run_tests(void) {
    g_x = make_inputs(NT, NC, 1);
    g_w = make_weight(NR, NC, 2);
    sm_hessian *h = sm_hessian_new(NC);
    if (sm_hessian_add(h, g_x, NT, NC)) abort();
    g_h = malloc(sizeof(double) * NC * NC);
    memcpy(g_h, sm_hessian_matrix(h), sizeof(double) * NC * NC);
    sm_hessian_free(h);
    fprintf(stderr, "cpu isa: %s\n", sm_isa_name(sm_cpu_isa()));
    TEST(hessian_accumulator);
    TEST(gemm_kernels);
    TEST(inverse_cholesky);
    TEST(beats_rtn);
    TEST(equals_column_by_column);
    TEST(refit_sweeps);
    TEST(threads_and_isas);
    TEST(gguf_bytes_decode_to_what);
    TEST(int_outputs_consistent);
    TEST(dead_columns_and_singular);
    TEST(refusals);
    free(g_x);
    free(g_w);
    free(g_h);
}
