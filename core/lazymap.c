/* lazymap.c - mappings filled on demand by a SIGSEGV handler (see lazymap.h).
 *
 * Invariants (under g_lock): a page is readable only when every unit overlapping it is resident;
 * a resident unit's bytes in the memfd are exactly what its fill produced. Filling writes through
 * pwrite (never through the mapping), so no reader can see a page half written: a page becomes
 * readable (mprotect) only after all of its units are complete and checked by their fill. */
#include "core/lazymap.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_MAPS 64
#define DEFAULT_BUDGET ((uint64_t)256 << 20)

typedef struct lazymap {
    uint8_t *data;
    size_t mapped; /* size rounded up to pages */
    uint64_t size;
    int fd;
    char *path;
    sm_lazy_unit *units;
    size_t n_units;
    uint64_t *seq;     /* per unit: 0 when not resident, else its fill's sequence number */
    uint8_t *readable; /* per page */
    sm_lazy_fill_fn fill;
    void *ctx;
    void (*free_ctx)(void *ctx);
    uint64_t budget, resident, next_seq, fills;
    bool ready;
} lazymap;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static lazymap *volatile g_maps[MAX_MAPS];
static volatile sig_atomic_t g_n_open;
static struct sigaction g_old;
static bool g_installed;
static size_t g_page;

static __thread uintptr_t t_last_addr;
static __thread int t_repeats; /* faults in a row at t_last_addr on a page already readable */

static size_t page_size(void) {
    if (!g_page) {
        const long ps = sysconf(_SC_PAGESIZE);
        g_page = ps > 0 ? (size_t)ps : 4096;
    }
    return g_page;
}

/* ---- units and pages ---- */

/* the first unit ending after `at` */
static size_t first_unit_after(const lazymap *lm, uint64_t at) {
    size_t lo = 0, hi = lm->n_units;
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (lm->units[mid].off + lm->units[mid].len <= at) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool page_complete(const lazymap *lm, size_t pg) {
    const uint64_t lo = (uint64_t)pg * page_size(), hi = lo + page_size();
    for (size_t i = first_unit_after(lm, lo); i < lm->n_units && lm->units[i].off < hi; i++)
        if (!lm->seq[i]) return false;
    return true;
}

static void protect(lazymap *lm, size_t pg0, size_t pg1, int prot) {
    if (pg1 > pg0) mprotect(lm->data + pg0 * page_size(), (pg1 - pg0) * page_size(), prot);
}

/* the pages of [lo, hi) */
static void page_span(const lazymap *lm, uint64_t lo, uint64_t hi, size_t *pg0, size_t *pg1) {
    const size_t ps = page_size();
    *pg0 = (size_t)(lo / ps);
    *pg1 = (size_t)((hi + ps - 1) / ps);
    if (*pg1 > lm->mapped / ps) *pg1 = lm->mapped / ps;
}

/* make readable every page of [lo, hi) whose units are all resident (runs in one mprotect each) */
static void open_pages(lazymap *lm, uint64_t lo, uint64_t hi) {
    size_t pg0, pg1, run = SIZE_MAX;
    page_span(lm, lo, hi, &pg0, &pg1);
    for (size_t p = pg0; p <= pg1; p++) {
        const bool ok = p < pg1 && !lm->readable[p] && page_complete(lm, p);
        if (ok) {
            lm->readable[p] = 1;
            if (run == SIZE_MAX) run = p;
        } else if (run != SIZE_MAX) {
            protect(lm, run, p, PROT_READ);
            run = SIZE_MAX;
        }
    }
}

static void evict(lazymap *lm, size_t i) {
    const sm_lazy_unit *u = &lm->units[i];
    const size_t ps = page_size();
    size_t pg0, pg1;
    page_span(lm, u->off, u->off + u->len, &pg0, &pg1);
    protect(lm, pg0, pg1, PROT_NONE);
    memset(lm->readable + pg0, 0, pg1 - pg0);
    /* free the pages that hold this unit's bytes only (the edges may hold a neighbour's) */
    const uint64_t a = (u->off + ps - 1) / ps * ps, b = (u->off + u->len) / ps * ps;
    if (b > a) fallocate(lm->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a));
    lm->seq[i] = 0;
    lm->resident -= u->len;
}

typedef struct put_ctx {
    lazymap *lm;
    const sm_lazy_unit *unit; /* NULL: static bytes */
} put_ctx;

static int put(void *ctx, uint64_t off, const void *p, size_t n) {
    const put_ctx *c = ctx;
    const uint64_t lo = c->unit ? c->unit->off : 0, hi = c->unit ? c->unit->off + c->unit->len : c->lm->size;
    if (off < lo || off > hi || n > hi - off)
        return sm_error("%s: internal error: %zu bytes at offset %llu lie outside the range being filled", c->lm->path,
                        n, (unsigned long long)off);
    const uint8_t *b = p;
    while (n) {
        const ssize_t w = pwrite(c->lm->fd, b, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return sm_error("%s: cannot keep the decoded bytes in memory: %s", c->lm->path, strerror(errno));
        b += w, off += (uint64_t)w, n -= (size_t)w;
    }
    return 0;
}

/* fill unit i, first dropping the oldest units (but none of [keep0, keep1)) beyond the budget */
static int fill_unit(lazymap *lm, size_t i, size_t keep0, size_t keep1) {
    while (lm->resident + lm->units[i].len > lm->budget) {
        size_t old = SIZE_MAX;
        for (size_t k = 0; k < lm->n_units; k++)
            if (lm->seq[k] && (k < keep0 || k >= keep1) && (old == SIZE_MAX || lm->seq[k] < lm->seq[old])) old = k;
        if (old == SIZE_MAX) break;
        evict(lm, old);
    }
    put_ctx pc = {lm, &lm->units[i]};
    if (lm->fill(lm->ctx, i, put, &pc)) return -1;
    lm->seq[i] = ++lm->next_seq;
    lm->resident += lm->units[i].len;
    lm->fills++;
    return 0;
}

/* the fault at page pg: every unit overlapping it, then the pages they make complete */
static int fault_in(lazymap *lm, size_t pg) {
    const uint64_t lo = (uint64_t)pg * page_size(), hi = lo + page_size();
    const size_t i0 = first_unit_after(lm, lo);
    size_t i1 = i0;
    while (i1 < lm->n_units && lm->units[i1].off < hi) i1++;
    for (size_t i = i0; i < i1; i++)
        if (!lm->seq[i] && fill_unit(lm, i, i0, i1)) return -1;
    uint64_t a = lo, b = hi;
    if (i1 > i0) {
        if (lm->units[i0].off < a) a = lm->units[i0].off;
        if (lm->units[i1 - 1].off + lm->units[i1 - 1].len > b) b = lm->units[i1 - 1].off + lm->units[i1 - 1].len;
    }
    open_pages(lm, a, b);
    return 0;
}

/* ---- the handler ---- */

static lazymap *find_map(uintptr_t a) {
    for (int i = 0; i < MAX_MAPS; i++) {
        lazymap *lm = g_maps[i];
        if (lm && a >= (uintptr_t)lm->data && a < (uintptr_t)lm->data + lm->mapped) return lm;
    }
    return NULL;
}

static void chain(int sig, siginfo_t *si, void *uc) {
    if ((g_old.sa_flags & SA_SIGINFO) && g_old.sa_sigaction) {
        g_old.sa_sigaction(sig, si, uc);
    } else if (!(g_old.sa_flags & SA_SIGINFO) && g_old.sa_handler != SIG_DFL && g_old.sa_handler != SIG_IGN) {
        g_old.sa_handler(sig);
    } else { /* the default action: the faulting access runs again and ends the process */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
    }
}

static void say(const char *s) {
    size_t n = strlen(s);
    while (n) {
        const ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w, n -= (size_t)w;
    }
}

/* a write access (a bug in the reader: the mapping is read-only), where the CPU says so */
static bool write_fault(const void *uc) {
#if defined(__x86_64__) && defined(REG_ERR)
    return (((const ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR] & 2) != 0;
#else
    (void)uc;
    return false;
#endif
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
    const int saved = errno;
    const uintptr_t a = (uintptr_t)si->si_addr;
    pthread_mutex_lock(&g_lock);
    lazymap *lm = g_n_open ? find_map(a) : NULL;
    int rc = 0;
    bool ours = lm && lm->ready && !write_fault(uc);
    if (ours) {
        const size_t pg = (size_t)((a - (uintptr_t)lm->data) / page_size());
        if (!lm->readable[pg]) {
            t_repeats = 0;
            rc = fault_in(lm, pg);
        } else { /* filled by another thread meanwhile; faulting on and on: not a read */
            t_repeats = a == t_last_addr ? t_repeats + 1 : 1;
            if (t_repeats > 1000) ours = false;
        }
        t_last_addr = a;
    }
    pthread_mutex_unlock(&g_lock);
    if (rc) {
        say("smelt: error: ");
        say(sm_last_error());
        say("\n");
        sm_tmp_remove_all();
        _exit(1);
    }
    if (!ours) chain(sig, si, uc);
    errno = saved;
}

static int install(void) {
    if (g_installed) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &g_old) != 0) return sm_error("cannot install the SIGSEGV handler: %s", strerror(errno));
    g_installed = true;
    return 0;
}

/* ---- life cycle ---- */

static void lm_free(lazymap *lm) {
    if (!lm) return;
    if (lm->data) munmap(lm->data, lm->mapped);
    if (lm->fd >= 0) close(lm->fd);
    if (lm->free_ctx) lm->free_ctx(lm->ctx);
    free(lm->path);
    free(lm->units);
    free(lm->seq);
    free(lm->readable);
    free(lm);
}

int sm_lazymap_open(sm_mmap *m, const sm_lazy_spec *s) {
    memset(m, 0, sizeof *m);
    const size_t ps = page_size();
    lazymap *lm = calloc(1, sizeof *lm);
    if (!lm) {
        if (s->free_ctx) s->free_ctx(s->ctx);
        return sm_error("%s: out of memory", s->path);
    }
    lm->fd = -1;
    lm->fill = s->fill, lm->ctx = s->ctx, lm->free_ctx = s->free_ctx;
    lm->size = s->size;
    lm->mapped = (size_t)((s->size + ps - 1) / ps * ps);
    lm->n_units = s->n_units;
    lm->path = strdup(s->path);
    lm->units = malloc(sizeof *lm->units * (s->n_units ? s->n_units : 1));
    lm->seq = calloc(s->n_units ? s->n_units : 1, sizeof *lm->seq);
    lm->readable = calloc(lm->mapped / ps + 1, 1);
    int rc = !lm->path || !lm->units || !lm->seq || !lm->readable ? sm_error("%s: out of memory", s->path) : 0;
    uint64_t largest = 0;
    for (size_t i = 0; i < s->n_units && !rc; i++) {
        const sm_lazy_unit *u = &s->units[i];
        if (u->len > s->size || u->off > s->size - u->len || (i && u->off < s->units[i - 1].off + s->units[i - 1].len))
            rc = sm_error("%s: internal error: unit %zu lies outside the file or overlaps the one before", s->path, i);
        if (u->len > largest) largest = u->len;
    }
    if (!rc) {
        memcpy(lm->units, s->units, sizeof *lm->units * s->n_units);
        lm->budget = s->budget;
        const char *e = getenv("SMELT_DECODE_CACHE_MB");
        if (!lm->budget) lm->budget = e && *e ? (uint64_t)strtoull(e, NULL, 10) << 20 : DEFAULT_BUDGET;
        if (lm->budget < 2 * largest + 2 * ps) lm->budget = 2 * largest + 2 * ps; /* one access may span two units */
    }
    if (!rc && (lm->fd = memfd_create("smelt-decoded", MFD_CLOEXEC)) < 0)
        rc = sm_error("%s: cannot create the in-memory file for decoded bytes: %s", s->path, strerror(errno));
    if (!rc && ftruncate(lm->fd, (off_t)lm->mapped) != 0)
        rc = sm_error("%s: cannot size the in-memory file for decoded bytes: %s", s->path, strerror(errno));
    if (!rc && lm->mapped) {
        lm->data = mmap(NULL, lm->mapped, PROT_NONE, MAP_SHARED, lm->fd, 0);
        if (lm->data == MAP_FAILED) {
            lm->data = NULL;
            rc = sm_error("%s: cannot map %llu bytes: %s", s->path, (unsigned long long)s->size, strerror(errno));
        }
    }
    pthread_mutex_lock(&g_lock);
    if (!rc) rc = install();
    int slot = -1;
    for (int i = 0; i < MAX_MAPS && !rc && slot < 0; i++)
        if (!g_maps[i]) slot = i;
    if (!rc && slot < 0) rc = sm_error("%s: more than %d compressed files open at once", s->path, MAX_MAPS);
    if (!rc) {
        g_maps[slot] = lm;
        g_n_open++;
    }
    pthread_mutex_unlock(&g_lock);
    if (rc) {
        lm_free(lm);
        return -1;
    }
    m->data = lm->data;
    m->size = (size_t)s->size;
    m->path = lm->path;
    m->lazy = lm;
    return 0;
}

int sm_lazymap_put(sm_mmap *m, uint64_t off, const void *p, size_t n) {
    put_ctx pc = {m->lazy, NULL};
    return put(&pc, off, p, n);
}

int sm_lazymap_ready(sm_mmap *m) {
    lazymap *lm = m->lazy;
    pthread_mutex_lock(&g_lock);
    lm->ready = true;
    open_pages(lm, 0, lm->size);
    pthread_mutex_unlock(&g_lock);
    return 0;
}

void sm_lazymap_close(sm_mmap *m) {
    lazymap *lm = m->lazy;
    pthread_mutex_lock(&g_lock);
    for (int i = 0; i < MAX_MAPS; i++)
        if (g_maps[i] == lm) {
            g_maps[i] = NULL;
            g_n_open--;
        }
    pthread_mutex_unlock(&g_lock);
    lm_free(lm);
    memset(m, 0, sizeof *m);
}

void sm_lazymap_release(const sm_mmap *m, const void *p, uint64_t n) {
    lazymap *lm = m->lazy;
    const uintptr_t base = (uintptr_t)lm->data;
    if ((uintptr_t)p < base || (uintptr_t)p - base >= lm->size) return;
    const uint64_t lo = (uint64_t)((uintptr_t)p - base), hi = n > lm->size - lo ? lm->size : lo + n;
    pthread_mutex_lock(&g_lock);
    for (size_t i = first_unit_after(lm, lo); i < lm->n_units && lm->units[i].off < hi; i++)
        if (lm->seq[i] && lm->units[i].off >= lo && lm->units[i].off + lm->units[i].len <= hi) evict(lm, i);
    pthread_mutex_unlock(&g_lock);
}

bool sm_lazymap_overlaps(const void *p, size_t n) {
    if (!g_n_open || !n) return false;
    const uintptr_t a = (uintptr_t)p, b = a + n;
    for (int i = 0; i < MAX_MAPS; i++) {
        const lazymap *lm = g_maps[i];
        if (lm && a < (uintptr_t)lm->data + lm->mapped && b > (uintptr_t)lm->data) return true;
    }
    return false;
}

uint64_t sm_lazymap_fills(const sm_mmap *m) { return m->lazy ? ((const lazymap *)m->lazy)->fills : 0; }
uint64_t sm_lazymap_resident(const sm_mmap *m) { return m->lazy ? ((const lazymap *)m->lazy)->resident : 0; }
