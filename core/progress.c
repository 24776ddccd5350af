/* progress.c - a one-line progress bar on a terminal; silent when piped or quiet. */
#include "core.h"

#include <stdarg.h>
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

/* "1m05s", "12.3s" */
static void fmt_time(double s, char *buf, size_t cap) {
    if (s >= 3600) snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%.1fs", s);
}

static void draw(sm_progress *p, bool final) {
    double el = sm_now() - p->t_start;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    if (frac > 1) frac = 1;
    int width = 30, fill = (int)(frac * width);
    char bar[64], t_el[32], t_eta[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fmt_time(el, t_el, sizeof t_el);
    if (final) snprintf(t_eta, sizeof t_eta, "done");
    else if (frac > 0) fmt_time(el * (1 - frac) / frac, t_eta, sizeof t_eta);
    else snprintf(t_eta, sizeof t_eta, "?");
    fprintf(stderr, "\r%-12s [%s] %5.1f%%  %7s  ETA %-7s%s%s\033[K%s", p->label, bar, 100.0 * frac, t_el, t_eta,
            p->note[0] ? "  " : "", p->note, final ? "\n" : "");
    fflush(stderr);
}

void sm_progress_note(sm_progress *p, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->note, sizeof p->note, fmt, ap);
    va_end(ap);
    if (!p->enabled) return;
    p->t_last = sm_now();
    draw(p, false);
}

void sm_progress_clear(sm_progress *p) {
    if (!p->enabled) return;
    fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

void sm_progress_begin(sm_progress *p, const char *label, uint64_t total, bool quiet) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->note[0] = 0;
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
