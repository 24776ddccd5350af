/* progress.c - a one-line progress bar on a terminal; silent when piped or quiet. */
#include "core.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

double sm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int sm_num_threads(void) {
    const char *e = getenv("SMELT_THREADS");
    if (e && atoi(e) > 0) return atoi(e) < SM_MAX_THREADS ? atoi(e) : SM_MAX_THREADS;
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void draw(sm_progress *p, bool final) {
    double el = sm_now() - p->t_start;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (frac > 1) frac = 1;
    int width = 30, fill = (int)(frac * width);
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "\r%-12s [%s] %5.1f%%  %6.1fs%s", p->label, bar, 100.0 * frac, el, final ? "\n" : "");
    fflush(stderr);
}

void sm_progress_begin(sm_progress *p, const char *label, uint64_t total, bool quiet) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->t_start = p->t_last = sm_now();
    p->enabled = !quiet && isatty(2) && !getenv("SMELT_NO_PROGRESS");
    if (p->enabled) draw(p, false);
}

void sm_progress_update(sm_progress *p, uint64_t done) {
    p->done = done;
    if (!p->enabled) return;
    double t = sm_now();
    if (t - p->t_last < 0.1) return;
    p->t_last = t;
    draw(p, false);
}

void sm_progress_end(sm_progress *p) {
    if (!p->enabled) return;
    p->done = p->total;
    draw(p, true);
    p->enabled = false;
}
