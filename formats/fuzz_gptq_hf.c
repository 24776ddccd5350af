/* fuzz_gptq_hf.c - libFuzzer target for the HF GPTQ reader: the quantization_config parser and
 * the dequantization of a linear from its tensors, whose shapes, dtypes and sizes come from
 * the input and need not agree.
 *
 * Input: a JSON quantization_config, '\n', then little-endian u32 out, u32 qweight_rows,
 * u32 n_groups, u32 qzeros_cols, u8 scales dtype (0 F16, 1 BF16, 2 F32, else I32), u8 g_idx
 * (0 none, 1 I32, 2 I64, else F32), 2 padding bytes, then the bytes of qweight, qzeros,
 * scales and g_idx in that order, each cut short if the input ends. */
#include "formats/formats.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The next tensor: shape as declared, bytes what is left of them. */
static void take(sm_tensor *t, const char *name, sm_type type, int n_dims, int64_t d0, int64_t d1, const uint8_t **p,
                 size_t *left) {
    memset(t, 0, sizeof *t);
    t->name = name;
    t->type = type;
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = d1;
    const sm_type_info *ti = sm_type_get(type);
    uint64_t want = (uint64_t)d0 * (uint64_t)(n_dims > 1 ? d1 : 1) * (ti ? ti->block_bytes : 1);
    if (want > *left) want = *left;
    t->data = *p;
    t->nbytes = want;
    *p += want;
    *left -= want;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl) return 0;
    cJSON *j = cJSON_ParseWithLength((const char *)data, (size_t)(nl - data));
    sm_gptq_hf_config c;
    const int bad = sm_gptq_hf_config_parse(j, "fuzz", &c);
    if (!bad) {
        cJSON *back = sm_gptq_hf_config_to_json(&c);
        sm_gptq_hf_config d;
        if (!back || sm_gptq_hf_config_parse(back, "back", &d) || memcmp(&c, &d, sizeof c)) __builtin_trap();
        cJSON_Delete(back);
    }
    cJSON_Delete(j);
    const uint8_t *p = nl + 1;
    size_t left = size - (size_t)(p - data);
    if (bad || left < 20) return 0;
    const uint32_t out = rd32(p), rows = rd32(p + 4), ng = rd32(p + 8), zc = rd32(p + 12);
    const sm_type st = p[16] == 0 ? SM_TYPE_F16 : p[16] == 1 ? SM_TYPE_BF16 : p[16] == 2 ? SM_TYPE_F32 : SM_TYPE_I32;
    const int gk = p[17];
    p += 20;
    left -= 20;
    sm_tensor qw, qz, sc, gi;
    take(&qw, "qweight", SM_TYPE_I32, 2, rows, out, &p, &left);
    take(&qz, "qzeros", SM_TYPE_I32, 2, ng, zc, &p, &left);
    take(&sc, "scales", st, 2, ng, out, &p, &left);
    const int64_t in = (int64_t)rows * 32 / c.bits;
    take(&gi, "g_idx", gk == 1 ? SM_TYPE_I32 : gk == 2 ? SM_TYPE_I64 : SM_TYPE_F32, 1, in, 1, &p, &left);
    int64_t of, inf;
    if (sm_gptq_hf_dequantize(&c, &qw, &qz, &sc, gk ? &gi : NULL, NULL, &of, &inf)) return 0;
    if (of * inf > ((int64_t)1 << 22)) return 0;
    float *dst = malloc(sizeof(float) * (size_t)(of * inf));
    if (!dst) return 0;
    if (sm_gptq_hf_dequantize(&c, &qw, &qz, &sc, gk ? &gi : NULL, dst, &of, &inf)) __builtin_trap();
    free(dst);
    return 0;
}
