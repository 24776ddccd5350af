/* bench_codecs.c - throughput of the quantize codecs (MB/s of f32 input), for
 * scripts/bench_codecs.sh. Not a test: timings depend on the machine.
 *
 * usage: bench_codecs [-t threads] [-r rows] [-c cols] [-s seconds] [type...]
 * Input: rows x cols gaussian-like weights (scale 0.02); importance weights in (0, 1].
 * Each type is timed without and (where the codec reads them) with importance weights. */
#include "core/core.h"
#include "kernels/kernels.h"
#include "quantize/quantize.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float unif(uint64_t *s) { return (float)((next(s) >> 40) + 1) * 0x1p-24f; }

/* Best of repeated runs until `seconds` have passed (at least 2 runs). */
static double time_one(sm_type t, const float *x, void *out, int64_t rows, int64_t cols, const float *w,
                       double seconds) {
    double best = 1e30, t_end = sm_now() + seconds;
    for (int k = 0; k < 2 || sm_now() < t_end; k++) {
        double t0 = sm_now();
        if (!sm_quantize_rows(t, x, out, rows, cols, w)) {
            fprintf(stderr, "bench_codecs: %s\n", sm_last_error());
            exit(1);
        }
        double dt = sm_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(int argc, char **argv) {
    int threads = 1;
    int64_t rows = 256, cols = 4096;
    double seconds = 1.0;
    const char *types[64];
    int ntypes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) rows = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) cols = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (ntypes < 64) types[ntypes++] = argv[i];
    }
    if (!ntypes) {
        static const char *all[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K",
                                    "q4_K", "q5_K", "q6_K", "iq4_nl", "iq4_xs", "f16", "bf16"};
        ntypes = (int)(sizeof all / sizeof all[0]);
        memcpy(types, all, sizeof all);
    }
    if (threads < 1 || rows < 1 || cols < 256 || cols % 256) {
        fprintf(stderr, "bench_codecs: need threads >= 1, rows >= 1, cols a multiple of 256\n");
        return 2;
    }
    omp_set_num_threads(threads);
    float *x = malloc(sizeof(float) * (size_t)(rows * cols)), *w = malloc(sizeof(float) * (size_t)cols);
    void *out = malloc((size_t)(rows * cols) * 4);
    if (!x || !w || !out) return 1;
    uint64_t s = 1;
    for (int64_t i = 0; i < rows * cols; i++) {
        int64_t acc = 0;
        for (int k = 0; k < 12; k++) acc += (int64_t)(next(&s) >> 40);
        x[i] = 0.02f * (float)(2 * acc - 12 * ((INT64_C(1) << 24) - 1)) * 0x1p-25f;
    }
    for (int64_t j = 0; j < cols; j++) w[j] = unif(&s);
    const double mb = (double)(rows * cols) * 4 / 1e6;
    printf("isa %s, %d thread(s), %lld x %lld f32 (%.1f MB)\n", sm_isa_name(sm_cpu_isa()), threads, (long long)rows,
           (long long)cols, mb);
    printf("%-8s %14s %14s\n", "type", "MB/s", "MB/s imatrix");
    for (int k = 0; k < ntypes; k++) {
        sm_type t = sm_type_from_name(types[k]);
        if (!sm_quantize_supported(t)) {
            fprintf(stderr, "bench_codecs: cannot quantize to %s\n", types[k]);
            return 2;
        }
        double plain = mb / time_one(t, x, out, rows, cols, NULL, seconds);
        const sm_type_info *ti = sm_type_get(t);
        if (ti->quantized && t != SM_TYPE_Q8_0)
            printf("%-8s %14.1f %14.1f\n", ti->name, plain, mb / time_one(t, x, out, rows, cols, w, seconds));
        else
            printf("%-8s %14.1f %14s\n", ti->name, plain, "-");
        fflush(stdout);
    }
    free(x);
    free(w);
    free(out);
    return 0;
}
