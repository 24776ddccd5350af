/* lazymap.h - a read-only mapping whose bytes are produced on demand (a compressed .smelt read
 * as the file it holds, without decoding it first).
 *
 * The mapping is divided into units (byte ranges, e.g. tensors) and the bytes outside every
 * unit (static bytes, written once with sm_lazymap_put before sm_lazymap_ready). Its pages are
 * inaccessible until a unit is needed: the first read of a page faults, and the fault handler
 * (SIGSEGV, process-wide, chained to any earlier handler for other addresses) asks the owner's
 * fill function for every unit that overlaps the page, then makes the page readable. Units are
 * kept in anonymous memory (a memfd, never a file on disk) up to a budget; beyond it the unit
 * filled first is dropped (its pages become inaccessible and are freed) and produced again on
 * its next read. sm_mmap_release drops the units inside the released range.
 *
 * A fill that fails (damaged input) cannot be reported to the reader that faulted: the message
 * "smelt: <error>" is written to stderr, the registered output temporaries are removed, and the
 * process exits with status 1. Readers passing mapped bytes to a system call must copy them
 * first (the kernel does not fault them in): sm_outfile_write does. */
#ifndef SMELT_LAZYMAP_H
#define SMELT_LAZYMAP_H

#include "core/core.h"

typedef struct sm_lazy_unit {
    uint64_t off, len; /* in the mapping; units sorted by off, not overlapping */
} sm_lazy_unit;

/* Write n bytes at `off` of the mapping (a fill writes only inside its unit). */
typedef int (*sm_lazy_put_fn)(void *put_ctx, uint64_t off, const void *p, size_t n);
/* Produce unit i (all of its bytes, through put). -1 with sm_error on failure. */
typedef int (*sm_lazy_fill_fn)(void *ctx, size_t unit, sm_lazy_put_fn put, void *put_ctx);

typedef struct sm_lazy_spec {
    const char *path;            /* for messages */
    uint64_t size;
    const sm_lazy_unit *units;   /* copied */
    size_t n_units;
    sm_lazy_fill_fn fill;
    void *ctx;
    void (*free_ctx)(void *ctx); /* at sm_mmap_close */
    uint64_t budget;             /* bytes of units kept; 0: SMELT_DECODE_CACHE_MB or 256 MiB
                                    (at least twice the largest unit) */
} sm_lazy_spec;

/* Set up m (data readable only where static bytes lie until sm_lazymap_ready). On failure the
 * spec's ctx is freed (free_ctx) and m is zeroed. */
int sm_lazymap_open(sm_mmap *m, const sm_lazy_spec *spec);
/* The static bytes (outside the units), before ready. */
int sm_lazymap_put(sm_mmap *m, uint64_t off, const void *p, size_t n);
/* From now on the mapping is read through the fault handler. */
int sm_lazymap_ready(sm_mmap *m);

/* Does [p, p+n) overlap a lazy mapping? (Async-signal-safe; cheap when none is open.) */
bool sm_lazymap_overlaps(const void *p, size_t n);
/* Bytes of units produced so far (for tests), and how many fills ran. */
uint64_t sm_lazymap_fills(const sm_mmap *m);
uint64_t sm_lazymap_resident(const sm_mmap *m);

/* for core/files.c */
void sm_lazymap_close(sm_mmap *m);
void sm_lazymap_release(const sm_mmap *m, const void *p, uint64_t n);

#endif
