/* tokenizer_bpe.c - GPT-2 byte-level BPE as llama.cpp's llm_tokenizer_bpe: the text is split
 * into words by the pre-tokenizer (pretokenize.c), each word's bytes are written in GPT-2's
 * byte alphabet, and adjacent symbols are merged by merge rank (lowest first; ties: leftmost).
 * The llama3 family takes a word that is itself a token whole (ignore_merges). */
#include "tokenizer_internal.h"
#include "unicode_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- pre-tokenizer names, as llama.cpp's llama_vocab::impl::load groups them ---- */
typedef struct pre_name {
    const char *name;
    sm_pre_kind kind;
    bool llama3_defaults; /* ignore_merges and add_bos by default */
} pre_name;

static const pre_name PRE_NAMES[] = {
    {"gpt-2", SM_PRE_GPT2, false},        {"phi-2", SM_PRE_GPT2, false},      {"jina-es", SM_PRE_GPT2, false},
    {"jina-de", SM_PRE_GPT2, false},      {"gigachat", SM_PRE_GPT2, false},   {"jina-v2-es", SM_PRE_GPT2, false},
    {"jina-v2-de", SM_PRE_GPT2, false},   {"a.x-4.0", SM_PRE_GPT2, false},    {"mellum", SM_PRE_GPT2, false},
    {"modern-bert", SM_PRE_GPT2, false},  {"exaone4", SM_PRE_GPT2, false},    {"mpt", SM_PRE_GPT2, false},
    {"olmo", SM_PRE_GPT2, false},         {"jais", SM_PRE_GPT2, false},       {"trillion", SM_PRE_GPT2, false},
    {"granite-docling", SM_PRE_GPT2, false},
    {"llama3", SM_PRE_LLAMA3, true},      {"llama-v3", SM_PRE_LLAMA3, true}, {"llama-bpe", SM_PRE_LLAMA3, true},
    {"falcon3", SM_PRE_LLAMA3, true},     {"falcon-h1", SM_PRE_LLAMA3, true}, {"pixtral", SM_PRE_LLAMA3, true},
    {"midm-2.0", SM_PRE_LLAMA3, true},    {"lfm2", SM_PRE_LLAMA3, true},      {"jina-v5-nano", SM_PRE_LLAMA3, true},
    {"dbrx", SM_PRE_LLAMA3, false},       {"smaug-bpe", SM_PRE_LLAMA3, false},
    {"qwen2", SM_PRE_QWEN2, false},       {"deepseek-r1-qwen", SM_PRE_QWEN2, false}, {"kormo", SM_PRE_QWEN2, false},
    {"f2llmv2", SM_PRE_QWEN2, false},     {"megrez", SM_PRE_QWEN2, false},    {"stablelm2", SM_PRE_QWEN2, false},
    {"hunyuan", SM_PRE_QWEN2, false},     {"solar-open", SM_PRE_QWEN2, false},
    {"gpt-4o", SM_PRE_GPT4O, false},      {"llama4", SM_PRE_GPT4O, false},    {"kanana2", SM_PRE_GPT4O, false},
    {"talkie", SM_PRE_GPT4O, false},
};

/* ---- (left id, right id) -> merge ---- */
static uint64_t pair_key(int32_t l, int32_t r) { return ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1; }
static uint32_t pair_slot(uint64_t key, uint32_t mask) { return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask; }

static const sm_merge *pair_find(const sm_pairmap *m, int32_t l, int32_t r) {
    if (!m->keys) return NULL;
    uint64_t key = pair_key(l, r);
    for (uint32_t i = pair_slot(key, m->mask);; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) return &m->vals[i];
        if (m->keys[i] == 0) return NULL;
    }
}

int sm_bpe_init(sm_tokenizer *t, const sm_vocab *v) {
    const pre_name *pn = NULL;
    for (size_t i = 0; i < sizeof PRE_NAMES / sizeof PRE_NAMES[0]; i++)
        if (strcmp(v->pre, PRE_NAMES[i].name) == 0) pn = &PRE_NAMES[i];
    if (!pn)
        return sm_error("vocabulary: BPE pre-tokenizer '%s' is not supported (supported: the gpt-2, llama3 "
                        "(llama-bpe), qwen2 and gpt-4o families)", v->pre);
    t->pre = pn->kind;
    t->ignore_merges = pn->llama3_defaults;
    if (pn->llama3_defaults && !(v->explicit_flags & SM_VOCAB_HAS_ADD_BOS)) t->add_bos = true;

    for (int b = 0; b < 256; b++)
        t->byte_utf8_len[b] = (uint8_t)sm_utf8_encode(sm_gpt2_byte_cp((uint8_t)b), t->byte_utf8[b]);

    if (v->n_merges < 0 || (v->n_merges > 0 && !v->merges)) return sm_error("vocabulary: bad merge list");
    uint32_t cap = 16;
    while (cap < 2u * (uint32_t)v->n_merges) cap *= 2;
    sm_pairmap *m = &t->merges;
    m->mask = cap - 1;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    if (!m->keys || !m->vals) return sm_error("tokenizer: out of memory");
    for (int32_t i = 0; i < v->n_merges; i++) {
        const char *s = v->merges[i] ? v->merges[i] : "";
        const char *sp = *s ? strchr(s + 1, ' ') : NULL; /* the first space after the first byte */
        if (!sp) return sm_error("vocabulary: merge %d \"%s\" is not \"LEFT RIGHT\"", i, s);
        size_t ll = (size_t)(sp - s), rl = strlen(sp + 1);
        int32_t l = sm_strmap_find(&t->map, s, ll);
        int32_t r = sm_strmap_find(&t->map, sp + 1, rl);
        if (l < 0 || r < 0)
            return sm_error("vocabulary: merge %d \"%s\": \"%.*s\" is not a token", i, s, (int)(l < 0 ? ll : rl),
                            l < 0 ? s : sp + 1);
        char *cat = malloc(ll + rl + 1);
        if (!cat) return sm_error("tokenizer: out of memory");
        memcpy(cat, s, ll);
        memcpy(cat + ll, sp + 1, rl);
        int32_t res = sm_strmap_find(&t->map, cat, ll + rl);
        free(cat);
        if (res < 0) return sm_error("vocabulary: merge %d \"%s\": the merged text is not a token", i, s);
        uint64_t key = pair_key(l, r);
        uint32_t k = pair_slot(key, m->mask);
        while (m->keys[k] && m->keys[k] != key) k = (k + 1) & m->mask;
        if (m->keys[k]) continue; /* a repeated merge keeps its first rank */
        m->keys[k] = key;
        m->vals[k] = (sm_merge){i, res};
    }
    return 0;
}

/* ---- merging one word ---- */

typedef struct sym {
    int32_t prev, next;
    uint32_t off, n; /* n == 0 once merged into its left neighbour */
    int32_t id;      /* token of the symbol's text, -1 if none */
} sym;

typedef struct bigram {
    int32_t rank, left, right;
    int32_t result; /* the merged token */
    uint32_t size;
} bigram;

typedef struct work {
    sym *s;
    size_t s_cap;
    bigram *q;
    size_t q_n, q_cap;
    sm_u32vec cps, lens;
    sm_bytevec word;
} work;

static bool before(const bigram *a, const bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int q_push(work *w, bigram x) {
    if (w->q_n == w->q_cap) {
        size_t c = w->q_cap ? w->q_cap * 2 : 64;
        bigram *p = realloc(w->q, c * sizeof *p);
        if (!p) return sm_error("tokenizer: out of memory");
        w->q = p;
        w->q_cap = c;
    }
    size_t i = w->q_n++;
    while (i > 0 && before(&x, &w->q[(i - 1) / 2])) {
        w->q[i] = w->q[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->q[i] = x;
    return 0;
}

static bigram q_pop(work *w) {
    bigram top = w->q[0], last = w->q[--w->q_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->q_n) break;
        if (c + 1 < w->q_n && before(&w->q[c + 1], &w->q[c])) c++;
        if (!before(&w->q[c], &last)) break;
        w->q[i] = w->q[c];
        i = c;
    }
    if (w->q_n) w->q[i] = last;
    return top;
}

static int add_bigram(const sm_tokenizer *t, work *w, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || w->s[l].id < 0 || w->s[r].id < 0) return 0;
    const sm_merge *m = pair_find(&t->merges, w->s[l].id, w->s[r].id);
    if (!m) return 0;
    return q_push(w, (bigram){m->rank, l, r, m->result, w->s[l].n + w->s[r].n});
}

static int merge_word(const sm_tokenizer *t, work *w, const char *word, size_t n, sm_i32vec *out) {
    if (t->ignore_merges) {
        int32_t id = sm_strmap_find(&t->map, word, n);
        if (id >= 0) return sm_i32vec_push(out, id);
    }
    if (n > w->s_cap) {
        sym *p = realloc(w->s, n * sizeof *p);
        if (!p) return sm_error("tokenizer: out of memory");
        w->s = p;
        w->s_cap = n;
    }
    int32_t ns = 0;
    for (size_t off = 0; off < n;) {
        size_t cl = sm_utf8_len((uint8_t)word[off]);
        if (cl > n - off) cl = n - off;
        w->s[ns] = (sym){ns - 1, off + cl == n ? -1 : ns + 1, (uint32_t)off, (uint32_t)cl,
                         sm_strmap_find(&t->map, word + off, cl)};
        ns++;
        off += cl;
    }
    w->q_n = 0;
    for (int32_t i = 1; i < ns; i++)
        if (add_bigram(t, w, i - 1, i)) return -1;
    while (w->q_n) {
        bigram b = q_pop(w);
        sym *l = &w->s[b.left], *r = &w->s[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->id = b.result; /* not stale: l and r hold the ids the pair was queued with */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->s[r->next].prev = b.left;
        if (add_bigram(t, w, l->prev, b.left) || add_bigram(t, w, b.left, l->next)) return -1;
    }
    for (int32_t i = 0; i < ns; i = w->s[i].next < 0 ? ns : w->s[i].next) {
        const sym *s = &w->s[i];
        if (s->id >= 0) {
            if (sm_i32vec_push(out, s->id)) return -1;
            continue;
        }
        /* a character that is not a token (not in GPT-2 vocabularies): llama.cpp tries each of
         * its bytes as a one-byte token and drops the others */
        for (uint32_t k = 0; k < s->n; k++) {
            int32_t id = sm_strmap_find(&t->map, word + s->off + k, 1);
            if (id >= 0 && sm_i32vec_push(out, id)) return -1;
        }
    }
    return 0;
}

int sm_bpe_encode(const sm_tokenizer *t, const char *text, size_t len, sm_i32vec *out) {
    work w = {0};
    int rc = 0;
    for (size_t pos = 0; pos < len && !rc;) rc = sm_u32vec_push(&w.cps, sm_utf8_decode((const uint8_t *)text, len, &pos));
    if (!rc) rc = sm_pretokenize(t->pre, w.cps.v, w.cps.n, &w.lens);
    size_t start = 0;
    for (size_t k = 0; k < w.lens.n && !rc; k++) {
        w.word.n = 0;
        for (size_t i = start; i < start + w.lens.v[k] && !rc; i++) {
            char u[4];
            size_t ul = sm_utf8_encode(w.cps.v[i], u);
            for (size_t j = 0; j < ul && !rc; j++) {
                uint8_t b = (uint8_t)u[j];
                rc = sm_bytevec_append(&w.word, t->byte_utf8[b], t->byte_utf8_len[b]);
            }
        }
        start += w.lens.v[k];
        if (!rc) rc = merge_word(t, &w, w.word.v, w.word.n, out);
    }
    free(w.s);
    free(w.q);
    free(w.cps.v);
    free(w.lens.v);
    free(w.word.v);
    return rc;
}
