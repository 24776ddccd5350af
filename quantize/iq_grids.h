/* iq_grids.h - (internal) the lattices of ggml's i-quants: grid points, the map from a
 * rounded point to its grid index, and the neighbour lists the quantizers search when the
 * rounded point is not on the grid; built once from the base tables of iq_grid_data.c the
 * way ggml's iq2xs_init_impl / iq3xs_init_impl build theirs. */
#ifndef SMELT_QUANTIZE_IQ_GRIDS_H
#define SMELT_QUANTIZE_IQ_GRIDS_H

#include <stdint.h>

extern const uint16_t q_iq_kgrid_2bit_256[256];
extern const uint16_t q_iq_kgrid_2bit_512[512];
extern const uint16_t q_iq_kgrid_2bit_1024[1024];
extern const uint16_t q_iq_kgrid_1bit_2048[2048];
extern const uint16_t q_iq_kgrid_3bit_256[256];
extern const uint16_t q_iq_kgrid_3bit_512[512];

typedef enum q_iq_grid_id {
    Q_IQ_GRID_2XXS, /* 256 points in 8-D (IQ2_XXS) */
    Q_IQ_GRID_2XS,  /* 512 points in 8-D (IQ2_XS) */
    Q_IQ_GRID_2S,   /* 1024 points in 8-D (IQ2_S) */
    Q_IQ_GRID_1S,   /* 2048 points in 8-D (IQ1_S, IQ1_M) */
    Q_IQ_GRID_3XXS, /* 256 points in 4-D (IQ3_XXS) */
    Q_IQ_GRID_3S,   /* 512 points in 4-D (IQ3_S) */
    Q_IQ_GRID_COUNT
} q_iq_grid_id;

typedef struct q_iq_grid {
    int dim;              /* coordinates per point: 8 or 4 */
    int bits;             /* bits per coordinate in a map index: 2 or 3 */
    int size;             /* grid points */
    const int8_t *pos;    /* size x 8: the quantizer's coordinates 2l+1 (IQ1: 2l+1 too) */
    const int8_t *deq;    /* size x 8: ggml-common.h's dequantization values of each point */
    const int32_t *map;   /* for each index sum l_i << bits*i: the grid point (>= 0), or
                             -(offset + 1) of its neighbour list (count, then grid indices) */
    const uint16_t *neighbours;
    const uint16_t *codes; /* parallel to neighbours: each listed point's levels sum l_i << bits*i
                              (a count slot: anything); Q_IQ_CODES_PAD more entries readable */
} q_iq_grid;

#define Q_IQ_CODES_PAD 16

/* The grid, built on first use (thread-safe); NULL only if memory ran out. */
const q_iq_grid *q_iq_grid_get(q_iq_grid_id id);

/* The neighbour list of a map index that is not on the grid: n = list[0], then n indices. */
static inline const uint16_t *q_iq_neighbours(const q_iq_grid *g, int u) { return g->neighbours - g->map[u] - 1; }

/* The first nearest point of neighbour list nb (codes: the list's entries of q_iq_grid.codes)
 * to xval[dim] at `scale`: the smallest sum over coordinates i, in order from 0.0f, of
 * w[i]*(scale*q - xval[i])*(scale*q - xval[i]) (q = 2 l_i + 1, l_i the point's level i, so
 * ggml's iq2/iq3_find_best_neighbour's bits); the first of equals, -1 if none is below FLT_MAX.
 * dim 8 means 2 bits per level, dim 4 means 3. The scalar loop is in q_iq23.c. */
int q_iq_nearest_avx2(const uint16_t *nb, const uint16_t *codes, int dim, const float *xval, const float *w,
                      float scale);

#endif
