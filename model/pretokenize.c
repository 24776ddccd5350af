/* pretokenize.c - the regex pre-tokenizers of byte-level BPE vocabularies, written out by hand
 * (no regex engine), with exactly the matching behaviour of llama.cpp's hand-written splitters:
 *
 *   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2:  as llama3 with \p{N} (one digit per word) instead of \p{N}{1,3}
 *
 * The input is a fragment's code points; the output is the length (in code points) of each
 * word, in order, covering the whole input. */
#include "tokenizer_internal.h"
#include "unicode_internal.h"

#include <stdlib.h>

enum { F_LETTER = 1, F_NUMBER = 2, F_SPACE = 4, F_IN = 8 /* position inside the fragment */ };

typedef struct splitter {
    const uint32_t *cp;
    size_t n;
    uint8_t *flags; /* per code point */
    size_t prev;    /* end of the last word */
    sm_u32vec *out;
} splitter;

static unsigned flags_at(const splitter *s, size_t pos) { return pos < s->n ? s->flags[pos] : 0; }
static uint32_t cp_at(const splitter *s, size_t pos) { return pos < s->n ? s->cp[pos] : 0xFFFFFFFFu; }

static int emit(splitter *s, size_t end) {
    if (end > s->prev && sm_u32vec_push(s->out, (uint32_t)(end - s->prev))) return -1;
    s->prev = end;
    return 0;
}

static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's 't 're 've 'm 'll 'd at pos (which holds '\''): returns the length matched, 0 if none. */
static size_t contraction(const splitter *s, size_t pos, bool any_case) {
    if (pos + 1 >= s->n) return 0;
    uint32_t a = cp_at(s, pos + 1);
    if (any_case) a = ascii_lower(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->n) return 0;
    uint32_t b = cp_at(s, pos + 2);
    if (any_case) b = ascii_lower(b);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* The whitespace alternatives shared by all three: \s+(?!\S) and \s+ (and, when rn is set,
 * \s*[\r\n]+ first). Returns the new position. */
static size_t whitespace(const splitter *s, size_t pos, bool rn) {
    size_t nws = 0, last_rn = 0;
    while (flags_at(s, pos + nws) & F_SPACE) {
        uint32_t c = cp_at(s, pos + nws);
        if (c == '\r' || c == '\n') last_rn = pos + nws + 1;
        nws++;
    }
    if (rn && last_rn) return last_rn;
    if (nws > 1 && pos + nws < s->n) return pos + nws - 1; /* leave the last space to the next word */
    if (nws > 0) return pos + nws;
    return pos + 1; /* nothing matched: a word of one code point */
}

static int split_gpt2(splitter *s) {
    size_t pos = 0;
    while (pos < s->n) {
        uint32_t c = s->cp[pos];
        if (c == '\'') {
            size_t k = contraction(s, pos, false);
            if (k) {
                pos += k;
                if (emit(s, pos)) return -1;
                continue;
            }
        }
        unsigned f2 = c == ' ' ? flags_at(s, pos + 1) : s->flags[pos];
        unsigned run = 0;
        if (f2 & F_LETTER) run = F_LETTER;
        else if (f2 & F_NUMBER) run = F_NUMBER;
        if (run) { /* ' ?\p{L}+' or ' ?\p{N}+' */
            pos += c == ' ';
            while (flags_at(s, pos) & run) pos++;
        } else if ((f2 & F_IN) && !(f2 & (F_SPACE | F_LETTER | F_NUMBER))) { /* ' ?[^\s\p{L}\p{N}]+' */
            pos += c == ' ';
            for (unsigned f = flags_at(s, pos); (f & F_IN) && !(f & (F_SPACE | F_LETTER | F_NUMBER)); f = flags_at(s, pos))
                pos++;
        } else {
            pos = whitespace(s, pos, false);
        }
        if (emit(s, pos)) return -1;
    }
    return 0;
}

/* llama3 (max_digits 3) and qwen2 (max_digits 1). */
static int split_llama3(splitter *s, size_t max_digits) {
    size_t pos = 0;
    while (pos < s->n) {
        uint32_t c = s->cp[pos];
        unsigned f = s->flags[pos];
        if (c == '\'') {
            size_t k = contraction(s, pos, true);
            if (k) {
                pos += k;
                if (emit(s, pos)) return -1;
                continue;
            }
        }
        /* [^\r\n\p{L}\p{N}]?\p{L}+ */
        if (c != '\r' && c != '\n' && !(f & F_NUMBER) && ((f & F_LETTER) || (flags_at(s, pos + 1) & F_LETTER))) {
            pos++;
            while (flags_at(s, pos) & F_LETTER) pos++;
            if (emit(s, pos)) return -1;
            continue;
        }
        /* \p{N}{1,max_digits} */
        if (f & F_NUMBER) {
            size_t start = pos;
            while (flags_at(s, pos) & F_NUMBER) {
                pos++;
                if (pos - start >= max_digits) {
                    if (emit(s, pos)) return -1;
                    start = pos;
                }
            }
            if (emit(s, pos)) return -1;
            continue;
        }
        /* ' ?[^\s\p{L}\p{N}]+[\r\n]*'. llama.cpp tests the first code point's presence (not the
         * one after the space) here; kept for identical splits. */
        unsigned f2 = c == ' ' ? flags_at(s, pos + 1) : f;
        if (!(f2 & (F_SPACE | F_LETTER | F_NUMBER))) {
            pos += c == ' ';
            for (unsigned g = flags_at(s, pos); (g & F_IN) && !(g & (F_SPACE | F_LETTER | F_NUMBER)); g = flags_at(s, pos))
                pos++;
            while (cp_at(s, pos) == '\r' || cp_at(s, pos) == '\n') pos++;
            if (emit(s, pos)) return -1;
            continue;
        }
        pos = whitespace(s, pos, true);
        if (emit(s, pos)) return -1;
    }
    return 0;
}

int sm_pretokenize(sm_pre_kind kind, const uint32_t *cp, size_t n, sm_u32vec *word_lens) {
    splitter s = {cp, n, malloc(n ? n : 1), 0, word_lens};
    if (!s.flags) return sm_error("tokenizer: out of memory");
    for (size_t i = 0; i < n; i++) {
        int cat = sm_ucat(cp[i]);
        s.flags[i] = (uint8_t)(F_IN | (cat == SM_UCAT_L ? F_LETTER : 0) | (cat == SM_UCAT_N ? F_NUMBER : 0) |
                               (sm_uspace(cp[i]) ? F_SPACE : 0));
    }
    int rc;
    switch (kind) {
    case SM_PRE_GPT2: rc = split_gpt2(&s); break;
    case SM_PRE_LLAMA3: rc = split_llama3(&s, 3); break;
    default: rc = split_llama3(&s, 1); break;
    }
    free(s.flags);
    return rc;
}
