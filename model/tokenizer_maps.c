/* tokenizer_maps.c - growable arrays and the token text -> id hash table of the tokenizers. */
#include "tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return sm_error("tokenizer: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

int sm_u32vec_push(sm_u32vec *a, uint32_t x) {
    if (grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v)) return -1;
    a->v[a->n++] = x;
    return 0;
}

int sm_i32vec_push(sm_i32vec *a, int32_t x) {
    if (grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v)) return -1;
    a->v[a->n++] = x;
    return 0;
}

int sm_bytevec_append(sm_bytevec *a, const void *p, size_t n) {
    if (grow((void **)&a->v, &a->cap, a->n + n + 1, 1)) return -1;
    memcpy(a->v + a->n, p, n);
    a->n += n;
    a->v[a->n] = 0;
    return 0;
}

int sm_strmap_init(sm_strmap *m, const char *const *text, const uint32_t *len, int32_t n) {
    memset(m, 0, sizeof *m);
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)n) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    m->hashes = malloc(cap * sizeof *m->hashes);
    if (!m->slots || !m->hashes) {
        sm_strmap_free(m);
        return sm_error("tokenizer: out of memory");
    }
    memset(m->slots, 0xff, cap * sizeof *m->slots);
    m->mask = cap - 1;
    m->text = text;
    m->len = len;
    for (int32_t id = 0; id < n; id++) {
        uint64_t h = XXH3_64bits(text[id], len[id]);
        uint32_t i = (uint32_t)h & m->mask;
        for (;; i = (i + 1) & m->mask) {
            int32_t s = m->slots[i];
            if (s < 0) break;
            if (m->hashes[i] == h && len[s] == len[id] && memcmp(text[s], text[id], len[id]) == 0) break;
        }
        m->slots[i] = id; /* a repeated text: the later id replaces the earlier */
        m->hashes[i] = h;
    }
    return 0;
}

int32_t sm_strmap_find(const sm_strmap *m, const char *s, size_t n) {
    uint64_t h = XXH3_64bits(s, n);
    for (uint32_t i = (uint32_t)h & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slots[i];
        if (id < 0) return -1;
        if (m->hashes[i] == h && m->len[id] == n && memcmp(m->text[id], s, n) == 0) return id;
    }
}

void sm_strmap_free(sm_strmap *m) {
    free(m->slots);
    free(m->hashes);
    memset(m, 0, sizeof *m);
}
