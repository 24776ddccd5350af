/* test_kernels.c - matrix products against a double-precision reference (on the values the
 * codecs' dequantizers give) for every ISA and storage type, odd shapes and strides, and
 * bit-identical results for any thread count; the vector math against libm. */
#include "testlib.h"

#include "kernels/kernels.h"
#include "quantize/quantize.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Weights of `type` for n_out x n_in random floats; *wf gets the values they represent. */
static void *make_weights(sm_type type, int64_t n_out, int64_t n_in, size_t stride, float **wf) {
    float *src = malloc(sizeof(float) * (size_t)(n_out * n_in));
    for (int64_t i = 0; i < n_out * n_in; i++) src[i] = frand();
    unsigned char *w = calloc((size_t)n_out, stride);
    *wf = malloc(sizeof(float) * (size_t)(n_out * n_in));
    for (int64_t r = 0; r < n_out; r++) {
        unsigned char *row = w + (size_t)r * stride;
        if (type == SM_TYPE_F32 || type == SM_TYPE_F16 || type == SM_TYPE_BF16)
            sm_f32_to_plain(type, src + r * n_in, row, n_in);
        else
            CHECK(sm_quantize_rows(type, src + r * n_in, row, 1, n_in, NULL) == sm_type_row_bytes(type, n_in));
        CHECK_OK(sm_row_to_f32(type, row, *wf + r * n_in, n_in));
    }
    free(src);
    return w;
}

static void check_product(sm_type type, int64_t n_out, int64_t n_in, int64_t n_tok, size_t pad) {
    size_t stride = (size_t)sm_type_row_bytes(type, n_in) + pad;
    float *wf;
    void *w = make_weights(type, n_out, n_in, stride, &wf);
    /* feature-major: x[k*ldx + t], y[r*ldy + t] */
    const int64_t ldx = n_tok + 3, ldy = n_tok + 5;
    float *x = malloc(sizeof(float) * (size_t)(n_in * ldx));
    for (int64_t i = 0; i < n_in * ldx; i++) x[i] = frand();
    float *y = malloc(sizeof(float) * (size_t)(n_out * ldy));
    float *y1 = malloc(sizeof(float) * (size_t)(n_out * ldy));
    for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
        sm_kernels_set_isa((sm_isa)isa);
        memset(y, 0xff, sizeof(float) * (size_t)(n_out * ldy));
        omp_set_num_threads(1);
        CHECK_OK(sm_matmul(type, w, stride, n_out, n_in, x, ldx, n_tok, y1, ldy));
        omp_set_num_threads(3);
        CHECK_OK(sm_matmul(type, w, stride, n_out, n_in, x, ldx, n_tok, y, ldy));
        double worst = 0;
        int same = 1;
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t r = 0; r < n_out; r++) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < n_in; k++) {
                    ref += (double)wf[r * n_in + k] * x[k * ldx + t];
                    mag += fabs((double)wf[r * n_in + k] * x[k * ldx + t]);
                }
                double e = fabs(y[r * ldy + t] - ref) / (mag + 1e-30);
                if (e > worst) worst = e;
                if (memcmp(&y[r * ldy + t], &y1[r * ldy + t], sizeof(float))) same = 0;
            }
        CHECK_MSG(worst < 1e-5, "%s %s %lldx%lld tok %lld: relative error %g", sm_type_name(type),
                  sm_isa_name((sm_isa)isa), (long long)n_out, (long long)n_in, (long long)n_tok, worst);
        CHECK_MSG(same, "%s %s: 1 vs 3 threads differ", sm_type_name(type), sm_isa_name((sm_isa)isa));
        /* the serial entry point gives the same bits */
        CHECK_OK(sm_matmul_serial(type, w, stride, n_out, n_in, x, ldx, n_tok, y, ldy));
        for (int64_t r = 0; r < n_out; r++) same &= !memcmp(y + r * ldy, y1 + r * ldy, sizeof(float) * (size_t)n_tok);
        CHECK_MSG(same, "%s %s: serial differs", sm_type_name(type), sm_isa_name((sm_isa)isa));
    }
    sm_kernels_set_isa(sm_cpu_isa());
    omp_set_num_threads(2);
    free(w);
    free(wf);
    free(x);
    free(y);
    free(y1);
}

static void plain_types(void) {
    const sm_type types[] = {SM_TYPE_F32, SM_TYPE_F16, SM_TYPE_BF16};
    const int64_t toks[] = {1, 3, 8, 67, 130};
    /* n_tok 67 and 130 leave partial panels for every ISA; 200 rows leave partial tiles */
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 5; j++) {
            check_product(types[i], 37, 100, toks[j], 0);
            check_product(types[i], 200, 300, toks[j], 6);
        }
    check_product(SM_TYPE_F32, 13, 1, 9, 2); /* odd: n_in 1, unaligned rows */
}

/* sm_matmul_many: stored outputs equal single products bit for bit; an accumulating one is
 * the old values plus the product; any thread count gives the same bits. */
static void many(void) {
    const int64_t n_in = 256, toks[2] = {5, 40};
    float *wf[3];
    const sm_type types[3] = {SM_TYPE_F32, SM_TYPE_Q8_0, SM_TYPE_BF16};
    const int64_t rows[3] = {13, 64, 7};
    void *w[3];
    for (int i = 0; i < 3; i++) w[i] = make_weights(types[i], rows[i], n_in, (size_t)sm_type_row_bytes(types[i], n_in), &wf[i]);
    for (int ti = 0; ti < 2; ti++) {
        const int64_t n = toks[ti];
        float *x = malloc(sizeof(float) * (size_t)(n_in * n)), *y[3], *single[3], *again = malloc(sizeof(float) * 64 * (size_t)n);
        for (int64_t i = 0; i < n_in * n; i++) x[i] = frand();
        sm_matmul_op ops[3];
        for (int i = 0; i < 3; i++) {
            y[i] = malloc(sizeof(float) * (size_t)(rows[i] * n));
            single[i] = malloc(sizeof(float) * (size_t)(rows[i] * n));
            for (int64_t j = 0; j < rows[i] * n; j++) y[i][j] = i == 1 ? 0.5f : NAN;
            CHECK_OK(sm_matmul(types[i], w[i], (size_t)sm_type_row_bytes(types[i], n_in), rows[i], n_in, x, n, n,
                               single[i], n));
            ops[i] = (sm_matmul_op){types[i], w[i], (size_t)sm_type_row_bytes(types[i], n_in), rows[i], y[i], n, i == 1};
        }
        omp_set_num_threads(3);
        CHECK_OK(sm_matmul_many(ops, 3, n_in, x, n, n));
        CHECK(!memcmp(y[0], single[0], sizeof(float) * (size_t)(rows[0] * n)));
        CHECK(!memcmp(y[2], single[2], sizeof(float) * (size_t)(rows[2] * n)));
        double worst = 0;
        for (int64_t j = 0; j < rows[1] * n; j++) worst = fmax(worst, fabs(y[1][j] - (0.5 + single[1][j])));
        CHECK_MSG(worst < 1e-4, "accumulate: %g", worst);
        /* one thread: the same bits */
        memcpy(again, y[1], sizeof(float) * 64 * (size_t)n);
        for (int64_t j = 0; j < rows[1] * n; j++) y[1][j] = 0.5f;
        omp_set_num_threads(1);
        CHECK_OK(sm_matmul_many(ops, 3, n_in, x, n, n));
        CHECK(!memcmp(again, y[1], sizeof(float) * 64 * (size_t)n));
        omp_set_num_threads(2);
        for (int i = 0; i < 3; i++) free(y[i]), free(single[i]);
        free(x);
        free(again);
    }
    for (int i = 0; i < 3; i++) free(w[i]), free(wf[i]);
}

/* sm_vec_exp and sm_vec_silu_mul against libm, every ISA, odd lengths (masked tails) */
static void vector_math(void) {
    enum { N = 1003 };
    float x[N], e[N], g[N], u[N];
    for (int i = 0; i < N; i++) {
        x[i] = i < 8 ? (float[]){0.0f, -0.0f, 1.0f, -87.0f, 88.0f, -30.5f, 1e-8f, -1e-8f}[i] : 90.0f * frand();
        u[i] = frand();
    }
    for (int isa = SM_ISA_SCALAR; isa <= (int)sm_cpu_isa(); isa++) {
        sm_kernels_set_isa((sm_isa)isa);
        memcpy(e, x, sizeof x);
        sm_vec_exp(e, N);
        memcpy(g, x, sizeof x);
        sm_vec_silu_mul(g, u, N);
        double worst_e = 0, worst_s = 0;
        for (int i = 0; i < N; i++) {
            const double want = exp((double)x[i]);
            if (want > 1e-37 && want < 1e38) worst_e = fmax(worst_e, fabs(e[i] / want - 1));
            const double ws = (double)x[i] / (1 + exp(-(double)x[i])) * u[i];
            worst_s = fmax(worst_s, fabs(g[i] - ws) / (fabs(ws) + 1e-30));
        }
        CHECK_MSG(worst_e < 5e-7, "%s exp: relative error %g", sm_isa_name((sm_isa)isa), worst_e);
        CHECK_MSG(worst_s < 1e-6, "%s silu: relative error %g", sm_isa_name((sm_isa)isa), worst_s);
    }
    sm_kernels_set_isa(sm_cpu_isa());
}

/* every block type the runtime multiplies with (rows of 2 super-blocks + odd shapes) */
static void block_types(void) {
    const sm_type types[] = {SM_TYPE_Q8_0, SM_TYPE_Q4_0, SM_TYPE_Q4_1, SM_TYPE_Q5_0, SM_TYPE_Q5_1, SM_TYPE_Q2_K,
                             SM_TYPE_Q3_K, SM_TYPE_Q4_K, SM_TYPE_Q5_K, SM_TYPE_Q6_K, SM_TYPE_IQ4_NL, SM_TYPE_IQ4_XS};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        CHECK(sm_matmul_supported(types[i], 512));
        check_product(types[i], 29, 512, 3, 0);
        check_product(types[i], 29, 768, 70, 2);
    }
    check_product(SM_TYPE_Q8_0, 7, 96, 9, 0); /* a partial feature block */
}

static void unsupported(void) {
    float x[4] = {0}, y[4];
    CHECK_FAILS_WITH(sm_matmul(SM_TYPE_I32, x, 16, 1, 4, x, 4, 1, y, 1), "not supported");
    CHECK(!sm_matmul_supported(SM_TYPE_Q4_K, 100));
    CHECK(!sm_matmul_supported(SM_TYPE_IQ2_XXS, 256));
}

void run_tests(void) {
    TEST(plain_types);
    TEST(block_types);
    TEST(many);
    TEST(vector_math);
    TEST(unsupported);
}
