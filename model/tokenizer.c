/* tokenizer.c - the tokenizer object (copied vocabulary, lookup tables), tokenization around
 * the merge engines (special tokens found in the text first, BOS/EOS, the dummy prefix), and
 * the way back from ids to bytes. Behaviour follows llama.cpp's llama_vocab::impl::tokenize. */
#include "tokenizer_internal.h"
#include "unicode_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB (1 << 24)
#define MAX_TOKEN_BYTES (1 << 16)

void sm_tokenizer_free(sm_tokenizer *t) {
    if (!t) return;
    if (t->text)
        for (int32_t i = 0; i < t->n_tokens; i++) free(t->text[i]);
    free(t->text);
    free(t->len);
    free(t->scores);
    free(t->types);
    sm_strmap_free(&t->map);
    free(t->pieces);
    free(t->piece_off);
    free(t->special);
    free(t->merges.keys);
    free(t->merges.vals);
    free(t);
}

int32_t sm_tokenizer_n_vocab(const sm_tokenizer *t) { return t->n_tokens; }
int32_t sm_tokenizer_bos(const sm_tokenizer *t) { return t->bos; }
int32_t sm_tokenizer_eos(const sm_tokenizer *t) { return t->eos; }

static bool is_special_type(int32_t type) {
    return type == SM_TOKEN_CONTROL || type == SM_TOKEN_USER_DEFINED || type == SM_TOKEN_UNKNOWN;
}

/* "<0xAB>" -> 0xAB; -1 if the text is not of that form. */
static int byte_piece_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The bytes of one token (see sm_token_to_piece). */
static int decode_piece(const sm_tokenizer *t, int32_t id, sm_bytevec *out) {
    const char *s = t->text[id];
    size_t n = t->len[id];
    switch (t->types[id]) {
    case SM_TOKEN_CONTROL:
    case SM_TOKEN_UNKNOWN:
    case SM_TOKEN_USER_DEFINED:
        return sm_bytevec_append(out, s, n);
    case SM_TOKEN_BYTE: {
        int b = byte_piece_value(s, n);
        if (b < 0) return sm_bytevec_append(out, s, n);
        char c = (char)b;
        return sm_bytevec_append(out, &c, 1);
    }
    case SM_TOKEN_NORMAL:
        break;
    default:
        return 0; /* UNUSED and unknown types: nothing, as in llama.cpp */
    }
    if (t->kind == SM_VOCAB_SPM) { /* U+2581 -> ' ' */
        size_t i = 0;
        while (i < n) {
            if (n - i >= 3 && memcmp(s + i, "\xE2\x96\x81", 3) == 0) {
                if (sm_bytevec_append(out, " ", 1)) return -1;
                i += 3;
            } else {
                if (sm_bytevec_append(out, s + i, 1)) return -1;
                i++;
            }
        }
        return 0;
    }
    /* byte-level BPE: each character of the alphabet is one byte. A character outside it (not
     * produced by GPT-2 vocabularies) is kept as its UTF-8 text. */
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        uint32_t cp = sm_utf8_decode((const uint8_t *)s, n, &i);
        int b = sm_gpt2_cp_byte(cp);
        char c = (char)b;
        if (b >= 0 ? sm_bytevec_append(out, &c, 1) : sm_bytevec_append(out, s + start, i - start)) return -1;
    }
    return 0;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const sm_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->len[x] != t->len[y]) return t->len[x] > t->len[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int32_t special_id(int32_t given, int32_t dflt, int32_t n, const char *what) {
    if (given >= n) return sm_error("vocabulary: %s id %d is out of range (%d tokens)", what, given, n), -2;
    if (given >= 0) return given;
    return dflt < n ? dflt : -1;
}

int sm_tokenizer_new(const sm_vocab *v, sm_tokenizer **out) {
    *out = NULL;
    if (v->n_tokens <= 0 || !v->tokens) return sm_error("vocabulary: no tokens");
    if (v->n_tokens > MAX_VOCAB) return sm_error("vocabulary: %d tokens, more than the %d supported", v->n_tokens, MAX_VOCAB);
    if (v->kind != SM_VOCAB_SPM && v->kind != SM_VOCAB_BPE) return sm_error("vocabulary: unknown kind %d", (int)v->kind);
    sm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return sm_error("tokenizer: out of memory");
    int32_t n = v->n_tokens;
    t->kind = v->kind;
    t->n_tokens = n;
    t->text = calloc((size_t)n, sizeof *t->text);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->scores = malloc((size_t)n * sizeof *t->scores);
    t->types = malloc((size_t)n * sizeof *t->types);
    t->piece_off = malloc(((size_t)n + 1) * sizeof *t->piece_off);
    if (!t->text || !t->len || !t->scores || !t->types || !t->piece_off) goto oom;
    for (int32_t i = 0; i < n; i++) {
        const char *s = v->tokens[i] ? v->tokens[i] : "";
        size_t len = strlen(s);
        if (len > MAX_TOKEN_BYTES) {
            sm_error("vocabulary: token %d is %zu bytes long, more than the %d supported", i, len, MAX_TOKEN_BYTES);
            goto fail;
        }
        if (len == 0) { /* llama.cpp renames empty tokens so that they can never match */
            char buf[32];
            snprintf(buf, sizeof buf, "[EMPTY_%d]", i);
            t->text[i] = strdup(buf);
        } else {
            t->text[i] = strdup(s);
        }
        if (!t->text[i]) goto oom;
        t->len[i] = (uint32_t)strlen(t->text[i]);
        t->scores[i] = v->scores ? v->scores[i] : 0.0f;
        t->types[i] = v->types ? v->types[i] : SM_TOKEN_NORMAL;
    }
    if (sm_strmap_init(&t->map, (const char *const *)t->text, t->len, n)) goto fail;

    bool spm = t->kind == SM_VOCAB_SPM;
    if ((t->bos = special_id(v->bos_id, spm ? 1 : n, n, "BOS")) == -2) goto fail;
    if ((t->eos = special_id(v->eos_id, spm ? 2 : n, n, "EOS")) == -2) goto fail;
    if ((t->unk = special_id(v->unk_id, spm ? 0 : n, n, "UNK")) == -2) goto fail;
    if (v->pad_id >= n) {
        sm_error("vocabulary: PAD id %d is out of range (%d tokens)", v->pad_id, n);
        goto fail;
    }
    t->add_bos = v->add_bos;
    t->add_eos = v->add_eos;
    t->add_space_prefix = spm && v->add_space_prefix;

    t->special = malloc((size_t)n * sizeof *t->special);
    if (!t->special) goto oom;
    for (int32_t i = 0; i < n; i++)
        if (is_special_type(t->types[i])) t->special[t->n_special++] = i;
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);

    if (spm) {
        for (int b = 0; b < 128; b++) t->spm_isolated[b] = true;
        for (int32_t i = 0; i < n; i++)
            if (t->len[i] > 1)
                for (uint32_t k = 0; k < t->len[i]; k++)
                    if ((uint8_t)t->text[i][k] < 128) t->spm_isolated[(uint8_t)t->text[i][k]] = false;
        for (int b = 0; b < 256; b++) {
            char hex[8], raw = (char)b;
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            int32_t id = sm_strmap_find(&t->map, hex, 6);
            t->byte_token[b] = id >= 0 ? id : sm_strmap_find(&t->map, &raw, 1);
        }
    } else if (sm_bpe_init(t, v)) {
        goto fail;
    }

    sm_bytevec pieces = {0};
    for (int32_t i = 0; i < n; i++) {
        t->piece_off[i] = pieces.n;
        if (decode_piece(t, i, &pieces)) {
            free(pieces.v);
            goto fail;
        }
    }
    t->piece_off[n] = pieces.n;
    t->pieces = pieces.v;
    *out = t;
    return 0;
oom:
    sm_error("tokenizer: out of memory");
fail:
    sm_tokenizer_free(t);
    return -1;
}

/* ---- tokenization ---- */

typedef struct frag {
    size_t off, len; /* raw text, when id < 0 */
    int32_t id;      /* a special token */
} frag;

typedef struct fragvec {
    frag *v;
    size_t n, cap;
} fragvec;

static int frag_push(fragvec *a, size_t off, size_t len, int32_t id) {
    if (a->n == a->cap) {
        size_t c = a->cap ? a->cap * 2 : 16;
        frag *p = realloc(a->v, c * sizeof *p);
        if (!p) return sm_error("tokenizer: out of memory");
        a->v = p;
        a->cap = c;
    }
    a->v[a->n++] = (frag){off, len, id};
    return 0;
}

/* Cut the raw fragments at every occurrence of each special token, longest tokens first (what
 * llama.cpp's tokenizer_st_partition does). */
static int partition(const sm_tokenizer *t, const char *text, size_t len, bool parse_special, fragvec *frags) {
    fragvec next = {0};
    if (len && frag_push(frags, 0, len, -1)) return -1;
    for (size_t k = 0; k < t->n_special; k++) {
        int32_t sid = t->special[k];
        if (!parse_special && t->types[sid] != SM_TOKEN_USER_DEFINED) continue;
        const char *st = t->text[sid];
        size_t sl = t->len[sid];
        next.n = 0;
        for (size_t f = 0; f < frags->n; f++) {
            frag fr = frags->v[f];
            if (fr.id >= 0 || fr.len < sl) {
                if (frag_push(&next, fr.off, fr.len, fr.id)) goto fail;
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            for (;;) {
                const char *m = memmem(text + pos, end - pos, st, sl);
                if (!m) break;
                size_t at = (size_t)(m - text);
                if (at > pos && frag_push(&next, pos, at - pos, -1)) goto fail;
                if (frag_push(&next, at, sl, sid)) goto fail;
                pos = at + sl;
            }
            if (pos < end && frag_push(&next, pos, end - pos, -1)) goto fail;
        }
        fragvec tmp = *frags;
        *frags = next;
        next = tmp;
    }
    free(next.v);
    return 0;
fail:
    free(next.v);
    return -1;
}

int sm_tokenize(const sm_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    bool add_special = flags & SM_TOK_ADD_SPECIAL;
    if (add_special && t->add_bos && t->bos < 0) return sm_error("tokenizer: the vocabulary asks for a BOS token but has none");
    if (add_special && t->add_eos && t->eos < 0) return sm_error("tokenizer: the vocabulary asks for an EOS token but has none");
    fragvec frags = {0};
    sm_i32vec out = {0};
    if (partition(t, text, len, flags & SM_TOK_PARSE_SPECIAL, &frags)) goto fail;
    if (add_special && t->add_bos && sm_i32vec_push(&out, t->bos)) goto fail;
    bool prev_special = true; /* SPM: the dummy prefix goes before text that starts the input or follows a special token */
    for (size_t f = 0; f < frags.n; f++) {
        const frag *fr = &frags.v[f];
        int rc;
        if (fr->id >= 0) {
            rc = sm_i32vec_push(&out, fr->id);
            prev_special = true;
        } else if (t->kind == SM_VOCAB_SPM) {
            rc = sm_spm_encode(t, text + fr->off, fr->len, t->add_space_prefix && prev_special, &out);
            prev_special = false;
        } else {
            rc = sm_bpe_encode(t, text + fr->off, fr->len, &out);
        }
        if (rc) goto fail;
    }
    if (add_special && t->add_eos && sm_i32vec_push(&out, t->eos)) goto fail;
    free(frags.v);
    if (!out.v && !(out.v = malloc(sizeof *out.v))) return sm_error("tokenizer: out of memory");
    *ids = out.v;
    *n_ids = out.n;
    return 0;
fail:
    free(frags.v);
    free(out.v);
    return -1;
}

int sm_token_to_piece(const sm_tokenizer *t, int32_t id, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_tokens) return sm_error("token id %d is out of range (%d tokens)", id, t->n_tokens);
    size_t n = t->piece_off[id + 1] - t->piece_off[id];
    memcpy(buf, t->pieces + t->piece_off[id], n < cap ? n : cap);
    return (int)n;
}

int sm_detokenize(const sm_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len) {
    *text = NULL;
    if (len) *len = 0;
    sm_bytevec out = {0};
    if (sm_bytevec_append(&out, "", 0)) return -1;
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_tokens) {
            free(out.v);
            return sm_error("token id %d (position %zu) is out of range (%d tokens)", id, i, t->n_tokens);
        }
        int32_t type = t->types[id];
        if (type == SM_TOKEN_CONTROL || type == SM_TOKEN_UNKNOWN) continue;
        const char *p = t->pieces + t->piece_off[id];
        size_t pn = t->piece_off[id + 1] - t->piece_off[id];
        if (first && t->add_space_prefix && type == SM_TOKEN_NORMAL && pn && p[0] == ' ') {
            p++;
            pn--;
        }
        if (pn) first = false;
        if (sm_bytevec_append(&out, p, pn)) {
            free(out.v);
            return -1;
        }
    }
    *text = out.v;
    if (len) *len = out.n;
    return 0;
}
