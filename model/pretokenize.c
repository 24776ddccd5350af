/* pretokenize.c - the regex pre-tokenizers of byte-level BPE vocabularies, written out by hand
 * (no regex engine), with exactly the matching behaviour of llama.cpp's hand-written splitters:
 *
 *   gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   qwen2:  as llama3 with \p{N} (one digit per word) instead of \p{N}{1,3}
 *   gpt-4o: [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
 *           [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|
 *           \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *           (Phi-4-mini, GPT-4o's o200k). llama.cpp has no hand-written splitter for it: it runs
 *           its approximation ("upper" = a letter other than a-z, "lower" = a letter other than
 *           A-Z) through std::regex on a "collapsed" text where every code point >= 128 stands
 *           for its category (any non-ASCII letter is then both upper and lower case, marks are
 *           not letters); split_gpt4o reproduces what that std::regex search returns.
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

/* gpt-4o, on llama.cpp's collapsed text (see the top): per code point, F_LETTER and F_NUMBER
 * from the collapse (ASCII letters and digits, or the category of a code point >= 128), F_SPACE
 * as std::regex's \s (ASCII \t\n\v\f\r and space, or a non-ASCII White_Space code point). */
enum { F_UPPER = 16, F_LOWER = 32 }; /* letters other than a-z, letters other than A-Z */

static size_t run_of(const splitter *s, size_t pos, unsigned flag) {
    while (flags_at(s, pos) & flag) pos++;
    return pos;
}

/* The two letter alternatives from i0 (after the optional prefix): the end, or 0 if neither matches. */
static size_t gpt4o_letters(const splitter *s, size_t i0) {
    const size_t u_end = run_of(s, i0, F_UPPER);
    size_t k = SIZE_MAX; /* U* backs off to the last position where L+ can start */
    if (flags_at(s, u_end) & F_LOWER) k = u_end;
    else
        for (size_t j = u_end; j > i0; j--)
            if (flags_at(s, j - 1) & F_LOWER) {
                k = j - 1;
                break;
            }
    size_t end;
    if (k != SIZE_MAX) end = run_of(s, k, F_LOWER); /* U*L+ */
    else if (u_end > i0) end = run_of(s, u_end, F_LOWER); /* U+L* */
    else return 0;
    return end + (cp_at(s, end) == '\'' ? contraction(s, end, true) : 0);
}

static int split_gpt4o(splitter *s) {
    for (size_t i = 0; i < s->n; i++) {
        const uint32_t c = s->cp[i];
        unsigned f = s->flags[i] & ~(unsigned)(F_LETTER | F_NUMBER | F_SPACE);
        if (c < 128) {
            const bool up = c >= 'A' && c <= 'Z', lo = c >= 'a' && c <= 'z';
            f |= (up || lo ? F_LETTER : 0) | (c >= '0' && c <= '9' ? F_NUMBER : 0) |
                 ((c >= 9 && c <= 13) || c == ' ' ? F_SPACE : 0) | (up ? F_UPPER : 0) | (lo ? F_LOWER : 0);
        } else if (sm_uspace(c)) {
            f |= F_SPACE;
        } else {
            const int cat = sm_ucat(c);
            f |= cat == SM_UCAT_L ? F_LETTER | F_UPPER | F_LOWER : cat == SM_UCAT_N ? F_NUMBER : 0;
        }
        s->flags[i] = (uint8_t)f;
    }
    size_t pos = 0;
    while (pos < s->n) {
        const uint32_t c = s->cp[pos];
        const unsigned f = s->flags[pos];
        const bool prefix = c != '\r' && c != '\n' && !(f & (F_LETTER | F_NUMBER));
        size_t end = gpt4o_letters(s, pos + prefix);
        if (!end && f & F_NUMBER) { /* \p{N}{1,3} */
            end = pos;
            while (end < pos + 3 && (flags_at(s, end) & F_NUMBER)) end++;
        }
        if (!end) { /* ' ?[^\s\p{L}\p{N}]+[\r\n/]*' */
            const size_t p1 = pos + (c == ' ');
            if (p1 < s->n && !(s->flags[p1] & (F_SPACE | F_LETTER | F_NUMBER))) {
                end = p1;
                while ((flags_at(s, end) & F_IN) && !(flags_at(s, end) & (F_SPACE | F_LETTER | F_NUMBER))) end++;
                while (cp_at(s, end) == '\r' || cp_at(s, end) == '\n' || cp_at(s, end) == '/') end++;
            }
        }
        pos = end ? end : whitespace(s, pos, true);
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
    case SM_PRE_GPT4O: rc = split_gpt4o(&s); break;
    default: rc = split_llama3(&s, 1); break;
    }
    free(s.flags);
    return rc;
}
