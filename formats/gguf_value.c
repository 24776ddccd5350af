/* gguf_value.c - GGUF metadata values (type table, free, deep copy) and the name hash index
 * shared by the GGUF reader and writer. */
#include "gguf_internal.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const struct { const char *name; size_t size; } VTYPES[] = {
    [SM_GGUF_UINT8] = {"u8", 1},     [SM_GGUF_INT8] = {"i8", 1},
    [SM_GGUF_UINT16] = {"u16", 2},   [SM_GGUF_INT16] = {"i16", 2},
    [SM_GGUF_UINT32] = {"u32", 4},   [SM_GGUF_INT32] = {"i32", 4},
    [SM_GGUF_FLOAT32] = {"f32", 4},  [SM_GGUF_BOOL] = {"bool", 1},
    [SM_GGUF_STRING] = {"str", 0},   [SM_GGUF_ARRAY] = {"arr", 0},
    [SM_GGUF_UINT64] = {"u64", 8},   [SM_GGUF_INT64] = {"i64", 8},
    [SM_GGUF_FLOAT64] = {"f64", 8},
};
#define N_VTYPES (sizeof VTYPES / sizeof VTYPES[0])

bool gguf_vtype_valid(uint32_t t) { return t < N_VTYPES; }

size_t gguf_vtype_size(sm_gguf_vtype t) { return gguf_vtype_valid((uint32_t)t) ? VTYPES[t].size : 0; }

const char *sm_gguf_vtype_name(sm_gguf_vtype t) { return gguf_vtype_valid((uint32_t)t) ? VTYPES[t].name : "?"; }

void gguf_value_clear(sm_gguf_value *v) {
    if (v->type == SM_GGUF_STRING) {
        free(v->v.str.ptr);
    } else if (v->type == SM_GGUF_ARRAY) {
        if (v->v.arr.items)
            for (uint64_t i = 0; i < v->v.arr.n; i++) gguf_value_clear(&v->v.arr.items[i]);
        free(v->v.arr.items);
        free(v->v.arr.data);
    }
    memset(v, 0, sizeof *v);
}

static int copy_depth(sm_gguf_value *dst, const sm_gguf_value *src, int depth) {
    memset(dst, 0, sizeof *dst);
    if (!gguf_vtype_valid((uint32_t)src->type)) return sm_error("GGUF value of unknown type %d", (int)src->type);
    if (depth > GGUF_MAX_NESTING) return sm_error("GGUF arrays nested deeper than %d levels", GGUF_MAX_NESTING);
    dst->type = src->type;
    if (src->type == SM_GGUF_STRING) {
        const char *s = src->v.str.ptr ? src->v.str.ptr : "";
        uint64_t len = src->v.str.ptr ? src->v.str.len : 0;
        dst->v.str.ptr = malloc((size_t)len + 1);
        if (!dst->v.str.ptr) return sm_error("out of memory copying a GGUF string");
        memcpy(dst->v.str.ptr, s, (size_t)len);
        dst->v.str.ptr[len] = 0;
        dst->v.str.len = len;
        return 0;
    }
    if (src->type != SM_GGUF_ARRAY) {
        dst->v = src->v;
        return 0;
    }
    sm_gguf_vtype et = src->v.arr.type;
    uint64_t n = src->v.arr.n;
    if (!gguf_vtype_valid((uint32_t)et)) return sm_error("GGUF array of unknown element type %d", (int)et);
    dst->v.arr.type = et;
    size_t es = gguf_vtype_size(et);
    if (es) {
        if (n && !src->v.arr.data) return sm_error("GGUF array of %llu elements without data", (unsigned long long)n);
        if (n > SIZE_MAX / es) return sm_error("GGUF array too large");
        dst->v.arr.data = malloc(n ? (size_t)n * es : 1);
        if (!dst->v.arr.data) return sm_error("out of memory copying a GGUF array");
        if (n) memcpy(dst->v.arr.data, src->v.arr.data, (size_t)n * es);
        dst->v.arr.n = n;
        return 0;
    }
    if (n && !src->v.arr.items) return sm_error("GGUF array of %llu elements without items", (unsigned long long)n);
    if (n > SIZE_MAX / sizeof(sm_gguf_value)) return sm_error("GGUF array too large");
    dst->v.arr.items = calloc(n ? (size_t)n : 1, sizeof(sm_gguf_value));
    if (!dst->v.arr.items) return sm_error("out of memory copying a GGUF array");
    dst->v.arr.n = n;
    for (uint64_t i = 0; i < n; i++) {
        if (src->v.arr.items[i].type != et) {
            gguf_value_clear(dst);
            return sm_error("GGUF array of %s holds an element of type %s", sm_gguf_vtype_name(et),
                            sm_gguf_vtype_name(src->v.arr.items[i].type));
        }
        if (copy_depth(&dst->v.arr.items[i], &src->v.arr.items[i], depth + 1)) {
            gguf_value_clear(dst);
            return -1;
        }
    }
    return 0;
}

int gguf_value_copy(sm_gguf_value *dst, const sm_gguf_value *src) { return copy_depth(dst, src, 1); }

/* ---- name index ---- */

static size_t hash_name(const char *s) { return (size_t)XXH3_64bits(s, strlen(s)); }

static int grow(gguf_index *ix) {
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    size_t *slots = calloc(cap, sizeof *slots);
    const char **names = calloc(cap, sizeof *names);
    if (!slots || !names) {
        free(slots);
        free(names);
        return -1;
    }
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->slots[i]) continue;
        size_t h = hash_name(ix->names[i]) & (cap - 1);
        while (slots[h]) h = (h + 1) & (cap - 1);
        slots[h] = ix->slots[i];
        names[h] = ix->names[i];
    }
    free(ix->slots);
    free(ix->names);
    ix->slots = slots;
    ix->names = names;
    ix->cap = cap;
    return 0;
}

int gguf_index_add(gguf_index *ix, const char *name, size_t idx, size_t *existing) {
    if ((ix->n + 1) * 2 > ix->cap && grow(ix)) return -1;
    size_t h = hash_name(name) & (ix->cap - 1);
    while (ix->slots[h]) {
        if (strcmp(ix->names[h], name) == 0) {
            if (existing) *existing = ix->slots[h] - 1;
            return 0;
        }
        h = (h + 1) & (ix->cap - 1);
    }
    ix->slots[h] = idx + 1;
    ix->names[h] = name;
    ix->n++;
    return 1;
}

long long gguf_index_find(const gguf_index *ix, const char *name) {
    if (!ix->cap || !name) return -1;
    size_t h = hash_name(name) & (ix->cap - 1);
    while (ix->slots[h]) {
        if (strcmp(ix->names[h], name) == 0) return (long long)(ix->slots[h] - 1);
        h = (h + 1) & (ix->cap - 1);
    }
    return -1;
}

void gguf_index_free(gguf_index *ix) {
    free(ix->slots);
    free(ix->names);
    memset(ix, 0, sizeof *ix);
}
