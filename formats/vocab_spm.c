/* vocab_spm.c - SentencePiece model files (tokenizer.model) -> sm_vocab.
 *
 * A minimal protobuf reader of our own (varints, length-delimited, fixed32/fixed64, unknown
 * fields skipped; every length checked against the bytes left; groups refused) for the parts of
 * sentencepiece_model.proto a converter needs:
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (NORMAL=1 UNKNOWN=2 CONTROL=3
 *                   USER_DEFINED=4 UNUSED=5 BYTE=6; default NORMAL)
 *   TrainerSpec     3 model_type (UNIGRAM=1 BPE=2 WORD=3 CHAR=4; default UNIGRAM),
 *                   35 byte_fallback, 40 unk_id (0), 41 bos_id (1), 42 eos_id (2), 43 pad_id (-1)
 *   NormalizerSpec  1 name, 3 add_dummy_prefix (true), 4 remove_extra_whitespaces (true),
 *                   5 escape_whitespaces (true)
 * Messages nest at most two deep (ModelProto > SentencePiece / TrainerSpec / NormalizerSpec);
 * anything deeper is an unknown field and is skipped without being parsed.
 *
 * The vocabulary is what llama.cpp's convert_hf_to_gguf.py (_create_vocab_sentencepiece) makes
 * of the model: every piece's text (U+2581 for spaces) and score, the type from the piece's
 * type with USER_DEFINED pieces as NORMAL (sentencepiece's IsUnknown / IsControl / IsUnused /
 * IsByte, else NORMAL), tokenizer model "llama", pre "default". Like llama.cpp, BPE and unigram
 * models are both accepted (the tokenizer merges pieces by score for both; for unigram models that is
 * llama.cpp's approximation, not SentencePiece's Viterbi search); WORD and CHAR models are
 * refused. llama.cpp also ignores the normalizer (name, remove_extra_whitespaces,
 * escape_whitespaces), and so does the tokenizer here; add_dummy_prefix is kept as
 * add_space_prefix (stated explicitly when it is off, since llama.cpp's default is on).
 * Special ids come from trainer_spec. */
#include "vocab_internal.h"

#include <stdlib.h>
#include <string.h>

#define SPM_MAX_FILE ((size_t)1 << 30)

typedef struct pb {
    const uint8_t *base, *p, *end; /* whole buffer, cursor, end of the current message */
    const char *name;
} pb;

static size_t off(const pb *r) { return (size_t)(r->p - r->base); }

static int pb_varint(pb *r, uint64_t *out) {
    uint64_t v = 0;
    *out = 0;
    for (int i = 0;; i++) {
        if (r->p >= r->end) return sm_error("%s: offset %zu: expected a varint byte, found the end of the message", r->name, off(r));
        uint8_t b = *r->p++;
        /* the 10th byte holds bit 63 only, and ends the varint */
        if (i == 9 && b > 1) return sm_error("%s: offset %zu: varint overflows 64 bits", r->name, off(r) - 1);
        v |= (uint64_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
}

static int pb_key(pb *r, uint32_t *field, int *wt) {
    size_t at = off(r);
    uint64_t k;
    *field = 0;
    *wt = 0;
    if (pb_varint(r, &k)) return -1;
    if (k >> 3 == 0 || k >> 3 > 0x1FFFFFFF) return sm_error("%s: offset %zu: expected a field number in 1..2^29-1, got %llu", r->name, at, (unsigned long long)(k >> 3));
    *field = (uint32_t)(k >> 3);
    *wt = (int)(k & 7);
    return 0;
}

/* A length-delimited value: *p, *n. */
static int pb_bytes(pb *r, const uint8_t **p, size_t *n) {
    size_t at = off(r);
    uint64_t len;
    *p = NULL;
    *n = 0;
    if (pb_varint(r, &len)) return -1;
    if (len > (uint64_t)(r->end - r->p))
        return sm_error("%s: offset %zu: length %llu runs past the end of the message (%zu bytes left)", r->name, at,
                        (unsigned long long)len, (size_t)(r->end - r->p));
    *p = r->p;
    *n = (size_t)len;
    r->p += len;
    return 0;
}

static int pb_fixed(pb *r, size_t n, uint64_t *out) {
    *out = 0;
    if ((size_t)(r->end - r->p) < n) return sm_error("%s: offset %zu: expected %zu bytes of a fixed-size field, found the end of the message", r->name, off(r), n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    *out = v;
    return 0;
}

static int pb_skip(pb *r, uint32_t field, int wt) {
    uint64_t v;
    const uint8_t *p;
    size_t n;
    switch (wt) {
    case 0: return pb_varint(r, &v);
    case 1: return pb_fixed(r, 8, &v);
    case 2: return pb_bytes(r, &p, &n);
    case 5: return pb_fixed(r, 4, &v);
    default: return sm_error("%s: offset %zu: field %u has wire type %d (groups and unknown wire types are not supported)", r->name, off(r), field, wt);
    }
}

static int want(pb *r, uint32_t field, int wt, int expected) {
    if (wt == expected) return 0;
    return sm_error("%s: offset %zu: field %u: expected wire type %d, got %d", r->name, off(r), field, expected, wt);
}

/* A varint field read into an int32 (protobuf int32/enum/bool: the low 32 bits). */
static int pb_int32(pb *r, uint32_t field, int wt, int32_t *out) {
    uint64_t v;
    if (want(r, field, wt, 0) || pb_varint(r, &v)) return -1;
    *out = (int32_t)(uint32_t)v;
    return 0;
}

/* A sub-message: a reader over its bytes. */
static int pb_sub(pb *r, uint32_t field, int wt, pb *sub) {
    const uint8_t *p;
    size_t n;
    if (want(r, field, wt, 2) || pb_bytes(r, &p, &n)) return -1;
    *sub = (pb){r->base, p, p + n, r->name};
    return 0;
}

typedef struct piece {
    const uint8_t *text;
    size_t len;
    float score;
    int32_t type;
} piece;

typedef struct spm {
    piece *pieces;
    size_t n, cap;
    int32_t model_type, unk_id, bos_id, eos_id, pad_id;
    int32_t add_dummy_prefix;
} spm;

static int parse_piece(pb *r, piece *pc) {
    *pc = (piece){(const uint8_t *)"", 0, 0.0f, 1};
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        if (pb_key(r, &f, &wt)) return -1;
        if (f == 1) {
            if (want(r, f, wt, 2) || pb_bytes(r, &pc->text, &pc->len)) return -1;
        } else if (f == 2) {
            uint64_t v;
            if (want(r, f, wt, 5) || pb_fixed(r, 4, &v)) return -1;
            uint32_t u = (uint32_t)v;
            memcpy(&pc->score, &u, 4);
        } else if (f == 3) {
            if (pb_int32(r, f, wt, &pc->type)) return -1;
        } else if (pb_skip(r, f, wt)) {
            return -1;
        }
    }
    return 0;
}

static int parse_trainer(pb *r, spm *m) {
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        if (pb_key(r, &f, &wt)) return -1;
        int32_t *dst = f == 3 ? &m->model_type : f == 40 ? &m->unk_id : f == 41 ? &m->bos_id : f == 42 ? &m->eos_id
                     : f == 43 ? &m->pad_id : NULL;
        if (dst ? pb_int32(r, f, wt, dst) : pb_skip(r, f, wt)) return -1;
    }
    return 0;
}

static int parse_normalizer(pb *r, spm *m) {
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        if (pb_key(r, &f, &wt)) return -1;
        if (f == 3 ? pb_int32(r, f, wt, &m->add_dummy_prefix) : pb_skip(r, f, wt)) return -1;
    }
    return 0;
}

static int parse_model(pb *r, spm *m) {
    while (r->p < r->end) {
        size_t at = off(r);
        uint32_t f;
        int wt;
        if (pb_key(r, &f, &wt)) return -1;
        pb sub;
        if (f == 1) {
            if (m->n == SM_VOCAB_MAX_TOKENS) return sm_error("%s: offset %zu: more than %d pieces", r->name, at, SM_VOCAB_MAX_TOKENS);
            if (m->n == m->cap) {
                size_t c = m->cap ? m->cap * 2 : 1024;
                piece *p = realloc(m->pieces, c * sizeof *p);
                if (!p) return sm_error("%s: out of memory", r->name);
                m->pieces = p;
                m->cap = c;
            }
            if (pb_sub(r, f, wt, &sub) || parse_piece(&sub, &m->pieces[m->n])) return -1;
            piece *pc = &m->pieces[m->n++];
            if (pc->len > SM_VOCAB_MAX_TOKEN_BYTES) return sm_error("%s: offset %zu: piece %zu is %zu bytes long, more than %d", r->name, at, m->n - 1, pc->len, SM_VOCAB_MAX_TOKEN_BYTES);
            if (memchr(pc->text, 0, pc->len)) return sm_error("%s: offset %zu: piece %zu holds a NUL byte", r->name, at, m->n - 1);
            if (pc->type < 1 || pc->type > 6) return sm_error("%s: offset %zu: piece %zu has type %d, expected 1..6", r->name, at, m->n - 1, pc->type);
        } else if (f == 2) {
            if (pb_sub(r, f, wt, &sub) || parse_trainer(&sub, m)) return -1;
        } else if (f == 3) {
            if (pb_sub(r, f, wt, &sub) || parse_normalizer(&sub, m)) return -1;
        } else if (pb_skip(r, f, wt)) {
            return -1;
        }
    }
    return 0;
}

static int check_id(const char *name, const char *what, int32_t *id, size_t n) {
    if (*id < 0) {
        *id = -1;
        return 0;
    }
    if ((size_t)*id >= n) return sm_error("%s: trainer_spec %s %d is out of range (%zu pieces)", name, what, *id, n);
    return 0;
}

int sm_vocab_parse_spm(const void *data, size_t size, const char *name, sm_vocab *out) {
    memset(out, 0, sizeof *out);
    spm m = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .pad_id = -1, .add_dummy_prefix = 1};
    pb r = {data, data, (const uint8_t *)data + size, name};
    int rc = parse_model(&r, &m);
    if (!rc && m.n == 0) rc = sm_error("%s: no pieces (not a SentencePiece model?)", name);
    if (!rc && m.model_type != 1 && m.model_type != 2)
        rc = sm_error("%s: SentencePiece model_type %d (%s) is not supported: only BPE (2) and unigram (1) models, as in llama.cpp", name,
                      m.model_type, m.model_type == 3 ? "WORD" : m.model_type == 4 ? "CHAR" : "unknown");
    if (!rc) rc = check_id(name, "unk_id", &m.unk_id, m.n) || check_id(name, "bos_id", &m.bos_id, m.n) ||
                  check_id(name, "eos_id", &m.eos_id, m.n) || check_id(name, "pad_id", &m.pad_id, m.n);
    if (!rc) rc = sm_vocab_init(out, SM_VOCAB_SPM, (int32_t)m.n);
    for (size_t i = 0; i < m.n && !rc; i++) {
        const piece *pc = &m.pieces[i];
        rc = sm_vocab_set_token(out, (int32_t)i, (const char *)pc->text, pc->len);
        out->scores[i] = pc->score;
        out->types[i] = pc->type == 4 ? SM_TOKEN_NORMAL : pc->type; /* USER_DEFINED -> NORMAL, as llama.cpp */
    }
    free(m.pieces);
    if (rc) {
        sm_vocab_free(out);
        return -1;
    }
    out->unk_id = m.unk_id;
    out->bos_id = m.bos_id;
    out->eos_id = m.eos_id;
    out->pad_id = m.pad_id;
    out->add_space_prefix = m.add_dummy_prefix != 0;
    if (!out->add_space_prefix) out->explicit_flags |= SM_VOCAB_HAS_ADD_SPACE_PREFIX;
    return 0;
}

int sm_vocab_load_spm(const char *path, sm_vocab *out) {
    memset(out, 0, sizeof *out);
    sm_mmap mm;
    if (sm_mmap_open(&mm, path)) return -1;
    if (mm.size > SPM_MAX_FILE) {
        sm_mmap_close(&mm);
        return sm_error("%s: %zu bytes, more than the %zu allowed for a SentencePiece model", path, mm.size, SPM_MAX_FILE);
    }
    int rc = sm_vocab_parse_spm(mm.data ? mm.data : "", mm.size, path, out);
    sm_mmap_close(&mm);
    return rc;
}
