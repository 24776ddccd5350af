/* fuzz_gguf.c - libFuzzer target for the GGUF reader: parse arbitrary bytes with
 * sm_gguf_open_mem and, when they parse, touch everything the reader exposes (every value,
 * every tensor's first and last byte, lookups and typed getters) so that ASan sees any
 * out-of-bounds view. */
#include "formats/formats.h"

#include <string.h>

static volatile uint64_t g_sink;

static void touch_value(const sm_gguf_value *v) {
    switch (v->type) {
    case SM_GGUF_STRING: g_sink += v->v.str.len + (uint8_t)v->v.str.ptr[v->v.str.len]; break;
    case SM_GGUF_ARRAY:
        g_sink += v->v.arr.n;
        if (v->v.arr.items)
            for (uint64_t i = 0; i < v->v.arr.n; i++) touch_value(&v->v.arr.items[i]);
        else if (v->v.arr.n)
            g_sink += ((const uint8_t *)v->v.arr.data)[0];
        break;
    default: g_sink += v->v.u; break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sm_gguf *g;
    if (sm_gguf_open_mem(data, size, "fuzz", &g)) return 0;
    for (size_t i = 0; i < sm_gguf_n_kv(g); i++) {
        const char *key = sm_gguf_key(g, i);
        if (sm_gguf_find(g, key) != sm_gguf_val(g, i)) __builtin_trap();
        touch_value(sm_gguf_val(g, i));
        uint64_t u;
        int64_t s;
        double f;
        bool b;
        if (!sm_gguf_get_u64(g, key, &u)) g_sink += u;
        if (!sm_gguf_get_i64(g, key, &s)) g_sink += (uint64_t)s;
        if (!sm_gguf_get_f64(g, key, &f)) g_sink += (uint64_t)(f == f);
        if (!sm_gguf_get_bool(g, key, &b)) g_sink += b;
        const char *str = sm_gguf_get_str(g, key);
        if (str) g_sink += strlen(str);
    }
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        if (sm_gguf_find_tensor(g, t->name) != t) __builtin_trap();
        if (t->nbytes) {
            const uint8_t *p = t->data;
            g_sink += p[0] + p[t->nbytes - 1];
        }
    }
    g_sink += sm_gguf_version(g) + sm_gguf_alignment(g) + sm_gguf_data_offset(g);
    sm_gguf_close(g);
    return 0;
}
