/* gptq_source.c - linears of Hugging Face GPTQ checkpoints in `smelt convert`.
 *
 * A GPTQ linear (NAME.qweight, .qzeros, .scales, .g_idx; formats/gptq_hf.c decodes them)
 * becomes the GGUF tensor NAME.weight. When the grids coincide it is repacked without any
 * loss: symmetric 4-bit codes q with zero point 8 and an F16 scale per group of consecutive
 * inputs whose size is a multiple of 32 (32, 64, 128, or one group per row) are exactly
 * ggml's Q4_0 blocks, each block of a group taking the group's scale (d = scale, value
 * d * (q - 8)), and the same in 8 bits with zero point 128 are Q8_0 blocks (d = scale, value
 * d * (q - 128)). Any other layout (act-order groups, asymmetric grids (AutoAWQ's too), other
 * group sizes or bit widths) is dequantized to float and written in the output type. Either way the rope permutation of q/k rows is applied. */
#include "convert_internal.h"

#include "quantize/quantize.h"

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

/* Q4_0 / Q8_0 when the checkpoint's grid is the block type's, else SM_TYPE_INVALID. */
static sm_type lossless_type(const sm_gptq_hf_config *c, const cv_item *it) {
    const int64_t gs = group_inputs(c, it->shape[1]);
    if (c->awq || !c->sym || !gs || (c->bits != 4 && c->bits != 8)) return SM_TYPE_INVALID;
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
    return c->bits == 4 ? SM_TYPE_Q4_0 : SM_TYPE_Q8_0;
}

int cv_gptq_plan_item(const cv_source *s, const sm_tensor *t, sm_type outtype, cv_item *it, int *map_flags) {
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
    it->type = lossless_type(&s->gptq_cfg, it);
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

/* Repack codes + F16 scales into Q4_0 / Q8_0 blocks, output row by output row. */
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
            if (zeros[g * out_f + sr] != zero) {
                rc = sm_error("zero point %d in a symmetric %d-bit checkpoint (expected %lld)", zeros[g * out_f + sr],
                              c->bits, (long long)zero);
                break;
            }
            uint8_t *b = row + (size_t)bi * block;
            memcpy(b, (const char *)sc->data + 2 * (size_t)(g * out_f + sr), 2); /* d: the F16 scale */
            const uint8_t *q = codes + sr * in_f + bi * 32;
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
    if (lossless_type(it->gptq_cfg, it) == it->type) return repack(it, dst);
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
