/* types.c - the element type table. Block sizes and byte sizes are ggml's (ggml-common.h). */
#include "core.h"

#include <ctype.h>
#include <string.h>

#define QK_K 256

static const struct { sm_type type; sm_type_info info; } TYPES[] = {
    {SM_TYPE_F32, {"f32", 1, 4, false, true}},
    {SM_TYPE_F16, {"f16", 1, 2, false, true}},
    {SM_TYPE_Q4_0, {"q4_0", 32, 18, true, true}},
    {SM_TYPE_Q4_1, {"q4_1", 32, 20, true, true}},
    {SM_TYPE_Q5_0, {"q5_0", 32, 22, true, true}},
    {SM_TYPE_Q5_1, {"q5_1", 32, 24, true, true}},
    {SM_TYPE_Q8_0, {"q8_0", 32, 34, true, true}},
    {SM_TYPE_Q8_1, {"q8_1", 32, 36, true, true}},
    {SM_TYPE_Q2_K, {"q2_K", QK_K, 84, true, true}},
    {SM_TYPE_Q3_K, {"q3_K", QK_K, 110, true, true}},
    {SM_TYPE_Q4_K, {"q4_K", QK_K, 144, true, true}},
    {SM_TYPE_Q5_K, {"q5_K", QK_K, 176, true, true}},
    {SM_TYPE_Q6_K, {"q6_K", QK_K, 210, true, true}},
    {SM_TYPE_Q8_K, {"q8_K", QK_K, 292, true, true}},
    {SM_TYPE_IQ2_XXS, {"iq2_xxs", QK_K, 66, true, true}},
    {SM_TYPE_IQ2_XS, {"iq2_xs", QK_K, 74, true, true}},
    {SM_TYPE_IQ3_XXS, {"iq3_xxs", QK_K, 98, true, true}},
    {SM_TYPE_IQ1_S, {"iq1_s", QK_K, 50, true, true}},
    {SM_TYPE_IQ4_NL, {"iq4_nl", 32, 18, true, true}},
    {SM_TYPE_IQ3_S, {"iq3_s", QK_K, 110, true, true}},
    {SM_TYPE_IQ2_S, {"iq2_s", QK_K, 82, true, true}},
    {SM_TYPE_IQ4_XS, {"iq4_xs", QK_K, 136, true, true}},
    {SM_TYPE_I8, {"i8", 1, 1, false, true}},
    {SM_TYPE_I16, {"i16", 1, 2, false, true}},
    {SM_TYPE_I32, {"i32", 1, 4, false, true}},
    {SM_TYPE_I64, {"i64", 1, 8, false, true}},
    {SM_TYPE_F64, {"f64", 1, 8, false, true}},
    {SM_TYPE_IQ1_M, {"iq1_m", QK_K, 56, true, true}},
    {SM_TYPE_BF16, {"bf16", 1, 2, false, true}},
    {SM_TYPE_TQ1_0, {"tq1_0", QK_K, 54, true, true}},
    {SM_TYPE_TQ2_0, {"tq2_0", QK_K, 66, true, true}},
    {SM_TYPE_MXFP4, {"mxfp4", 32, 17, true, true}},
    {SM_TYPE_U8, {"u8", 1, 1, false, false}},
    {SM_TYPE_BOOL, {"bool", 1, 1, false, false}},
    {SM_TYPE_F8_E4M3, {"f8_e4m3", 1, 1, false, false}},
    {SM_TYPE_F8_E5M2, {"f8_e5m2", 1, 1, false, false}},
    {SM_TYPE_U16, {"u16", 1, 2, false, false}},
    {SM_TYPE_U32, {"u32", 1, 4, false, false}},
    {SM_TYPE_U64, {"u64", 1, 8, false, false}},
};

const sm_type_info *sm_type_get(sm_type t) {
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (TYPES[i].type == t) return &TYPES[i].info;
    return NULL;
}

const char *sm_type_name(sm_type t) {
    const sm_type_info *ti = sm_type_get(t);
    return ti ? ti->name : "?";
}

sm_type sm_type_from_name(const char *name) {
    if (!name) return SM_TYPE_INVALID;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++) {
        const char *a = TYPES[i].info.name, *b = name;
        while (*a && *b && tolower((unsigned char)*a) == tolower((unsigned char)*b)) a++, b++;
        if (!*a && !*b) return TYPES[i].type;
    }
    return SM_TYPE_INVALID;
}

uint64_t sm_type_row_bytes(sm_type t, int64_t n) {
    const sm_type_info *ti = sm_type_get(t);
    if (!ti || n < 0 || n % ti->block_size) return 0;
    return (uint64_t)(n / ti->block_size) * ti->block_bytes;
}

int64_t sm_tensor_nelements(const sm_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->shape[i];
    return n;
}

int64_t sm_tensor_row_len(const sm_tensor *t) { return t->n_dims ? t->shape[t->n_dims - 1] : 1; }

int64_t sm_tensor_nrows(const sm_tensor *t) {
    int64_t r = sm_tensor_row_len(t);
    return r ? sm_tensor_nelements(t) / r : 0;
}

const char *sm_shape_str(const sm_tensor *t, char *buf, size_t cap) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "[");
    for (int i = 0; i < t->n_dims; i++)
        k += (size_t)snprintf(buf + k, k < cap ? cap - k : 0, "%s%lld", i ? ", " : "",
                              (long long)t->shape[i]);
    snprintf(buf + k, k < cap ? cap - k : 0, "]");
    return buf;
}
