/* meta.c - sm_meta: an ordered metadata key/value list (GGUF value types), independent of any
 * output file. Keys keep the order in which they were first set; setting a key again replaces
 * its value in place (ggml's order for the keys producers set). A bad set_* call (empty key,
 * NULL string, out of memory) is remembered and reported by sm_meta_error, so that producers can
 * set many keys and check once (every sink checks before it creates a file). */
#include "gguf_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct sm_meta {
    size_t n_kv, cap_kv;
    char **keys;
    sm_gguf_value *vals;
    char deferred[512]; /* the first error from a set_* call ("" if none) */
    bool frozen;        /* an output began: no more changes */
};

sm_meta *sm_meta_new(void) {
    sm_meta *m = calloc(1, sizeof *m);
    if (!m) sm_error("out of memory");
    return m;
}

void sm_meta_free(sm_meta *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_kv; i++) {
        free(m->keys[i]);
        gguf_value_clear(&m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    free(m);
}

size_t sm_meta_n(const sm_meta *m) { return m ? m->n_kv : 0; }
const char *sm_meta_key(const sm_meta *m, size_t i) { return m->keys[i]; }
const sm_gguf_value *sm_meta_val(const sm_meta *m, size_t i) { return &m->vals[i]; }
const char *sm_meta_error(const sm_meta *m) { return m->deferred; }
void sm_meta_freeze(sm_meta *m, bool frozen) { m->frozen = frozen; }

static void defer(sm_meta *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void defer(sm_meta *w, const char *fmt, ...) {
    if (w->deferred[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->deferred, sizeof w->deferred, fmt, ap);
    va_end(ap);
}

static long find_key(const sm_meta *w, const char *key) {
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) return (long)i;
    return -1;
}

static bool key_ok(sm_meta *w, const char *key) {
    if (!key || !*key) {
        defer(w, "metadata key is empty");
        return false;
    }
    if (strlen(key) > GGUF_MAX_KEY_LEN) {
        defer(w, "metadata key '%.40s...' is longer than %d bytes", key, GGUF_MAX_KEY_LEN);
        return false;
    }
    if (w->frozen) {
        defer(w, "metadata key '%s' set after the output began", key);
        return false;
    }
    return true;
}

/* Store v (ownership moves to the writer) under key: replace in place or append. */
static void put(sm_meta *w, const char *key, sm_gguf_value *v) {
    long i = find_key(w, key);
    if (i >= 0) {
        gguf_value_clear(&w->vals[i]);
        w->vals[i] = *v;
        return;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (k) w->keys = k;
        sm_gguf_value *vs = k ? realloc(w->vals, cap * sizeof *vs) : NULL;
        if (vs) w->vals = vs;
        if (!k || !vs) {
            gguf_value_clear(v);
            defer(w, "metadata: out of memory");
            return;
        }
        w->cap_kv = cap;
    }
    char *kc = strdup(key);
    if (!kc) {
        gguf_value_clear(v);
        defer(w, "metadata: out of memory");
        return;
    }
    w->keys[w->n_kv] = kc;
    w->vals[w->n_kv] = *v;
    w->n_kv++;
}

static void put_scalar(sm_meta *w, const char *key, sm_gguf_vtype t, uint64_t u, int64_t i, double f) {
    if (!w || !key_ok(w, key)) return;
    sm_gguf_value v = {.type = t};
    if (t == SM_GGUF_INT32) v.v.i = i;
    else if (t == SM_GGUF_FLOAT32) v.v.f = f;
    else v.v.u = u;
    put(w, key, &v);
}

void sm_meta_set_u8(sm_meta *w, const char *key, uint8_t v) { put_scalar(w, key, SM_GGUF_UINT8, v, 0, 0); }
void sm_meta_set_u16(sm_meta *w, const char *key, uint16_t v) { put_scalar(w, key, SM_GGUF_UINT16, v, 0, 0); }
void sm_meta_set_u32(sm_meta *w, const char *key, uint32_t v) { put_scalar(w, key, SM_GGUF_UINT32, v, 0, 0); }
void sm_meta_set_i32(sm_meta *w, const char *key, int32_t v) { put_scalar(w, key, SM_GGUF_INT32, 0, v, 0); }
void sm_meta_set_u64(sm_meta *w, const char *key, uint64_t v) { put_scalar(w, key, SM_GGUF_UINT64, v, 0, 0); }
void sm_meta_set_f32(sm_meta *w, const char *key, float v) { put_scalar(w, key, SM_GGUF_FLOAT32, 0, 0, v); }
void sm_meta_set_bool(sm_meta *w, const char *key, bool v) { put_scalar(w, key, SM_GGUF_BOOL, v, 0, 0); }

void sm_meta_set_str(sm_meta *w, const char *key, const char *s) {
    if (!w || !key_ok(w, key)) return;
    if (!s) {
        defer(w, "metadata key '%s': NULL string", key);
        return;
    }
    sm_gguf_value v = {.type = SM_GGUF_STRING};
    v.v.str.ptr = strdup(s);
    v.v.str.len = strlen(s);
    if (!v.v.str.ptr) {
        defer(w, "metadata: out of memory");
        return;
    }
    put(w, key, &v);
}

void sm_meta_set_arr_str(sm_meta *w, const char *key, const char *const *s, size_t n) {
    if (!w || !key_ok(w, key)) return;
    if (n && !s) {
        defer(w, "metadata key '%s': NULL string array", key);
        return;
    }
    sm_gguf_value v = {.type = SM_GGUF_ARRAY};
    v.v.arr.type = SM_GGUF_STRING;
    v.v.arr.items = calloc(n ? n : 1, sizeof(sm_gguf_value));
    if (!v.v.arr.items) {
        defer(w, "metadata: out of memory");
        return;
    }
    v.v.arr.n = n;
    for (size_t i = 0; i < n; i++) {
        sm_gguf_value *it = &v.v.arr.items[i];
        it->type = SM_GGUF_STRING;
        if (!s[i]) {
            gguf_value_clear(&v);
            defer(w, "metadata key '%s': string %zu is NULL", key, i);
            return;
        }
        it->v.str.ptr = strdup(s[i]);
        it->v.str.len = strlen(s[i]);
        if (!it->v.str.ptr) {
            gguf_value_clear(&v);
            defer(w, "metadata: out of memory");
            return;
        }
    }
    put(w, key, &v);
}

void sm_meta_set_arr(sm_meta *w, const char *key, sm_gguf_vtype et, const void *data, size_t n) {
    if (!w || !key_ok(w, key)) return;
    size_t es = gguf_vtype_size(et);
    if (!es) {
        defer(w, "metadata key '%s': sm_meta_set_arr needs a fixed-size element type, not %s", key,
              sm_gguf_vtype_name(et));
        return;
    }
    if (n && !data) {
        defer(w, "metadata key '%s': NULL array data", key);
        return;
    }
    if (n > SIZE_MAX / es) {
        defer(w, "metadata key '%s': array too large", key);
        return;
    }
    sm_gguf_value v = {.type = SM_GGUF_ARRAY};
    v.v.arr.type = et;
    v.v.arr.n = n;
    v.v.arr.data = malloc(n ? n * es : 1);
    if (!v.v.arr.data) {
        defer(w, "metadata: out of memory");
        return;
    }
    if (n) memcpy(v.v.arr.data, data, n * es);
    if (et == SM_GGUF_BOOL) /* bools are stored as 0 / 1 */
        for (size_t i = 0; i < n; i++) ((uint8_t *)v.v.arr.data)[i] = ((uint8_t *)v.v.arr.data)[i] != 0;
    put(w, key, &v);
}

void sm_meta_set_val(sm_meta *w, const char *key, const sm_gguf_value *src) {
    if (!w || !key_ok(w, key)) return;
    sm_gguf_value v;
    if (!src || gguf_value_copy(&v, src)) {
        defer(w, "metadata key '%s': %s", key, src ? sm_last_error() : "NULL value");
        return;
    }
    if (v.type == SM_GGUF_BOOL) v.v.u = v.v.u != 0;
    put(w, key, &v);
}

void sm_meta_remove(sm_meta *w, const char *key) {
    if (!w || !key) return;
    if (w->frozen) {
        defer(w, "metadata key '%s' removed after the output began", key);
        return;
    }
    long i = find_key(w, key);
    if (i < 0) return;
    free(w->keys[i]);
    gguf_value_clear(&w->vals[i]);
    memmove(&w->keys[i], &w->keys[i + 1], (w->n_kv - (size_t)i - 1) * sizeof *w->keys);
    memmove(&w->vals[i], &w->vals[i + 1], (w->n_kv - (size_t)i - 1) * sizeof *w->vals);
    w->n_kv--;
}

void sm_meta_set_quantization_keys(sm_meta *w, uint32_t file_type) {
    sm_meta_remove(w, "general.quantization_version");
    sm_meta_remove(w, "general.file_type");
    sm_meta_set_u32(w, "general.quantization_version", 2);
    sm_meta_set_u32(w, "general.file_type", file_type);
}

void sm_meta_set_quantized(sm_meta *w, const sm_gguf *src, uint32_t file_type) {
    for (size_t i = 0; i < sm_gguf_n_kv(src); i++) sm_meta_set_val(w, sm_gguf_key(src, i), sm_gguf_val(src, i));
    sm_meta_remove(w, "split.no");
    sm_meta_remove(w, "split.count");
    sm_meta_remove(w, "split.tensors.count");
    sm_meta_set_quantization_keys(w, file_type);
}


const sm_gguf_value *sm_meta_find(const sm_meta *m, const char *key) {
    long i = find_key(m, key);
    return i < 0 ? NULL : &m->vals[i];
}

void sm_meta_set_all(sm_meta *dst, const sm_meta *src) {
    for (size_t i = 0; i < src->n_kv; i++) sm_meta_set_val(dst, src->keys[i], &src->vals[i]);
    if (src->deferred[0]) defer(dst, "%s", src->deferred);
}
