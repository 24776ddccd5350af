/* bench_matmul.c - speed of sm_matmul (Y = W·X) per weight type, for batch prompt processing
 * (n_tok tokens) and generation (1 token), timed in CPU seconds of the calling thread (so a
 * machine shared with other work still gives comparable numbers; single thread).
 * Not a test: timings depend on the machine.
 *
 * usage: bench_matmul [-r rows] [-c cols] [-n tokens] [-s seconds] [type...]
 * Reports GFLOP/s (2 flops per multiply-add) at n_tok and at 1 token, best of repeated runs. */
#include "core/core.h"
#include "kernels/kernels.h"
#include "quantize/quantize.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float sym(uint64_t *s) { return (float)((double)(next(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

static double time_one(sm_type t, const void *w, int64_t rows, int64_t cols, const float *x, int64_t n, float *y,
                       double seconds) {
    double best = 1e30, t_end = cpu_now() + seconds;
    for (int k = 0; k < 2 || cpu_now() < t_end; k++) {
        const double t0 = cpu_now();
        if (sm_matmul_serial(t, w, sm_type_row_bytes(t, cols), rows, cols, x, n, n, y, n)) {
            fprintf(stderr, "bench_matmul: %s\n", sm_last_error());
            exit(1);
        }
        const double dt = cpu_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    int64_t rows = 2048, cols = 2048, n = 512;
    double seconds = 1.0;
    const char *types[32];
    int ntypes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-r") && i + 1 < argc) rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) cols = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (ntypes < 32) types[ntypes++] = argv[i];
    }
    if (!ntypes) {
        static const char *all[] = {"f16", "q8_0", "q4_K", "q6_K", "q4_0"};
        ntypes = (int)(sizeof all / sizeof all[0]);
        memcpy(types, all, sizeof all);
    }
    if (rows < 1 || n < 1 || cols < 256 || cols % 256) {
        fprintf(stderr, "bench_matmul: need rows >= 1, tokens >= 1, cols a multiple of 256\n");
        return 2;
    }
    float *wf = malloc(sizeof(float) * (size_t)(rows * cols)), *x = malloc(sizeof(float) * (size_t)(cols * n));
    float *y = malloc(sizeof(float) * (size_t)(rows * n));
    void *w = malloc((size_t)(rows * cols) * 4);
    if (!wf || !x || !y || !w) return 1;
    uint64_t s = 1;
    for (int64_t i = 0; i < rows * cols; i++) wf[i] = 0.02f * sym(&s);
    for (int64_t i = 0; i < cols * n; i++) x[i] = sym(&s);
    printf("isa %s, 1 thread, W %lld x %lld, %lld tokens (thread CPU time, best of runs)\n", sm_isa_name(sm_isa_active()),
           (long long)rows, (long long)cols, (long long)n);
    printf("%-8s %16s %16s\n", "type", "GFLOP/s batch", "GFLOP/s 1 tok");
    for (int k = 0; k < ntypes; k++) {
        const sm_type t = sm_type_from_name(types[k]);
        if (!sm_quantize_supported(t) || !sm_matmul_supported(t, cols)) {
            fprintf(stderr, "bench_matmul: no type %s\n", types[k]);
            return 2;
        }
        if (!sm_quantize_rows(t, wf, w, rows, cols, NULL)) {
            fprintf(stderr, "bench_matmul: %s\n", sm_last_error());
            return 1;
        }
        const double fl = 2.0 * (double)rows * (double)cols;
        const double tb = time_one(t, w, rows, cols, x, n, y, seconds);
        const double t1 = time_one(t, w, rows, cols, x, 1, y, seconds);
        printf("%-8s %16.1f %16.2f\n", types[k], fl * (double)n / tb / 1e9, fl / t1 / 1e9);
    }
    free(wf), free(x), free(y), free(w);
    return 0;
}
