/* gptq_hf.c - HF GPTQ checkpoints: the quantization_config, packing codes and zero points into
 * qweight / qzeros and back, and the float weight of a GPTQ linear from its tensors.
 *
 * The layout (see formats.h) follows AutoGPTQ's QuantLinear.pack (qlinear_cuda_old.py: codes
 * packed along the input dimension, 32/bits per int32, lowest bits first, 3-bit codes as a
 * continuous bit stream over groups of 3 words; `zeros -= 1` before packing the zero points
 * along the output dimension) and GPTQModel's checkpoint_format handling
 * (convert_gptq_v1_to_v2_format: whole-word additions of 0x55555555 / 0x11111111 / 0x01010101
 * for 2 / 4 / 8 bits, a per-field +1 for 3 bits); AutoAWQ's gemm layout (WQLinear_GEMM.from_linear:
 * 4-bit codes and zero points packed along the output dimension, 8 per int32 in the order
 * 0 2 4 6 1 3 5 7, zero points stored as they are). Tensor bytes are read with memcpy: a
 * safetensors data offset need not be aligned. */
#include "formats/formats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GPTQ_MAX_DIM ((int64_t)1 << 24)

static bool bits_ok(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

/* ---- quantization_config ---- */

static int get_int(const cJSON *qc, const char *what, const char *key, bool required, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(qc, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) return sm_error("%s: missing \"%s\"", what, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 1e9)
        return sm_error("%s: \"%s\" must be an integer", what, key);
    *out = (int)v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *qc, const char *what, const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(qc, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return sm_error("%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static const char *get_str(const cJSON *qc, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(qc, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* AutoAWQ's config (transformers' AwqConfig keys; AutoAWQ's own w_bit / q_group_size too). */
static int parse_awq(const cJSON *qc, const char *what, sm_gptq_hf_config *out) {
    const char *bk = cJSON_GetObjectItemCaseSensitive(qc, "bits") ? "bits" : "w_bit";
    const char *gk = cJSON_GetObjectItemCaseSensitive(qc, "group_size") ? "group_size" : "q_group_size";
    bool zero_point = true;
    if (get_int(qc, what, bk, true, 0, &out->bits) || get_int(qc, what, gk, false, 128, &out->group_size) ||
        get_bool(qc, what, "zero_point", true, &zero_point))
        return -1;
    if (out->bits != 4) return sm_error("%s: AWQ with %d bits is not supported (AutoAWQ's gemm layout: 4)", what, out->bits);
    if (out->group_size == 0 || out->group_size < -1)
        return sm_error("%s: group_size %d (must be positive or -1)", what, out->group_size);
    if (!zero_point) return sm_error("%s: AWQ with zero_point false is not supported (gemm checkpoints store zero points)", what);
    if (cJSON_GetObjectItemCaseSensitive(qc, "version") && !get_str(qc, "version"))
        return sm_error("%s: \"version\" must be a string", what);
    const char *ver = get_str(qc, "version");
    if (ver && strcasecmp(ver, "gemm"))
        return sm_error("%s: AWQ version \"%s\" is not supported (\"gemm\" only)", what, ver);
    out->awq = true;
    out->true_sequential = true;
    return 0;
}

int sm_gptq_hf_config_parse(const cJSON *qc, const char *what, sm_gptq_hf_config *out) {
    memset(out, 0, sizeof *out);
    if (!cJSON_IsObject(qc)) return sm_error("%s: quantization config must be an object", what);
    const char *method = get_str(qc, "quant_method");
    if (method && !strcmp(method, "awq")) return parse_awq(qc, what, out);
    if (method && strcmp(method, "gptq"))
        return sm_error("%s: quant_method \"%s\" is not GPTQ or AWQ", what, method);
    if (cJSON_GetObjectItemCaseSensitive(qc, "quant_method") && !method)
        return sm_error("%s: \"quant_method\" must be a string", what);
    if (get_int(qc, what, "bits", true, 0, &out->bits) ||
        get_int(qc, what, "group_size", false, -1, &out->group_size) ||
        get_bool(qc, what, "desc_act", false, &out->desc_act) || get_bool(qc, what, "sym", true, &out->sym) ||
        get_bool(qc, what, "static_groups", false, &out->static_groups) ||
        get_bool(qc, what, "true_sequential", true, &out->true_sequential))
        return -1;
    if (!bits_ok(out->bits)) return sm_error("%s: %d bits is not supported (2, 3, 4 or 8)", what, out->bits);
    if (out->group_size == 0 || out->group_size < -1)
        return sm_error("%s: group_size %d (must be positive or -1)", what, out->group_size);
    const cJSON *damp = cJSON_GetObjectItemCaseSensitive(qc, "damp_percent");
    out->damp_percent = cJSON_IsNumber(damp) ? damp->valuedouble : 0.01;
    /* transformers/optimum: checkpoint_format; GPTQModel's newer configs: format */
    const char *fmt = get_str(qc, "checkpoint_format");
    if (!fmt) fmt = get_str(qc, "format");
    if (!fmt || !strcmp(fmt, "gptq")) out->v2 = false;
    else if (!strcmp(fmt, "gptq_v2")) out->v2 = true;
    else return sm_error("%s: checkpoint format \"%s\" is not GPTQ (\"gptq\" or \"gptq_v2\")", what, fmt);
    const char *pack = get_str(qc, "pack_dtype");
    if (pack && strcmp(pack, "int32"))
        return sm_error("%s: pack_dtype \"%s\" is not supported (int32 only)", what, pack);
    return 0;
}

cJSON *sm_gptq_hf_config_to_json(const sm_gptq_hf_config *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = c->awq ? cJSON_AddStringToObject(o, "quant_method", "awq") && cJSON_AddNumberToObject(o, "bits", c->bits) &&
                           cJSON_AddNumberToObject(o, "group_size", c->group_size) &&
                           cJSON_AddBoolToObject(o, "zero_point", true) && cJSON_AddStringToObject(o, "version", "gemm")
    : cJSON_AddNumberToObject(o, "bits", c->bits) && cJSON_AddNumberToObject(o, "group_size", c->group_size) &&
              cJSON_AddNumberToObject(o, "damp_percent", c->damp_percent) &&
              cJSON_AddBoolToObject(o, "desc_act", c->desc_act) &&
              cJSON_AddBoolToObject(o, "static_groups", c->static_groups) && cJSON_AddBoolToObject(o, "sym", c->sym) &&
              cJSON_AddBoolToObject(o, "true_sequential", c->true_sequential) &&
              cJSON_AddStringToObject(o, "quant_method", "gptq") &&
              cJSON_AddStringToObject(o, "checkpoint_format", c->v2 ? "gptq_v2" : "gptq") &&
              cJSON_AddStringToObject(o, "pack_dtype", "int32");
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- shapes and bit streams ---- */

int sm_gptq_hf_shapes(const sm_gptq_hf_config *c, int64_t out_f, int64_t in_f, int64_t *n_groups,
                      int64_t qweight_shape[2], int64_t qzeros_shape[2]) {
    if (!bits_ok(c->bits)) return sm_error("gptq: %d bits is not supported (2, 3, 4 or 8)", c->bits);
    if (c->group_size == 0 || c->group_size < -1) return sm_error("gptq: group_size %d", c->group_size);
    if (out_f <= 0 || in_f <= 0 || out_f > GPTQ_MAX_DIM || in_f > GPTQ_MAX_DIM)
        return sm_error("gptq: linear %lld x %lld is out of range", (long long)out_f, (long long)in_f);
    if (c->awq) { /* WQLinear_GEMM: in % group_size == 0, out % (32 / bits) == 0 */
        const int64_t gs = c->group_size == -1 ? in_f : c->group_size;
        if (in_f % gs)
            return sm_error("awq: %lld input features is not a multiple of group_size %lld", (long long)in_f,
                            (long long)gs);
        if (out_f % 8) return sm_error("awq: %lld output features is not a multiple of 8", (long long)out_f);
        *n_groups = in_f / gs;
        qweight_shape[0] = in_f;
        qweight_shape[1] = out_f / 8;
        qzeros_shape[0] = *n_groups;
        qzeros_shape[1] = out_f / 8;
        return 0;
    }
    /* AutoGPTQ and GPTQModel size the tensors as in // 32 * bits and out // 32 * bits */
    if (in_f % 32) return sm_error("gptq: %lld input features is not a multiple of 32", (long long)in_f);
    if (out_f % 32) return sm_error("gptq: %lld output features is not a multiple of 32", (long long)out_f);
    *n_groups = c->group_size == -1 ? 1 : (in_f + c->group_size - 1) / c->group_size;
    qweight_shape[0] = in_f * c->bits / 32;
    qweight_shape[1] = out_f;
    qzeros_shape[0] = *n_groups;
    qzeros_shape[1] = out_f * c->bits / 32;
    return 0;
}

/* Word `w` of a stream whose words are `stride` words apart (unaligned bytes). */
static uint32_t word_at(const uint8_t *base, int64_t stride, int64_t w) {
    uint32_t v;
    memcpy(&v, base + (size_t)(w * stride) * 4, 4);
    return v;
}

/* Code `idx` of a bit stream. */
static uint32_t get_code(const uint8_t *base, int64_t stride, int64_t idx, int bits) {
    const int64_t bit = idx * bits, w = bit / 32;
    const int sh = (int)(bit % 32);
    uint64_t v = word_at(base, stride, w) >> sh;
    if (sh + bits > 32) v |= (uint64_t)word_at(base, stride, w + 1) << (32 - sh);
    return (uint32_t)v & ((1u << bits) - 1);
}

static void put_code(uint32_t *base, int64_t stride, int64_t idx, int bits, uint32_t v) {
    const int64_t bit = idx * bits, w = bit / 32;
    const int sh = (int)(bit % 32);
    base[w * stride] |= v << sh;
    if (sh + bits > 32) base[(w + 1) * stride] |= v >> (32 - sh);
}

/* AWQ: bit offset of output o's code in its word (the inverse of the order 0 2 4 6 1 3 5 7). */
static const int AWQ_SHIFT[8] = {0, 16, 4, 20, 8, 24, 12, 28};

/* Code of output o in a row of AWQ words (unaligned). */
static uint32_t awq_code(const uint8_t *row, int64_t o) { return (word_at(row, 1, o / 8) >> AWQ_SHIFT[o % 8]) & 15u; }

static uint32_t v1_word_offset(int bits) {
    return bits == 2 ? 0x55555555u : bits == 4 ? 0x11111111u : 0x01010101u;
}

/* Zero point o of group row `zrow` (words of one qzeros row, unaligned). */
static int32_t get_zero(const sm_gptq_hf_config *c, const uint8_t *zrow, int64_t o) {
    if (c->awq) return (int32_t)awq_code(zrow, o);
    if (!c->v2 && c->bits != 3) {
        /* whole-word v1 -> v2: add 1 to every field with carries, then read the field */
        const int64_t bit = o * c->bits;
        const uint32_t w = word_at(zrow, 1, bit / 32) + v1_word_offset(c->bits);
        return (int32_t)((w >> (bit % 32)) & ((1u << c->bits) - 1));
    }
    const uint32_t f = get_code(zrow, 1, o, c->bits);
    return c->v2 ? (int32_t)f : (int32_t)((f + 1) & 7u);
}

int sm_gptq_hf_pack(const sm_gptq_hf_config *c, int64_t out_f, int64_t in_f, const uint8_t *codes,
                    const int32_t *zeros, int32_t *qweight, int32_t *qzeros) {
    int64_t ng, qws[2], qzs[2];
    if (sm_gptq_hf_shapes(c, out_f, in_f, &ng, qws, qzs)) return -1;
    const uint32_t maxq = (1u << c->bits) - 1;
    for (int64_t k = 0; k < out_f * in_f; k++)
        if (codes[k] > maxq)
            return sm_error("gptq pack: code %u at (%lld, %lld) exceeds %d bits", codes[k], (long long)(k / in_f),
                            (long long)(k % in_f), c->bits);
    const int32_t zlo = c->v2 || c->awq ? 0 : 1;
    for (int64_t k = 0; k < ng * out_f; k++)
        if (zeros[k] < zlo || zeros[k] > (int32_t)maxq) {
            if (zeros[k] == 0)
                return sm_error("gptq pack: zero point 0 (group %lld, output %lld) cannot be stored in checkpoint "
                                "format \"gptq\" (v1 stores zero-1); quantize with v1 zero points or write gptq_v2",
                                (long long)(k / out_f), (long long)(k % out_f));
            return sm_error("gptq pack: zero point %d (group %lld, output %lld) is out of range for %d bits", zeros[k],
                            (long long)(k / out_f), (long long)(k % out_f), c->bits);
        }
    memset(qweight, 0, sizeof(int32_t) * (size_t)(qws[0] * qws[1]));
    memset(qzeros, 0, sizeof(int32_t) * (size_t)(qzs[0] * qzs[1]));
    if (c->awq) {
        uint32_t *qw = (uint32_t *)qweight, *qz = (uint32_t *)qzeros;
        for (int64_t o = 0; o < out_f; o++) {
            for (int64_t i = 0; i < in_f; i++) qw[i * qws[1] + o / 8] |= (uint32_t)codes[o * in_f + i] << AWQ_SHIFT[o % 8];
            for (int64_t g = 0; g < ng; g++) qz[g * qzs[1] + o / 8] |= (uint32_t)zeros[g * out_f + o] << AWQ_SHIFT[o % 8];
        }
        return 0;
    }
    for (int64_t o = 0; o < out_f; o++)
        for (int64_t i = 0; i < in_f; i++) put_code((uint32_t *)qweight + o, out_f, i, c->bits, codes[o * in_f + i]);
    for (int64_t g = 0; g < ng; g++)
        for (int64_t o = 0; o < out_f; o++)
            put_code((uint32_t *)qzeros + g * qzs[1], 1, o, c->bits, (uint32_t)(zeros[g * out_f + o] - zlo));
    return 0;
}

/* Code of (output o, input i) of a qweight of `out_f` outputs. */
static uint32_t code_at(const sm_gptq_hf_config *c, const uint8_t *qw, int64_t out_f, int64_t o, int64_t i) {
    return c->awq ? awq_code(qw + (size_t)(i * (out_f / 8)) * 4, o) : get_code(qw + 4 * o, out_f, i, c->bits);
}

int sm_gptq_hf_unpack(const sm_gptq_hf_config *c, int64_t out_f, int64_t in_f, const void *qweight,
                      const void *qzeros, uint8_t *codes, int32_t *zeros) {
    int64_t ng, qws[2], qzs[2];
    if (sm_gptq_hf_shapes(c, out_f, in_f, &ng, qws, qzs)) return -1;
    const uint8_t *qw = qweight, *qz = qzeros;
    for (int64_t o = 0; o < out_f; o++)
        for (int64_t i = 0; i < in_f; i++) codes[o * in_f + i] = (uint8_t)code_at(c, qw, out_f, o, i);
    for (int64_t g = 0; g < ng; g++)
        for (int64_t o = 0; o < out_f; o++) zeros[g * out_f + o] = get_zero(c, qz + 4 * g * qzs[1], o);
    return 0;
}

/* ---- dequantization from checkpoint tensors ---- */

static int check_tensor(const sm_tensor *t, const char *role, int n_dims, const int64_t *shape) {
    const char *name = t->name ? t->name : role;
    if (t->n_dims != n_dims) return sm_error("gptq: %s: expected %d dimensions, found %d", name, n_dims, t->n_dims);
    for (int d = 0; d < n_dims; d++)
        if (t->shape[d] != shape[d])
            return sm_error("gptq: %s: dimension %d is %lld, expected %lld", name, d, (long long)t->shape[d],
                            (long long)shape[d]);
    const sm_type_info *ti = sm_type_get(t->type);
    int64_t n = 1;
    for (int d = 0; d < n_dims; d++) n *= shape[d];
    if (!ti || ti->block_size != 1 || t->nbytes != (uint64_t)n * ti->block_bytes || (n && !t->data))
        return sm_error("gptq: %s: %llu bytes do not hold %lld %s elements", name, (unsigned long long)t->nbytes,
                        (long long)n, sm_type_name(t->type));
    return 0;
}

int sm_gptq_hf_dequantize(const sm_gptq_hf_config *c, const sm_tensor *qweight, const sm_tensor *qzeros,
                          const sm_tensor *scales, const sm_tensor *g_idx, float *dst, int64_t *out_f,
                          int64_t *in_f) {
    const char *qwn = qweight->name ? qweight->name : "qweight";
    if (!bits_ok(c->bits)) return sm_error("gptq: %d bits is not supported (2, 3, 4 or 8)", c->bits);
    if (qweight->type != SM_TYPE_I32) return sm_error("gptq: %s: expected I32, found %s", qwn, sm_type_name(qweight->type));
    if (qweight->n_dims != 2) return sm_error("gptq: %s: expected 2 dimensions, found %d", qwn, qweight->n_dims);
    if (qweight->shape[0] <= 0 || qweight->shape[1] <= 0 || qweight->shape[0] > GPTQ_MAX_DIM ||
        qweight->shape[1] > GPTQ_MAX_DIM || (!c->awq && qweight->shape[0] % c->bits))
        return sm_error("gptq: %s: shape [%lld, %lld] is not a packed %d-bit weight", qwn, (long long)qweight->shape[0],
                        (long long)qweight->shape[1], c->bits);
    if (c->awq && g_idx) return sm_error("awq: %s: AWQ checkpoints have no g_idx", g_idx->name ? g_idx->name : "g_idx");
    /* GPTQ packs along the input, AWQ along the output */
    const int64_t out = c->awq ? qweight->shape[1] * 8 : qweight->shape[1];
    const int64_t in = c->awq ? qweight->shape[0] : qweight->shape[0] * 32 / c->bits;
    int64_t ng, qws[2], qzs[2];
    if (sm_gptq_hf_shapes(c, out, in, &ng, qws, qzs)) return sm_error_ctx("%s", qwn);
    const int64_t ssh[2] = {ng, out}, gsh[1] = {in};
    if (check_tensor(qweight, "qweight", 2, qws) || check_tensor(qzeros, "qzeros", 2, qzs) ||
        check_tensor(scales, "scales", 2, ssh) || (g_idx && check_tensor(g_idx, "g_idx", 1, gsh)))
        return -1;
    if (qzeros->type != SM_TYPE_I32)
        return sm_error("gptq: %s: expected I32, found %s", qzeros->name ? qzeros->name : "qzeros",
                        sm_type_name(qzeros->type));
    if (scales->type != SM_TYPE_F16 && scales->type != SM_TYPE_BF16 && scales->type != SM_TYPE_F32)
        return sm_error("gptq: %s: expected F16, found %s", scales->name ? scales->name : "scales",
                        sm_type_name(scales->type));
    if (g_idx && g_idx->type != SM_TYPE_I32 && g_idx->type != SM_TYPE_I64)
        return sm_error("gptq: %s: expected I32, found %s", g_idx->name ? g_idx->name : "g_idx",
                        sm_type_name(g_idx->type));

    int32_t *gi = malloc(sizeof(int32_t) * (size_t)in);
    float *sc = NULL;
    int32_t *zr = NULL;
    int rc = -1;
    if (!gi) {
        sm_error("gptq: %s: out of memory", qwn);
        goto done;
    }
    for (int64_t i = 0; i < in; i++) {
        int64_t g;
        if (!g_idx) {
            g = c->group_size == -1 ? 0 : i / c->group_size;
            if (c->awq) g = i / (in / ng); /* in is a multiple of ng groups */
        } else if (g_idx->type == SM_TYPE_I32) {
            int32_t v;
            memcpy(&v, (const uint8_t *)g_idx->data + 4 * i, 4);
            g = v;
        } else {
            memcpy(&g, (const uint8_t *)g_idx->data + 8 * i, 8);
        }
        if (g < 0 || g >= ng) {
            sm_error("gptq: %s: g_idx[%lld] = %lld is not a group (0..%lld)", g_idx && g_idx->name ? g_idx->name : "g_idx",
                     (long long)i, (long long)g, (long long)(ng - 1));
            goto done;
        }
        gi[i] = (int32_t)g;
    }
    *out_f = out;
    *in_f = in;
    if (!dst) { /* only check and get the shapes */
        rc = 0;
        goto done;
    }
    sc = malloc(sizeof(float) * (size_t)(ng * out));
    zr = malloc(sizeof(int32_t) * (size_t)(ng * out));
    if (!sc || !zr) {
        sm_error("gptq: %s: out of memory", qwn);
        goto done;
    }
    if (sm_plain_to_f32(scales->type, scales->data, sc, ng * out)) goto done;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t o = 0; o < out; o++) zr[g * out + o] = get_zero(c, (const uint8_t *)qzeros->data + g * qzs[1] * 4, o);
    const uint8_t *qw = qweight->data;
#pragma omp parallel for schedule(static) num_threads(sm_num_threads())
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++) {
            const int64_t g = gi[i];
            const int32_t q = (int32_t)code_at(c, qw, out, o, i);
            dst[o * in + i] = sc[g * out + o] * (float)(q - zr[g * out + o]);
        }
    rc = 0;
done:
    free(gi);
    free(sc);
    free(zr);
    return rc;
}
