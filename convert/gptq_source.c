/* gptq_source.c - linears of Hugging Face GPTQ checkpoints in `smelt convert`.
 *
 * A GPTQ linear (NAME.qweight, .qzeros, .scales, .g_idx; formats/gptq_hf.c decodes them)
 * becomes the GGUF tensor NAME.weight. When the grids coincide it is repacked without any
 * loss: symmetric 4-bit codes q with zero point 8 and an F16 scale per group of consecutive
 * inputs whose size is a multiple of 32 (32, 64, 128, or one group per row) are exactly
 * ggml's Q4_0 blocks, each block of a group taking the group's scale (d = scale, value
 * d * (q - 8)), and the same in 8 bits with zero point 128 are Q8_0 blocks (d = scale, value
 * d * (q - 128)). Asymmetric 4-bit codes with zero points (AutoAWQ's checkpoints, GPTQ asym) in
 * such groups become Q4_1 blocks with the codes unchanged: d = scale, m = -scale * zero rounded
 * to f16, value d * q + m (ggml's dequantize_row_q4_1), which differs from the checkpoint's
 * scale * (q - zero) by the rounding of m: the plan records the largest such difference
 * (cv_item.gptq_err; 0: exact). Any other layout (act-order groups, other group sizes or bit
 * widths, an m beyond f16) is dequantized to float and written in the output type. Either way
 * the rope permutation of q/k rows is applied. */
#include "convert_internal.h"

#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const SUFFIX[4] = {".qweight", ".qzeros", ".scales", ".g_idx"};

static int suffix_of(const char *name) {
    const size_t n = strlen(name);
    for (int k = 0; k < 4; k++) {
        const size_t sl = strlen(SUFFIX[k]);
        if (n > sl && !strcmp(name + n - sl, SUFFIX[k])) return k;
    }
    return -1;
}

int cv_gptq_part(const char *name) {
    const int k = suffix_of(name);
    return k < 0 ? 0 : k == 0 ? 1 : 2;
}

/* Inputs per group: a multiple of 32 (whole ggml blocks), else 0. */
static int64_t group_inputs(const sm_gptq_hf_config *c, int64_t in_f) {
    const int64_t gs = c->group_size == -1 ? in_f : c->group_size;
    return gs % 32 || in_f % gs ? 0 : gs;
}

/* Q4_0 / Q8_0 when the checkpoint's grid is the block type's, Q4_1 for 4-bit codes with zero
 * points (AWQ, GPTQ asym), else SM_TYPE_INVALID: groups of whole ggml blocks of consecutive
 * inputs (no act-order permutation) and F16 scales. */
static sm_type transcode_type(const sm_gptq_hf_config *c, const cv_item *it) {
    const int64_t gs = group_inputs(c, it->shape[1]);
    const bool asym = c->awq || !c->sym;
    if (!gs || (c->bits != 4 && c->bits != 8) || (asym && c->bits != 4)) return SM_TYPE_INVALID;
    if (it->gptq[2]->type != SM_TYPE_F16) return SM_TYPE_INVALID;
    const sm_tensor *g = it->gptq[3];
    if (g) { /* groups must be consecutive inputs (no act-order permutation) */
        if (g->type != SM_TYPE_I32 || sm_tensor_nelements(g) != it->shape[1]) return SM_TYPE_INVALID;
        for (int64_t i = 0; i < it->shape[1]; i++) {
            int32_t v;
            memcpy(&v, (const char *)g->data + 4 * i, 4);
            if (v != i / gs) return SM_TYPE_INVALID;
        }
    }
    return asym ? SM_TYPE_Q4_1 : c->bits == 4 ? SM_TYPE_Q4_0 : SM_TYPE_Q8_0;
}

/* Q4_1's min of a group: -scale * zero rounded to f16 (scale * zero is exact in float: an
 * 11-bit significand times a 4-bit integer). */
static uint16_t q4_1_min(uint16_t scale, int32_t zero) { return sm_f32_to_f16(-sm_f16_to_f32(scale) * (float)zero); }

/* The largest |m + scale * zero| over the groups: how far a Q4_1 value d * q + m lies from the
 * checkpoint's scale * (q - zero), the same for every q of the group. -1 where an m is not
 * finite in f16 (the linear is then dequantized instead). */
static double q4_1_error(const cv_item *it) {
    const sm_gptq_hf_config *c = it->gptq_cfg;
    const int64_t out_f = it->shape[0], in_f = it->shape[1], ng = in_f / group_inputs(c, in_f);
    uint8_t *codes = malloc((size_t)(out_f * in_f));
    int32_t *zeros = malloc(sizeof(int32_t) * (size_t)(ng * out_f));
    double err = (!codes || !zeros) ? sm_error("out of memory") : 0;
    if (!err && sm_gptq_hf_unpack(c, out_f, in_f, it->gptq[0]->data, it->gptq[1]->data, codes, zeros)) err = -1;
    for (int64_t k = 0; k < ng * out_f && err >= 0; k++) {
        uint16_t h;
        memcpy(&h, (const char *)it->gptq[2]->data + 2 * k, 2);
        const float m = sm_f16_to_f32(q4_1_min(h, zeros[k]));
        const double e = fabs((double)m + (double)sm_f16_to_f32(h) * zeros[k]);
        err = isfinite(m) && isfinite(e) ? fmax(err, e) : -1;
    }
    free(codes);
    free(zeros);
    return err;
}

int cv_gptq_plan_item(const cv_source *s, const sm_tensor *t, sm_type outtype, bool dequantize, cv_item *it,
                      int *map_flags) {
    const sm_ckpt *c = s->ckpt;
    const size_t stem = strlen(t->name) - strlen(SUFFIX[0]);
    char part[256], wname[256];
    if (stem + 16 > sizeof part) return sm_error("%s: tensor name %s is too long", c->path, t->name);
    memset(it, 0, sizeof *it);
    it->gptq[0] = t;
    for (int k = 1; k < 4; k++) {
        snprintf(part, sizeof part, "%.*s%s", (int)stem, t->name, SUFFIX[k]);
        it->gptq[k] = sm_ckpt_find(c, part);
        if (!it->gptq[k] && k < 3) return sm_error("%s: GPTQ tensor %s is missing", c->path, part);
    }
    snprintf(wname, sizeof wname, "%.*s.weight", (int)stem, t->name);
    const int r = sm_map_hf_name(&s->hp, wname, it->name, sizeof it->name, map_flags);
    if (r < 0) return sm_error_ctx("%s", c->path);
    if (r == 0) return sm_error("%s: GPTQ weight %s is not a tensor the converter keeps", c->path, wname);
    int64_t out_f, in_f;
    if (sm_gptq_hf_dequantize(&s->gptq_cfg, it->gptq[0], it->gptq[1], it->gptq[2], it->gptq[3], NULL, &out_f, &in_f))
        return sm_error_ctx("%s: %s", c->path, wname);
    it->src = t;
    it->gptq_cfg = &s->gptq_cfg;
    it->n_dims = 2;
    it->shape[0] = out_f;
    it->shape[1] = in_f;
    it->type = dequantize ? SM_TYPE_INVALID : transcode_type(&s->gptq_cfg, it);
    it->gptq_err = 0;
    if (it->type == SM_TYPE_Q4_1 && (it->gptq_err = q4_1_error(it)) < 0) {
        sm_clear_error();
        it->type = SM_TYPE_INVALID;
    }
    it->gptq_transcoded = it->type != SM_TYPE_INVALID;
    if (it->type == SM_TYPE_INVALID) it->type = outtype;
    if (sm_type_get(it->type)->quantized && in_f % sm_type_get(it->type)->block_size) it->type = SM_TYPE_F16;
    return 0;
}

/* Source row of output row r under the rope permutation of `heads` heads (convert's rule). */
static int64_t source_row(int64_t r, int64_t n, int64_t heads) {
    if (!heads) return r;
    const int64_t d = n / heads, h = r / d, k = r % d;
    return h * d + (k & 1) * (d / 2) + k / 2;
}

/* Repack codes + F16 scales (+ zero points) into Q4_0 / Q8_0 / Q4_1 blocks, output row by
 * output row. */
static int repack(const cv_item *it, void *dst) {
    const sm_gptq_hf_config *c = it->gptq_cfg;
    const int64_t out_f = it->shape[0], in_f = it->shape[1], nb = in_f / 32, zero = c->bits == 4 ? 8 : 128;
    const int64_t gs = group_inputs(c, in_f), ng = in_f / gs;
    const sm_tensor *qw = it->gptq[0], *qz = it->gptq[1], *sc = it->gptq[2];
    uint8_t *codes = malloc((size_t)(out_f * in_f));
    int32_t *zeros = malloc(sizeof(int32_t) * (size_t)(ng * out_f));
    int rc = (!codes || !zeros) ? sm_error("out of memory") : 0;
    if (!rc) rc = sm_gptq_hf_unpack(c, out_f, in_f, qw->data, qz->data, codes, zeros);
    const size_t block = sm_type_get(it->type)->block_bytes;
    for (int64_t r = 0; r < out_f && !rc; r++) {
        const int64_t sr = source_row(r, out_f, it->permute_heads);
        uint8_t *row = (uint8_t *)dst + (size_t)r * (size_t)nb * block;
        for (int64_t bi = 0; bi < nb; bi++) { /* every ggml block of a group gets its scale */
            const int64_t g = bi * 32 / gs;
            uint8_t *b = row + (size_t)bi * block;
            const uint8_t *q = codes + sr * in_f + bi * 32;
            if (it->type == SM_TYPE_Q4_1) { /* d = scale, m = -scale * zero in f16, value d * q + m */
                uint16_t h;
                memcpy(&h, (const char *)sc->data + 2 * (size_t)(g * out_f + sr), 2);
                const uint16_t m = q4_1_min(h, zeros[g * out_f + sr]);
                memcpy(b, &h, 2);
                memcpy(b + 2, &m, 2);
                for (int j = 0; j < 16; j++) b[4 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
                continue;
            }
            if (zeros[g * out_f + sr] != zero) {
                rc = sm_error("zero point %d in a symmetric %d-bit checkpoint (expected %lld)", zeros[g * out_f + sr],
                              c->bits, (long long)zero);
                break;
            }
            memcpy(b, (const char *)sc->data + 2 * (size_t)(g * out_f + sr), 2); /* d: the F16 scale */
            if (c->bits == 4)
                for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
            else
                for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(q[j] - 128);
        }
    }
    free(codes);
    free(zeros);
    return rc;
}

int cv_gptq_fill(const cv_item *it, void *dst) {
    if (it->gptq_transcoded) return repack(it, dst);
    const int64_t out_f = it->shape[0], in_f = it->shape[1];
    float *w = malloc(sizeof(float) * (size_t)(out_f * in_f));
    int64_t o, i;
    int rc = !w ? sm_error("out of memory") : 0;
    if (!rc) rc = sm_gptq_hf_dequantize(it->gptq_cfg, it->gptq[0], it->gptq[1], it->gptq[2], it->gptq[3], w, &o, &i);
    const uint64_t row_bytes = sm_type_row_bytes(it->type, in_f);
    /* sm_quantize_rows writes plain types too; rows in place unless the rope rows move */
    const int64_t per_call = it->permute_heads ? 1 : out_f;
    for (int64_t r = 0; r < out_f && !rc; r += per_call) {
        const float *src = w + source_row(r, out_f, it->permute_heads) * in_f;
        if (sm_quantize_rows(it->type, src, (uint8_t *)dst + (uint64_t)r * row_bytes, per_call, in_f, NULL) !=
            row_bytes * (uint64_t)per_call)
            rc = -1;
    }
    free(w);
    return rc;
}
