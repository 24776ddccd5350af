/* tokenizer_spm.c - SentencePiece-style BPE by piece scores, as llama.cpp's llm_tokenizer_spm:
 * the text (with the dummy-prefix space) has its spaces replaced by U+2581, is cut into UTF-8
 * characters, and adjacent symbols are merged while their concatenation is a token, always
 * taking the pair whose token has the highest score (ties: the leftmost). What is left that is
 * not a token falls back to byte tokens <0xXX>. */
#include "tokenizer_internal.h"
#include "unicode_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct sym {
    int32_t prev, next;
    uint32_t off, n; /* bytes in the escaped text; n == 0 once merged into its left neighbour */
} sym;

typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of both symbols when the pair was queued */
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
} heap;

/* a comes out of the queue before b */
static bool before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static int heap_push(heap *h, bigram x) {
    if (h->n == h->cap) {
        size_t c = h->cap ? h->cap * 2 : 64;
        bigram *p = realloc(h->v, c * sizeof *p);
        if (!p) return sm_error("tokenizer: out of memory");
        h->v = p;
        h->cap = c;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&x, &h->v[parent])) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = x;
    return 0;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c])) c++;
        if (!before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct session {
    const sm_tokenizer *t;
    const char *buf;
    sym *s;
    heap q;
} session;

static int try_add(session *ss, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return 0;
    uint32_t size = ss->s[l].n + ss->s[r].n;
    int32_t id = sm_strmap_find(&ss->t->map, ss->buf + ss->s[l].off, size);
    if (id < 0) return 0;
    return heap_push(&ss->q, (bigram){ss->t->scores[id], l, r, size});
}

/* One final symbol: its token, or its bytes as byte tokens, or (a vocabulary without byte
 * fallback, where llama.cpp would fail) the unknown token. */
static int emit(const sm_tokenizer *t, const char *s, uint32_t n, sm_i32vec *out) {
    int32_t id = sm_strmap_find(&t->map, s, n);
    if (id >= 0) return sm_i32vec_push(out, id);
    bool all = true;
    for (uint32_t k = 0; k < n; k++) all &= t->byte_token[(uint8_t)s[k]] >= 0;
    if (all) {
        for (uint32_t k = 0; k < n; k++)
            if (sm_i32vec_push(out, t->byte_token[(uint8_t)s[k]])) return -1;
        return 0;
    }
    if (t->unk >= 0) return sm_i32vec_push(out, t->unk);
    return sm_error("tokenizer: no token, byte token or unknown token for text byte 0x%02x", (uint8_t)s[0]);
}

/* Merge the symbols first..last-1 (linked among themselves) and append their tokens. */
static int merge_run(session *ss, int32_t first, int32_t last, sm_i32vec *out) {
    if (first >= last) return 0;
    for (int32_t i = first; i < last; i++) {
        ss->s[i].prev = i == first ? -1 : i - 1;
        ss->s[i].next = i + 1 == last ? -1 : i + 1;
    }
    int rc = 0;
    ss->q.n = 0;
    for (int32_t i = first + 1; i < last && !rc; i++) rc = try_add(ss, i - 1, i);
    while (!rc && ss->q.n) {
        bigram b = heap_pop(&ss->q);
        sym *l = &ss->s[b.left], *r = &ss->s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale: a side has changed */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) ss->s[r->next].prev = b.left;
        rc = try_add(ss, l->prev, b.left);
        if (!rc) rc = try_add(ss, b.left, l->next);
    }
    for (int32_t i = first; i >= 0 && !rc; i = ss->s[i].next) rc = emit(ss->t, ss->buf + ss->s[i].off, ss->s[i].n, out);
    return rc;
}

int sm_spm_encode(const sm_tokenizer *t, const char *text, size_t len, bool prefix, sm_i32vec *out) {
    if (len > (UINT32_MAX - 3) / 3) return sm_error("tokenizer: text of %zu bytes is too long for one piece", len);
    /* escaped text: "▁" + text with every ' ' as "▁" */
    char *buf = malloc(3 * len + 3);
    if (!buf) return sm_error("tokenizer: out of memory");
    size_t n = 0;
    if (prefix) {
        memcpy(buf, "\xE2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(buf + n, "\xE2\x96\x81", 3);
            n += 3;
        } else {
            buf[n++] = text[i];
        }
    }
    session ss = {t, buf, malloc((n ? n : 1) * sizeof(sym)), {0}};
    if (!ss.s) {
        free(buf);
        return sm_error("tokenizer: out of memory");
    }
    int32_t ns = 0;
    for (size_t off = 0; off < n; ns++) {
        size_t cl = sm_utf8_len((uint8_t)buf[off]);
        if (cl > n - off) cl = n - off;
        ss.s[ns] = (sym){-1, -1, (uint32_t)off, (uint32_t)cl};
        off += cl;
    }
    /* A one-byte symbol whose byte is in no longer token can never be merged with its
     * neighbours, so the text is cut around it and each run merged on its own (same result as
     * one run over everything, with a small queue). */
    int rc = 0;
    int32_t first = 0;
    for (int32_t i = 0; i < ns && !rc; i++) {
        uint8_t c = (uint8_t)buf[ss.s[i].off];
        if (ss.s[i].n == 1 && c < 128 && t->spm_isolated[c]) {
            rc = merge_run(&ss, first, i, out);
            if (!rc) rc = merge_run(&ss, i, i + 1, out);
            first = i + 1;
        }
    }
    if (!rc) rc = merge_run(&ss, first, ns, out);
    free(ss.q.v);
    free(ss.s);
    free(buf);
    return rc;
}
