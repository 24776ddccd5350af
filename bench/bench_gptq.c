/* bench_gptq.c - speed of GPTQ's parts on synthetic data, next to this machine's measured
 * double-precision GEMM peak. Built by CMake (not a ctest); driven by scripts/bench_gptq.sh.
 *
 *   bench_gptq peak
 *       the micro-kernel in cache (1 thread and all threads) and our blocked DGEMM on
 *       2048 x 2048 x 2048, in GFLOP/s
 *   bench_gptq linear OUT IN SAMPLES [TARGET_SAMPLES [quick]]
 *       a Linear [OUT, IN]: the Hessian from SAMPLES x 2048 tokens (time extrapolated
 *       linearly to TARGET_SAMPLES, default 128), the factorization of H^-1, GPTQ int4 g128
 *       and GPTQ Q4_K (without and with the loss report; "quick": int4 without it only)
 * Threads: SMELT_THREADS (default: all). BENCH_DEVICE=cuda: the Hessian, the factorization and
 * GPTQ's updates on the GPU (the peak then includes cuBLAS DGEMM's measured rate). */
#include "quantize/gptq_internal.h"

#include "kernels/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define SEQ 2048

static sm_device g_dev = SM_DEVICE_CPU;

static uint64_t g_s = 12345;
static double unif(void) {
    g_s = g_s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_s >> 11) * 0x1p-53;
}

/* Process CPU seconds (all threads): on a shared machine, GFLOP per CPU-second shows what a
 * core delivers when it runs, whatever else competes for it. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "12.3 GFLOP/s (45.6 per CPU-second)" for flops done in wall seconds dt and CPU seconds dc. */
static const char *rate(double flops, double dt, double dc) {
    static char buf[4][96];
    static int k;
    char *b = buf[k++ & 3];
    snprintf(b, 96, "%8.1f GFLOP/s (%6.1f per CPU-second)", flops / dt * 1e-9, flops / dc * 1e-9);
    return b;
}

static double peak_rss_gib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0);
}

static int peak(void) {
    const gq_kernels *kr = gq_kernels_get();
    const int kc = 256, reps = 4000;
    const int nth = sm_num_threads();
    printf("isa %s, micro-kernel %dx%d, %d threads\n", kr->name, kr->mr, kr->nr, nth);
    for (int th = 1; th <= nth; th = th == nth ? nth + 1 : nth) {
        double t0 = sm_now(), c0 = cpu_now();
#pragma omp parallel num_threads(th)
        {
            double *ap = aligned_alloc(64, sizeof(double) * 8 * 256), *bp = aligned_alloc(64, sizeof(double) * 256 * 24);
            double c[8 * 24];
            for (int i = 0; i < 8 * 256; i++) ap[i] = 1e-3 * (i % 7);
            for (int i = 0; i < 256 * 24; i++) bp[i] = 1e-3 * (i % 5);
            memset(c, 0, sizeof c);
            for (int r = 0; r < reps; r++) kr->tile(kc, ap, bp, c, kr->nr);
            if (c[0] == 12345.678) printf(" ");
            free(ap);
            free(bp);
        }
        const double dt = sm_now() - t0, dc = cpu_now() - c0;
        printf("micro-kernel peak, %2d thread(s): %s\n", th, rate(2.0 * kr->mr * kr->nr * kc * (double)reps * th, dt, dc));
    }
    const int64_t n = 2048;
    double *a = malloc(sizeof(double) * n * n), *b = malloc(sizeof(double) * n * n), *c = calloc((size_t)(n * n), sizeof(double));
    for (int64_t i = 0; i < n * n; i++) a[i] = unif() - 0.5, b[i] = unif() - 0.5;
    gq_gemm_args g = {.m = n, .n = n, .k = n, .sign = 1, .a = a, .a_rs = n, .a_cs = 1, .b = b, .b_rs = n, .b_cs = 1,
                      .c = c, .ldc = n, .parallel = true};
    double dt = 1e30, dc = 1e30; /* best of 5: the machine may be shared */
    for (int rep = 0; rep < 5; rep++) {
        double t0 = sm_now(), c0 = cpu_now();
        gq_gemm(&g);
        const double t = sm_now() - t0, c1 = cpu_now() - c0;
        if (t < dt) dt = t;
        if (c1 < dc) dc = c1;
    }
    printf("DGEMM 2048^3 (ours, %d threads, best of 5): %s (%.3f s)\n", nth, rate(2.0 * n * n * n, dt, dc), dt);
    if (g_dev == SM_DEVICE_CUDA) {
        double gf = 0;
        if (sm_cuda_dgemm_rate(8192, 5, &gf)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
        printf("DGEMM 8192^3 on the GPU (cuBLAS): %.1f GFLOP/s\n", gf);
    }
    free(a);
    free(b);
    free(c);
    return 0;
}

/* One sample of SEQ synthetic activations [SEQ, in]: 64 shared latent factors per token (strong
 * correlations between columns), noise, column scales over two orders of magnitude. */
static void make_sample(float *x, int64_t in, const float *colscale) {
    float z[64];
    for (int t = 0; t < SEQ; t++) {
        for (int k = 0; k < 64; k++) z[k] = (float)(unif() - 0.5);
        for (int64_t j = 0; j < in; j++)
            x[t * in + j] = colscale[j] * (z[j & 63] + z[(j * 7 + 3) & 63] * 0.5f + (float)(unif() - 0.5) * 0.3f);
    }
}

static int linear(int64_t out, int64_t in, int samples, int target, bool quick) {
    printf("\nLinear [%lld, %lld]: Hessian from %d x %d tokens (%s; %d threads, isa %s)\n", (long long)out,
           (long long)in, samples, SEQ, g_dev == SM_DEVICE_CUDA ? "GPU" : "CPU", sm_num_threads(),
           gq_kernels_get()->name);
    float *colscale = malloc(sizeof(float) * (size_t)in), *x = malloc(sizeof(float) * (size_t)(SEQ * in));
    for (int64_t j = 0; j < in; j++) colscale[j] = (float)exp(3.0 * (unif() - 0.5));
    sm_hessian *h = sm_hessian_new_on(in, g_dev);
    if (!h || !x) return fprintf(stderr, "%s\n", sm_last_error()), 1;
    double th = 0, ch = 0;
    for (int s = 0; s < samples; s++) {
        make_sample(x, in, colscale);
        double t0 = sm_now(), c0 = cpu_now();
        if (sm_hessian_add(h, x, SEQ, in)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
        th += sm_now() - t0;
        ch += cpu_now() - c0;
    }
    free(x);
    double t0 = sm_now(), c0 = cpu_now();
    const double *H = sm_hessian_matrix(h); /* the GPU's last DSYRK finishes here */
    if (!H) return fprintf(stderr, "%s\n", sm_last_error()), 1;
    th += sm_now() - t0;
    ch += cpu_now() - c0;
    const double tok = (double)samples * SEQ;
    const double hflops = (double)in * (double)(in + 1) * tok; /* 2 flops x in(in+1)/2 x tokens */
    printf("  hessian      %8.2f s  %s  (-> %d x %d = %d tokens: %.1f s extrapolated)\n", th, rate(hflops, th, ch),
           target, SEQ, target * SEQ, th * target / samples);

    float *w = malloc(sizeof(float) * (size_t)(out * in));
    for (int64_t i = 0; i < out * in; i++) w[i] = (float)(0.04 * (unif() + unif() + unif() - 1.5));
    sm_gptq_opts o;
    sm_gptq_opts_default(&o);
    o.device = g_dev;
    sm_gptq_hinv *p;
    t0 = sm_now(), c0 = cpu_now();
    if (sm_gptq_prepare(H, in, &o, &p)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
    double tp = sm_now() - t0, cp = cpu_now() - c0;
    const double n3 = (double)in * in * in;
    printf("  prepare      %8.2f s  %s  (Cholesky + triangular inverse, 2/3 n^3)\n", tp, rate(2.0 / 3.0 * n3, tp, cp));

    const double gflops = (double)out * in * (in + o.block_size); /* trailing GEMM + in-batch updates */
    const struct { const char *name; sm_type t; } grids[] = {{"int4 g128", SM_TYPE_INVALID}, {"Q4_K", SM_TYPE_Q4_K}};
    for (int gi = 0; gi < (quick ? 1 : 2); gi++) {
        o.gguf_type = grids[gi].t;
        sm_gptq_result r;
        o.skip_loss = true;
        t0 = sm_now();
        c0 = cpu_now();
        if (sm_gptq_quantize(p, w, out, &o, &r)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
        double tq = sm_now() - t0, cq = cpu_now() - c0;
        printf("  gptq %-9s %6.2f s  %s  (column loop %.2f s; the rest: copies, packing)\n", grids[gi].name, tq,
               rate(gflops, tq, cq), r.seconds);
        sm_gptq_result_free(&r);
        if (quick) break;
        o.skip_loss = false;
        t0 = sm_now();
        if (sm_gptq_quantize(p, w, out, &o, &r)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
        tq = sm_now() - t0;
        printf("  + loss report %6.2f s  (RTN pass + 2 x tr(D H D^T)): loss rtn %.6g, gptq %.6g (x%.2f better)\n", tq,
               r.loss_rtn, r.loss_gptq, r.loss_rtn / r.loss_gptq);
        sm_gptq_result_free(&r);
    }
    printf("  peak RSS %.2f GiB\n", peak_rss_gib());
    sm_gptq_hinv_free(p);
    sm_hessian_free(h);
    free(w);
    free(colscale);
    return 0;
}

int main(int argc, char **argv) {
    const char *dev = getenv("BENCH_DEVICE");
    if (dev && !strcmp(dev, "cuda")) {
        const char *why = "";
        if (!sm_cuda_available(&why)) return fprintf(stderr, "BENCH_DEVICE=cuda: %s\n", why), 1;
        g_dev = SM_DEVICE_CUDA;
    }
    if (argc >= 2 && !strcmp(argv[1], "peak")) return peak();
    if (argc >= 5 && !strcmp(argv[1], "linear"))
        return linear(atoll(argv[2]), atoll(argv[3]), atoi(argv[4]), argc >= 6 ? atoi(argv[5]) : 128,
                      argc >= 7 && !strcmp(argv[6], "quick"));
    fprintf(stderr, "usage: bench_gptq peak | linear OUT IN SAMPLES [TARGET_SAMPLES [quick]]\n");
    return 2;
}
