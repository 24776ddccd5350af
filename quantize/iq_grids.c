/* iq_grids.c - builds the i-quant lattices of iq_grids.h from iq_grid_data.c.
 *
 * For every index that is not a grid point, its neighbour list holds the grid points at the
 * nwant smallest distinct squared distances (1 for IQ2_S, 2 for IQ2_XXS / IQ2_XS / IQ3_XXS,
 * 3 for IQ3_S and IQ1), ordered by distance, then grid index: the order ggml's qsort gives,
 * which decides ties in the quantizers' searches. */
#include "quantize/iq_grids.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct grid_def {
    const uint16_t *kgrid;
    int size, dim, bits, nwant;
    int8_t deq[8]; /* dequantization value of coordinate level l */
} grid_def;

static const grid_def DEFS[Q_IQ_GRID_COUNT] = {
    [Q_IQ_GRID_2XXS] = {q_iq_kgrid_2bit_256, 256, 8, 2, 2, {8, 25, 43}},
    [Q_IQ_GRID_2XS] = {q_iq_kgrid_2bit_512, 512, 8, 2, 2, {8, 25, 43}},
    [Q_IQ_GRID_2S] = {q_iq_kgrid_2bit_1024, 1024, 8, 2, 1, {8, 25, 43}},
    [Q_IQ_GRID_1S] = {q_iq_kgrid_1bit_2048, 2048, 8, 2, 3, {-1, 0, 1}},
    [Q_IQ_GRID_3XXS] = {q_iq_kgrid_3bit_256, 256, 4, 3, 2, {4, 12, 20, 28, 36, 44, 52, 62}},
    [Q_IQ_GRID_3S] = {q_iq_kgrid_3bit_512, 512, 4, 3, 3, {1, 3, 5, 7, 9, 11, 13, 15}},
};

static q_iq_grid GRIDS[Q_IQ_GRID_COUNT];
static pthread_once_t ONCE[Q_IQ_GRID_COUNT] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT,
                                               PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

/* The neighbours of point p (coordinates pos[]): writes them to out (if not NULL), returns
 * how many. d2 is scratch of size points. */
static int neighbours_of(const grid_def *d, const int8_t *pts, const int8_t *p, int *d2, uint16_t *out) {
    for (int j = 0; j < d->size; j++) {
        int s = 0;
        for (int k = 0; k < d->dim; k++) {
            const int diff = pts[8 * j + k] - p[k];
            s += diff * diff;
        }
        d2[j] = s;
    }
    int n = 0, prev = -1;
    for (int have = 0; have < d->nwant; have++) {
        int next = -1; /* the smallest distance above prev */
        for (int j = 0; j < d->size; j++)
            if (d2[j] > prev && (next < 0 || d2[j] < next)) next = d2[j];
        if (next < 0) break;
        for (int j = 0; j < d->size; j++)
            if (d2[j] == next) {
                if (out) out[n] = (uint16_t)j;
                n++;
            }
        prev = next;
    }
    return n;
}

static void build(q_iq_grid_id id) {
    const grid_def *d = &DEFS[id];
    const int mask = (1 << d->bits) - 1;
    const int map_size = d->bits == 2 ? 43692 : 4096; /* ggml's kmap_size */
    int8_t *pos = calloc((size_t)d->size, 8), *deq = calloc((size_t)d->size, 8);
    int32_t *map = malloc(sizeof(int32_t) * (size_t)map_size), *count = malloc(sizeof(int32_t) * (size_t)map_size);
    if (!pos || !deq || !map || !count) goto fail;
    for (int i = 0; i < map_size; i++) map[i] = -1;
    for (int j = 0; j < d->size; j++) {
        for (int k = 0; k < d->dim; k++) {
            const int l = (d->kgrid[j] >> d->bits * k) & mask;
            pos[8 * j + k] = (int8_t)(2 * l + 1);
            deq[8 * j + k] = d->deq[l];
        }
        map[d->kgrid[j] & ((1 << d->bits * d->dim) - 1)] = j;
    }
    bool failed = false;
    int64_t total = 0;
#pragma omp parallel reduction(+ : total)
    {
        int *d2 = malloc(sizeof(int) * (size_t)d->size);
        int8_t p[8];
#pragma omp for schedule(dynamic, 64)
        for (int i = 0; i < map_size; i++) {
            count[i] = 0;
            if (map[i] >= 0 || !d2) continue;
            for (int k = 0; k < d->dim; k++) p[k] = (int8_t)(2 * ((i >> d->bits * k) & mask) + 1);
            count[i] = neighbours_of(d, pos, p, d2, NULL);
            total += 1 + count[i];
        }
        if (!d2) {
#pragma omp atomic write
            failed = true;
        }
        free(d2);
    }
    uint16_t *nb = failed ? NULL : malloc(sizeof(uint16_t) * (size_t)(total ? total : 1));
    if (!nb) goto fail;
    int32_t off = 0;
    for (int i = 0; i < map_size; i++) {
        if (map[i] >= 0) continue;
        map[i] = -(off + 1);
        nb[off] = (uint16_t)count[i];
        off += 1 + count[i];
    }
#pragma omp parallel
    {
        int *d2 = malloc(sizeof(int) * (size_t)d->size);
        int8_t p[8];
#pragma omp for schedule(dynamic, 64)
        for (int i = 0; i < map_size; i++) {
            if (map[i] >= 0 || !d2) continue;
            for (int k = 0; k < d->dim; k++) p[k] = (int8_t)(2 * ((i >> d->bits * k) & mask) + 1);
            neighbours_of(d, pos, p, d2, nb - map[i]);
        }
        if (!d2) {
#pragma omp atomic write
            failed = true;
        }
        free(d2);
    }
    /* each list entry's levels, with Q_IQ_CODES_PAD readable entries past the last list */
    uint16_t *codes = failed ? NULL : calloc((size_t)total + Q_IQ_CODES_PAD, sizeof(uint16_t));
    if (!codes) { free(nb); goto fail; }
    for (int i = 0; i < map_size; i++) {
        if (map[i] >= 0) continue;
        const uint16_t *list = nb - map[i] - 1;
        for (int j = 1; j <= list[0]; j++)
            codes[list - nb + j] = (uint16_t)(d->kgrid[list[j]] & ((1 << d->bits * d->dim) - 1));
    }
    free(count);
    GRIDS[id] = (q_iq_grid){d->dim, d->bits, d->size, pos, deq, map, nb, codes};
    return;
fail:
    free(pos), free(deq), free(map), free(count);
}

#define ONCE_FN(id) \
    static void build_##id(void) { build(id); }
ONCE_FN(Q_IQ_GRID_2XXS)
ONCE_FN(Q_IQ_GRID_2XS)
ONCE_FN(Q_IQ_GRID_2S)
ONCE_FN(Q_IQ_GRID_1S)
ONCE_FN(Q_IQ_GRID_3XXS)
ONCE_FN(Q_IQ_GRID_3S)
#undef ONCE_FN

const q_iq_grid *q_iq_grid_get(q_iq_grid_id id) {
    static void (*const FNS[Q_IQ_GRID_COUNT])(void) = {build_Q_IQ_GRID_2XXS, build_Q_IQ_GRID_2XS, build_Q_IQ_GRID_2S,
                                                      build_Q_IQ_GRID_1S, build_Q_IQ_GRID_3XXS, build_Q_IQ_GRID_3S};
    if ((unsigned)id >= Q_IQ_GRID_COUNT) return NULL;
    pthread_once(&ONCE[id], FNS[id]);
    return GRIDS[id].pos ? &GRIDS[id] : NULL;
}
