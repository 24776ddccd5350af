/* test_tokenizer.c - vocabularies (SentencePiece, tokenizer.json, GGUF) and tokenization.
 *
 * References: the token ids in ../shared made with the sentencepiece library and checked
 * against llama.cpp (tiny-llama-kjv, fortunes), the stories260K facts from its SOURCE.md, and
 * for byte-level BPE the ids llama.cpp's llama-tokenize gives the fixtures in tests/data/bpe-*
 * (scripts/bpe_fixture_expectations.py). With LLAMA_CPP_BIN set, the GGUF we write for the
 * KJV vocabulary is also tokenized by llama.cpp's llama-tokenize and compared. */
#include "testlib.h"
#include "formats/formats.h"
#include "model/model.h"
#include "model/tokenizer_internal.h"
#include "model/unicode_internal.h"

#include <stdlib.h>
#include <string.h>

/* The call must succeed; the test stops here if it does not. */
#define REQUIRE_OK(call)                                                                       \
    do {                                                                                       \
        int _r = (call);                                                                       \
        CHECK_MSG(_r == 0, "%s: %s", #call, sm_last_error());                                  \
        if (_r) return;                                                                        \
    } while (0)

static const char *src_path(const char *rel) {
    static char buf[8][1024];
    static int k;
    const char *src = getenv("SMELT_SOURCE_DIR");
    char *b = buf[k++ & 7];
    snprintf(b, sizeof buf[0], "%s/%s", src && *src ? src : "..", rel);
    return b;
}

/* "1\n2\n3\n" or "1 2 3" -> ids */
static int32_t *parse_ids(const char *s, size_t *n) {
    size_t cap = 1024;
    int32_t *v = malloc(cap * sizeof *v);
    *n = 0;
    while (*s) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s) {
            s++;
            continue;
        }
        if (*n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
        v[(*n)++] = (int32_t)x;
        s = end;
    }
    return v;
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb, const char *what) {
    if (na != nb) {
        fprintf(stderr, "  %s: %zu ids, expected %zu\n", what, na, nb);
        return false;
    }
    for (size_t i = 0; i < na; i++)
        if (a[i] != b[i]) {
            fprintf(stderr, "  %s: id %zu is %d, expected %d\n", what, i, a[i], b[i]);
            return false;
        }
    return true;
}

static sm_tokenizer *tokenizer_for(const char *path) {
    sm_vocab v;
    if (sm_vocab_load(path, &v)) {
        fprintf(stderr, "  %s: %s\n", path, sm_last_error());
        return NULL;
    }
    sm_tokenizer *t = NULL;
    if (sm_tokenizer_new(&v, &t)) fprintf(stderr, "  %s: %s\n", path, sm_last_error());
    sm_vocab_free(&v);
    return t;
}

/* Tokenize text (BOS added as the vocabulary asks) and compare with a reference id file;
 * then the way back must give the text. */
static void check_reference(sm_tokenizer *t, const char *text_rel, const char *ref_rel) {
    size_t len;
    char *text = tl_slurp(tl_asset(text_rel), &len);
    char *ref = tl_slurp(tl_asset(ref_rel), NULL);
    CHECK(text && ref);
    if (!text || !ref || !t) goto out;
    size_t n_ref, n;
    int32_t *want = parse_ids(ref, &n_ref), *ids;
    double t0 = sm_now();
    CHECK_OK(sm_tokenize(t, text, len, SM_TOK_ADD_SPECIAL, &ids, &n));
    fprintf(stderr, "  %s: %zu bytes -> %zu tokens in %.3f s\n", text_rel, len, n, sm_now() - t0);
    CHECK_MSG(same_ids(ids, n, want, n_ref, text_rel), "%s differs from %s", text_rel, ref_rel);
    char *back;
    size_t blen;
    CHECK_OK(sm_detokenize(t, ids, n, &back, &blen));
    CHECK(blen == len && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
    free(want);
out:
    free(text);
    free(ref);
}

/* ---- SentencePiece ---- */

static void kjv_hf_vocab(void) {
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_hf(tl_asset("models/tiny-llama-kjv"), &v));
    CHECK(v.kind == SM_VOCAB_SPM && v.n_tokens == 2048 && !strcmp(v.pre, "default"));
    /* llama.cpp: added_tokens_decoder's special tokens become CONTROL with score -1000 */
    CHECK(!strcmp(v.tokens[0], "<unk>") && v.types[0] == SM_TOKEN_CONTROL && v.scores[0] == -1000.0f);
    CHECK(!strcmp(v.tokens[1], "<s>") && v.types[1] == SM_TOKEN_CONTROL);
    CHECK(!strcmp(v.tokens[2], "</s>") && v.types[2] == SM_TOKEN_CONTROL);
    CHECK(!strcmp(v.tokens[3], "<0x00>") && v.types[3] == SM_TOKEN_BYTE);
    CHECK(!strcmp(v.tokens[258], "<0xFF>") && v.types[258] == SM_TOKEN_BYTE);
    CHECK(!strcmp(v.tokens[261], "\xE2\x96\x81the") && v.types[261] == SM_TOKEN_NORMAL && v.scores[261] == -2.0f);
    /* special ids from config.json, add_bos/add_eos from tokenizer_config.json */
    CHECK(v.bos_id == 1 && v.eos_id == 2 && v.unk_id == -1 && v.pad_id == -1);
    CHECK(v.add_bos && !v.add_eos && v.add_space_prefix);
    CHECK(v.explicit_flags == (SM_VOCAB_HAS_ADD_BOS | SM_VOCAB_HAS_ADD_EOS));
    CHECK(v.n_merges == 0 && !v.chat_template);
    sm_vocab_free(&v);
}

static void kjv_eval_tokens(void) {
    sm_tokenizer *t = tokenizer_for(tl_asset("models/tiny-llama-kjv"));
    CHECK(t != NULL);
    if (!t) return;
    CHECK(sm_tokenizer_n_vocab(t) == 2048 && sm_tokenizer_bos(t) == 1 && sm_tokenizer_eos(t) == 2);
    check_reference(t, "text/kjv-eval.txt", "models/tiny-llama-kjv/reference/tokens_eval.txt");
    sm_tokenizer_free(t);
}

static void fortunes_eval_tokens(void) {
    /* non-ASCII text: byte-fallback pieces */
    sm_tokenizer *t = tokenizer_for(tl_asset("models/tiny-llama-kjv"));
    CHECK(t != NULL);
    if (t) check_reference(t, "text/fortunes-eval.txt", "models/tiny-llama-kjv-lora-fortunes/reference/tokens_fortunes_eval.txt");
    sm_tokenizer_free(t);
}

static void kjv_tokenizer_model_alone(void) {
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_spm(tl_asset("models/tiny-llama-kjv/tokenizer.model"), &v));
    CHECK(v.n_tokens == 2048 && v.unk_id == 0 && v.bos_id == 1 && v.eos_id == 2 && v.pad_id == -1);
    CHECK(v.types[0] == SM_TOKEN_UNKNOWN && v.types[1] == SM_TOKEN_CONTROL && v.scores[1] == 0.0f);
    CHECK(v.explicit_flags == 0 && v.add_bos && !v.add_eos && v.add_space_prefix);
    sm_tokenizer *t;
    int rc = sm_tokenizer_new(&v, &t);
    sm_vocab_free(&v);
    REQUIRE_OK(rc);
    check_reference(t, "text/kjv-eval.txt", "models/tiny-llama-kjv/reference/tokens_eval.txt");
    sm_tokenizer_free(t);
}

static void stories260k(void) {
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_spm(tl_asset("models/stories260k/tok512.model"), &v));
    CHECK(v.n_tokens == 512 && v.unk_id == 0 && v.bos_id == 1 && v.eos_id == 2 && v.pad_id == -1);
    CHECK(!strcmp(v.tokens[0], "<unk>") && !strcmp(v.tokens[1], "<s>") && !strcmp(v.tokens[2], "</s>"));
    int bytes_ok = 1;
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        bytes_ok &= !strcmp(v.tokens[3 + b], want) && v.types[3 + b] == SM_TOKEN_BYTE;
    }
    CHECK(bytes_ok);
    sm_tokenizer *t;
    int rc = sm_tokenizer_new(&v, &t);
    sm_vocab_free(&v);
    REQUIRE_OK(rc);
    /* SOURCE.md: tok512.model's encoding of the sentence (no BOS) */
    static const int32_t want[] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
    const char *s = "Once upon a time, there was a little girl named Lily.";
    int32_t *ids;
    size_t n;
    CHECK_OK(sm_tokenize(t, s, strlen(s), 0, &ids, &n));
    CHECK(same_ids(ids, n, want, 15, "stories260K sentence"));
    free(ids);
    CHECK_OK(sm_tokenize(t, s, strlen(s), SM_TOK_ADD_SPECIAL, &ids, &n));
    CHECK(n == 16 && ids[0] == 1 && same_ids(ids + 1, n - 1, want, 15, "with BOS"));
    char piece[16];
    CHECK(sm_token_to_piece(t, 403, piece, sizeof piece) == 5 && !memcmp(piece, " Once", 5));
    CHECK(sm_token_to_piece(t, 1, piece, sizeof piece) == 3 && !memcmp(piece, "<s>", 3));
    CHECK(sm_token_to_piece(t, 3 + 0x41, piece, sizeof piece) == 1 && piece[0] == 'A');
    CHECK(sm_token_to_piece(t, 512, piece, sizeof piece) == -1);
    char *back;
    size_t blen;
    CHECK_OK(sm_detokenize(t, ids, n, &back, &blen));
    CHECK(blen == strlen(s) && !strcmp(back, s));
    free(back);
    free(ids);

    /* round trip over TinyStories text */
    size_t len;
    char *text = tl_slurp(tl_asset("text/tinystories_valid_first1000.txt"), &len);
    if (text) {
        double t0 = sm_now();
        CHECK_OK(sm_tokenize(t, text, len, SM_TOK_ADD_SPECIAL, &ids, &n));
        fprintf(stderr, "  tinystories: %zu bytes -> %zu tokens in %.3f s\n", len, n, sm_now() - t0);
        CHECK_OK(sm_detokenize(t, ids, n, &back, &blen));
        CHECK(blen == len && !memcmp(back, text, len));
        free(back);
        free(ids);
        free(text);
    }
    sm_tokenizer_free(t);
}

static void spm_edge_cases(void) {
    sm_tokenizer *t = tokenizer_for(tl_asset("models/tiny-llama-kjv"));
    CHECK(t != NULL);
    if (!t) return;
    int32_t *ids;
    size_t n;
    /* empty text: BOS only (or nothing) */
    CHECK_OK(sm_tokenize(t, "", 0, SM_TOK_ADD_SPECIAL, &ids, &n));
    CHECK(n == 1 && ids[0] == 1);
    free(ids);
    CHECK_OK(sm_tokenize(t, "", 0, 0, &ids, &n));
    CHECK(n == 0 && ids != NULL);
    free(ids);
    /* "<s>" is plain text unless parse_special; with it, the text after it gets the dummy prefix */
    CHECK_OK(sm_tokenize(t, "<s>In", 5, 0, &ids, &n));
    CHECK(n > 1 && ids[0] != 1);
    free(ids);
    int32_t *in_ids;
    size_t n_in;
    CHECK_OK(sm_tokenize(t, "In", 2, 0, &in_ids, &n_in));
    CHECK_OK(sm_tokenize(t, "<s>In", 5, SM_TOK_PARSE_SPECIAL, &ids, &n));
    CHECK(n == n_in + 1 && ids[0] == 1 && same_ids(ids + 1, n - 1, in_ids, n_in, "after <s>"));
    free(ids);
    free(in_ids);
    /* NUL bytes go through byte tokens and come back */
    const char nul[] = "a b\0c";
    CHECK_OK(sm_tokenize(t, nul, sizeof nul - 1, 0, &ids, &n));
    char *back;
    size_t blen;
    CHECK_OK(sm_detokenize(t, ids, n, &back, &blen));
    CHECK(blen == sizeof nul - 1 && !memcmp(back, nul, blen));
    free(back);
    free(ids);
    /* invalid UTF-8: a bad lead byte takes as many bytes as it announces (llama.cpp's rule), all
     * as byte tokens (<0xFF> is id 258) */
    CHECK_OK(sm_tokenize(t, "a\xff", 2, 0, &ids, &n));
    CHECK(n >= 2 && ids[n - 1] == 258);
    free(ids);
    CHECK_OK(sm_tokenize(t, "\xff\xfe x\xe2\x82", 6, SM_TOK_ADD_SPECIAL, &ids, &n));
    CHECK(n > 3 && ids[0] == 1 && ids[n - 2] == 3 + 0xE2 && ids[n - 1] == 3 + 0x82);
    free(ids);
    int32_t oob = 5000;
    CHECK_FAILS_WITH(sm_detokenize(t, &oob, 1, &back, &blen), "out of range");
    sm_tokenizer_free(t);
}

/* An HF folder around a SentencePiece model with every extra file llama.cpp's converter reads:
 * config.json vocab_size padding, added_tokens.json, tokenizer_config.json's
 * added_tokens_decoder / add_*_token / add_prefix_space / chat_template, tokenizer.json's
 * added_tokens for the special ids. */
static void spm_hf_extras(void) {
    char *cmd = NULL;
    const char *dir = tl_tmp("spm-hf");
    char model_dst[1100];
    snprintf(model_dst, sizeof model_dst, "%s/tokenizer.model", dir);
    size_t len;
    char *model = tl_slurp(src_path("tests/fuzz-seeds/spm/bpe_byte_fallback.model"), &len);
    REQUIRE_OK(model ? 0 : -1);
    if (asprintf(&cmd, "mkdir -p '%s'", dir) < 0 || system(cmd) != 0) CHECK(0);
    free(cmd);
    CHECK(tl_write_file(model_dst, model, len) == 0);
    free(model);
    /* the seed has 268 pieces: <unk> <s> </s>, 256 bytes, 9 normal pieces */
    static const struct { const char *name, *text; } FILES[] = {
        {"config.json", "{\"vocab_size\": 273, \"bos_token_id\": 7, \"eos_token_id\": 2, \"pad_token_id\": null}"},
        {"added_tokens.json", "{\"<extra>\": 268, \"<ignored>\": 999}"},
        {"tokenizer_config.json",
         "{\"add_bos_token\": true, \"add_eos_token\": true, \"add_prefix_space\": false, \"bos_token\": \"<s>\","
         " \"eos_token\": {\"content\": \"</s>\"}, \"unk_token\": \"<unk>\", \"chat_template\": \"{{x}}\","
         " \"added_tokens_decoder\": {\"1\": {\"content\": \"<s>\", \"special\": true},"
         " \"269\": {\"content\": \"\u2581hello\", \"special\": false}, \"270\": {\"content\": \"<|im_end|>\"}}}"},
        {"tokenizer.json", "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\"}, {\"id\": 1, \"content\": \"<s>\"},"
                           " {\"id\": 2, \"content\": \"</s>\"}], \"model\": {\"type\": \"BPE\"}}"},
    };
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, FILES[i].name);
        CHECK(tl_write_file(path, FILES[i].text, strlen(FILES[i].text)) == 0);
    }
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_hf(dir, &v));
    CHECK(v.kind == SM_VOCAB_SPM && v.n_tokens == 273);
    CHECK(!strcmp(v.tokens[1], "<s>") && v.types[1] == SM_TOKEN_CONTROL && v.scores[1] == -1000.0f);
    CHECK(v.types[0] == SM_TOKEN_UNKNOWN && v.scores[0] == 0.0f);
    CHECK(!strcmp(v.tokens[268], "<extra>") && v.types[268] == SM_TOKEN_USER_DEFINED && v.scores[268] == -1000.0f);
    CHECK(!strcmp(v.tokens[269], " hello") && v.types[269] == SM_TOKEN_USER_DEFINED);
    CHECK(!strcmp(v.tokens[270], "<|im_end|>") && v.types[270] == SM_TOKEN_CONTROL);
    CHECK(!strcmp(v.tokens[271], "[PAD271]") && v.types[271] == SM_TOKEN_UNUSED && v.scores[271] == -10000.0f);
    /* ids: tokenizer_config strings found in tokenizer.json first, then config.json */
    CHECK(v.bos_id == 1 && v.eos_id == 2 && v.unk_id == 0 && v.pad_id == -1);
    CHECK(v.add_bos && v.add_eos && !v.add_space_prefix);
    CHECK((v.explicit_flags & 15) == (SM_VOCAB_HAS_ADD_BOS | SM_VOCAB_HAS_ADD_EOS | SM_VOCAB_HAS_ADD_SPACE_PREFIX));
    CHECK(v.explicit_flags & SM_VOCAB_PREFIX_FROM_TOKCFG); /* until the architecture's rule is applied */
    CHECK(v.chat_template && !strcmp(v.chat_template, "{{x}}"));
    sm_tokenizer *t;
    int rc = sm_tokenizer_new(&v, &t);
    sm_vocab_free(&v);
    REQUIRE_OK(rc);
    /* " hello" (user-defined) is found in the text first; no dummy prefix; BOS and EOS added */
    int32_t *ids;
    size_t n;
    CHECK_OK(sm_tokenize(t, "ab hello", 8, SM_TOK_ADD_SPECIAL, &ids, &n));
    static const int32_t want[] = {1, 263, 269, 2}; /* <s> "ab" " hello" </s> */
    CHECK(same_ids(ids, n, want, 4, "spm-hf"));
    free(ids);
    sm_tokenizer_free(t);
}

/* ---- byte-level BPE fixtures ---- */

static char **split_inputs(char *buf, size_t len, size_t *n, size_t **lens) {
    static const char SEP[] = "\n__smelt_test__\n";
    size_t cap = 64, sl = sizeof SEP - 1;
    char **v = malloc(cap * sizeof *v);
    *lens = malloc(cap * sizeof **lens);
    *n = 0;
    size_t pos = 0;
    for (;;) {
        char *m = memmem(buf + pos, len - pos, SEP, sl);
        size_t end = m ? (size_t)(m - buf) : len;
        if (*n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            *lens = realloc(*lens, cap * sizeof **lens);
        }
        v[*n] = buf + pos;
        (*lens)[(*n)++] = end - pos;
        if (!m) break;
        pos = end + sl;
    }
    return v;
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t p = i;
        uint32_t cp = sm_utf8_decode((const uint8_t *)s, n, &i);
        char enc[4];
        if (cp == 0xFFFD && (i - p != 3 || memcmp(s + p, "\xEF\xBF\xBD", 3))) return false;
        if (sm_utf8_encode(cp, enc) != i - p || memcmp(enc, s + p, i - p)) return false; /* overlong */
        if (cp >= 0xD800 && cp < 0xE000) return false;
    }
    return true;
}

static void bpe_fixture(const char *name) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "tests/data/%s", name);
    sm_tokenizer *t = tokenizer_for(src_path(dir));
    CHECK_MSG(t != NULL, "%s", name);
    size_t len;
    char *buf = tl_slurp(src_path("tests/data/bpe-inputs.txt"), &len);
    CHECK(buf != NULL);
    if (!t || !buf) {
        sm_tokenizer_free(t);
        free(buf);
        return;
    }
    size_t n_in, *lens;
    char **in = split_inputs(buf, len, &n_in, &lens);
    static const char *const MODES[2] = {"plain", "special"};
    for (int mode = 0; mode < 2; mode++) {
        snprintf(path, sizeof path, "%s/expected-%s.txt", dir, MODES[mode]);
        char *exp = tl_slurp(src_path(path), NULL);
        CHECK(exp != NULL);
        if (!exp) continue;
        char *line = exp;
        size_t bad = 0, lines = 0;
        for (size_t i = 0; i < n_in && line; i++, lines++) {
            char *nl = strchr(line, '\n');
            if (!nl) break; /* every expected line ends with a newline */
            *nl = 0;
            size_t n_want, n;
            int32_t *want = parse_ids(line, &n_want), *ids;
            unsigned flags = mode ? SM_TOK_ADD_SPECIAL | SM_TOK_PARSE_SPECIAL : 0;
            CHECK_OK(sm_tokenize(t, in[i], lens[i], flags, &ids, &n));
            char what[128];
            snprintf(what, sizeof what, "%s %s input %zu", name, MODES[mode], i);
            if (!same_ids(ids, n, want, n_want, what)) bad++;
            if (mode == 0 && valid_utf8(in[i], lens[i])) { /* the way back */
                char *back;
                size_t blen;
                CHECK_OK(sm_detokenize(t, ids, n, &back, &blen));
                CHECK_MSG(blen == lens[i] && !memcmp(back, in[i], blen), "%s: detokenize", what);
                free(back);
            }
            free(ids);
            free(want);
            line = nl + 1;
        }
        CHECK_MSG(bad == 0 && lines == n_in, "%s %s: %zu of %zu inputs differ from llama.cpp (%zu expected lines)", name,
                  MODES[mode], bad, n_in, lines);
        free(exp);
    }
    free(in);
    free(lens);
    free(buf);
    sm_tokenizer_free(t);
}

static void bpe_gpt2(void) {
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_hf(src_path("tests/data/bpe-gpt2"), &v));
    CHECK(v.kind == SM_VOCAB_BPE && !strcmp(v.pre, "gpt-2") && v.n_tokens == 677 && v.n_merges == 420);
    CHECK(!strcmp(v.tokens[676], "<|endoftext|>") && v.types[676] == SM_TOKEN_CONTROL);
    CHECK(v.bos_id == 676 && v.eos_id == 676 && v.unk_id == -1 && v.pad_id == -1);
    CHECK(!v.add_bos && v.explicit_flags == 0 && !v.chat_template);
    sm_vocab_free(&v);
    bpe_fixture("bpe-gpt2");
}

static void bpe_llama3(void) {
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_hf(src_path("tests/data/bpe-llama3"), &v));
    CHECK(v.kind == SM_VOCAB_BPE && !strcmp(v.pre, "llama-bpe") && v.n_tokens == 684 && v.n_merges == 420);
    CHECK(v.types[676] == SM_TOKEN_CONTROL && v.types[679] == SM_TOKEN_USER_DEFINED && !strcmp(v.tokens[679], "<tool>"));
    CHECK(v.types[680] == SM_TOKEN_CONTROL); /* "<|reserved_0|>" is not special but looks special */
    CHECK(!strcmp(v.tokens[683], "[PAD683]") && v.types[683] == SM_TOKEN_UNUSED);
    /* gguf-py's SpecialVocab on this directory: ids {bos 676, eos 677}, add flags {bos: True,
     * sep: False} (the pair template "bos A bos B" states no separator), in that order */
    CHECK(v.bos_id == 676 && v.eos_id == 677 && v.add_bos && !v.add_sep &&
          v.explicit_flags == (SM_VOCAB_HAS_ADD_BOS | SM_VOCAB_HAS_ADD_SEP));
    CHECK(v.n_add_order == 2 && v.add_order[0] == 0 && v.add_order[1] == 2);
    CHECK(v.chat_template && strstr(v.chat_template, "<|eot_id|>"));
    sm_vocab_free(&v);
    bpe_fixture("bpe-llama3");
}

static void bpe_qwen2(void) {
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_hf(src_path("tests/data/bpe-qwen2"), &v));
    CHECK(v.kind == SM_VOCAB_BPE && !strcmp(v.pre, "qwen2") && v.n_tokens == 679);
    CHECK(v.eos_id == 678 && v.pad_id == 676 && v.bos_id == 676 && !v.add_bos);
    /* SpecialVocab's order here: {eos, pad, bos} (tokenizer_config.json's tokens, then config.json's ids) */
    CHECK(v.n_id_order == 3 && v.id_order[0] == 1 && v.id_order[1] == 3 && v.id_order[2] == 0);
    CHECK((v.explicit_flags & 15) == SM_VOCAB_HAS_ADD_SPACE_PREFIX && !v.add_space_prefix);
    /* tokenizer_config.json's add_prefix_space is LlamaModel.set_vocab's rule only: for Qwen2 it
     * is as if absent (convert_hf_to_gguf.py writes no add_space_prefix); for Llama it stays */
    sm_vocab l;
    REQUIRE_OK(sm_vocab_load_hf(src_path("tests/data/bpe-qwen2"), &l));
    sm_hparams hp = {0};
    hp.features = sm_arch_by_hf("Qwen2ForCausalLM")->features;
    sm_vocab_apply_arch(&hp, &v);
    CHECK(v.explicit_flags == 0 && !v.add_space_prefix);
    hp.features = sm_arch_by_hf("LlamaForCausalLM")->features;
    sm_vocab_apply_arch(&hp, &l);
    CHECK(l.explicit_flags == SM_VOCAB_HAS_ADD_SPACE_PREFIX && !l.add_space_prefix);
    sm_vocab_free(&l);
    sm_vocab_free(&v);
    bpe_fixture("bpe-qwen2");
}

/* Phi-4-mini's tokenizer: GPT-4o's split regex (llama.cpp's "gpt-4o" pre-tokenizer: case changes
 * split words, contractions stay on their word, punctuation takes trailing / \r \n) */
static void bpe_gpt4o(void) {
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_hf(src_path("tests/data/bpe-gpt4o"), &v));
    CHECK(v.kind == SM_VOCAB_BPE && !strcmp(v.pre, "gpt-4o") && v.n_tokens == 684);
    CHECK(v.bos_id == 676 && v.eos_id == 676 && !v.add_bos && v.types[680] == SM_TOKEN_CONTROL);
    sm_vocab_free(&v);
    bpe_fixture("bpe-gpt4o");
    /* the words themselves (the ids above hide most split differences: few merges cross them):
     * tests/data/bpe-gpt4o/expected-words.txt holds, per input, the code-point length of each word
     * llama.cpp's unicode_regex_split gives with its gpt-4o expressions (made by a driver linking
     * llama.cpp's src/unicode.cpp; see scripts/bpe_fixture_expectations.py) */
    size_t len = 0;
    char *buf = tl_slurp(src_path("tests/data/bpe-inputs.txt"), &len);
    char *exp = tl_slurp(src_path("tests/data/bpe-gpt4o/expected-words.txt"), NULL);
    CHECK(buf && exp);
    if (!buf || !exp) {
        free(buf);
        free(exp);
        return;
    }
    size_t n_in, *lens;
    char **in = split_inputs(buf, len, &n_in, &lens);
    char *line = exp;
    size_t bad = 0;
    for (size_t i = 0; i < n_in && line; i++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        sm_u32vec cps = {0}, words = {0};
        for (size_t pos = 0; pos < lens[i];) sm_u32vec_push(&cps, sm_utf8_decode((const uint8_t *)in[i], lens[i], &pos));
        CHECK_OK(sm_pretokenize(SM_PRE_GPT4O, cps.v, cps.n, &words));
        char got[8192];
        size_t k = 0;
        got[0] = 0;
        for (size_t w = 0; w < words.n && k < sizeof got - 16; w++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%u", w ? " " : "", words.v[w]);
        if (strcmp(got, line)) {
            bad++;
            CHECK_MSG(0, "input %zu: words %s, llama.cpp %s", i, got, line);
        }
        free(cps.v);
        free(words.v);
        line = nl ? nl + 1 : NULL;
    }
    fprintf(stderr, "  gpt-4o words: %zu of %zu inputs as llama.cpp splits them\n", n_in - bad, n_in);
    free(in);
    free(lens);
    free(buf);
    free(exp);
}

/* ---- GGUF ---- */

static int write_vocab_gguf(const sm_vocab *v, const char *path, bool with_arch) {
    sm_gguf_writer *w = sm_gguf_writer_new();
    if (with_arch) { /* enough for llama.cpp to load the vocabulary */
        sm_meta_set_str(sm_gguf_writer_meta(w), "general.architecture", "llama");
        sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.context_length", 256);
        sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.embedding_length", 8);
        sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.block_count", 1);
        sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.feed_forward_length", 8);
        sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.attention.head_count", 1);
        sm_meta_set_f32(sm_gguf_writer_meta(w), "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    }
    sm_vocab_to_meta(v, sm_gguf_writer_meta(w));
    if (sm_gguf_writer_begin(w, path)) {
        sm_gguf_writer_abort(w);
        return -1;
    }
    return sm_gguf_writer_finish(w);
}

static void same_vocab(const sm_vocab *a, const sm_vocab *b) {
    CHECK(a->kind == b->kind && a->n_tokens == b->n_tokens && a->n_merges == b->n_merges);
    int diff = 0;
    for (int32_t i = 0; i < a->n_tokens && i < b->n_tokens; i++) {
        diff += strcmp(a->tokens[i], b->tokens[i]) != 0 || a->types[i] != b->types[i];
        if (a->kind == SM_VOCAB_SPM) diff += a->scores[i] != b->scores[i];
    }
    for (int32_t i = 0; i < a->n_merges && i < b->n_merges; i++) diff += strcmp(a->merges[i], b->merges[i]) != 0;
    CHECK(diff == 0);
    CHECK(a->bos_id == b->bos_id && a->eos_id == b->eos_id && a->unk_id == b->unk_id && a->pad_id == b->pad_id);
    CHECK(a->add_bos == b->add_bos && a->add_eos == b->add_eos && a->add_space_prefix == b->add_space_prefix);
    CHECK((a->explicit_flags & 15) == (b->explicit_flags & 15) && !strcmp(a->pre, b->pre));
    CHECK((!a->chat_template && !b->chat_template) || (a->chat_template && b->chat_template && !strcmp(a->chat_template, b->chat_template)));
}

static void gguf_round_trip(void) {
    const char *dirs[4] = {tl_asset("models/tiny-llama-kjv"), src_path("tests/data/bpe-gpt2"),
                           src_path("tests/data/bpe-llama3"), src_path("tests/data/bpe-qwen2")};
    for (int k = 0; k < 4; k++) {
        sm_vocab v, back;
        REQUIRE_OK(sm_vocab_load_hf(dirs[k], &v));
        const char *p = tl_tmp("vocab.gguf");
        CHECK_OK(write_vocab_gguf(&v, p, false));
        CHECK_OK(sm_vocab_load(p, &back));
        same_vocab(&v, &back);
        if (k == 0) { /* the keys llama.cpp's converter writes for this folder, in its order */
            static const char *const KEYS[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                                               "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                                               "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                               "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"};
            sm_gguf *g;
            CHECK_OK(sm_gguf_open(p, &g));
            CHECK(sm_gguf_n_kv(g) == 9);
            for (size_t i = 0; i < 9 && i < sm_gguf_n_kv(g); i++) CHECK_MSG(!strcmp(sm_gguf_key(g, i), KEYS[i]), "key %zu", i);
            const sm_gguf_value *tt = sm_gguf_find(g, "tokenizer.ggml.token_type");
            CHECK(tt && tt->v.arr.type == SM_GGUF_INT32);
            const sm_gguf_value *bos = sm_gguf_find(g, "tokenizer.ggml.bos_token_id");
            CHECK(bos && bos->type == SM_GGUF_UINT32 && bos->v.u == 1);
            sm_gguf_close(g);
            sm_tokenizer *t = tokenizer_for(p);
            if (t) check_reference(t, "text/kjv-eval.txt", "models/tiny-llama-kjv/reference/tokens_eval.txt");
            sm_tokenizer_free(t);
        }
        sm_vocab_free(&v);
        sm_vocab_free(&back);
    }
}

/* With LLAMA_CPP_BIN: llama.cpp tokenizes fortunes-eval.txt with the vocabulary GGUF we wrote. */
static void llama_cpp_cross_check(void) {
    const char *bin = tl_llama_cpp_bin("llama.cpp tokenizer cross-check");
    if (!bin) return;
    sm_vocab v;
    REQUIRE_OK(sm_vocab_load_hf(tl_asset("models/tiny-llama-kjv"), &v));
    const char *p = tl_tmp("kjv-vocab.gguf"), *out = tl_tmp("llama-ids.txt");
    CHECK_OK(write_vocab_gguf(&v, p, true));
    sm_vocab_free(&v);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s/llama-tokenize' -m '%s' -f '%s' --ids --no-escape --no-parse-special --log-disable > '%s' 2>/dev/null",
             bin, p, tl_asset("text/fortunes-eval.txt"), out);
    CHECK(system(cmd) == 0);
    char *got = tl_slurp(out, NULL), *ref = tl_slurp(tl_asset("models/tiny-llama-kjv-lora-fortunes/reference/tokens_fortunes_eval.txt"), NULL);
    if (got && ref) {
        size_t na, nb;
        int32_t *a = parse_ids(got, &na), *b = parse_ids(ref, &nb);
        CHECK(same_ids(a, na, b, nb, "llama-tokenize on our GGUF"));
        free(a);
        free(b);
    }
    free(got);
    free(ref);
}

/* ---- malformed inputs ---- */

static void spm_malformed(void) {
    sm_vocab v;
    size_t len;
    char *model = tl_slurp(tl_asset("models/stories260k/tok512.model"), &len);
    CHECK(model != NULL);
    if (!model) return;
    /* every truncation fails cleanly or gives a smaller vocabulary */
    int failed = 0;
    for (size_t cut = 0; cut < len; cut += 7) {
        if (sm_vocab_parse_spm(model, cut, "cut", &v)) failed++;
        else sm_vocab_free(&v);
    }
    CHECK(failed > 0);
    CHECK_FAILS_WITH(sm_vocab_parse_spm(model, 100, "cut.model", &v), "cut.model: offset");
    free(model);

    CHECK_FAILS_WITH(sm_vocab_parse_spm("", 0, "empty", &v), "no pieces");
    static const uint8_t overflow[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    CHECK_FAILS_WITH(sm_vocab_parse_spm(overflow, sizeof overflow, "o", &v), "overflows");
    static const uint8_t too_long[] = {0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    CHECK_FAILS_WITH(sm_vocab_parse_spm(too_long, sizeof too_long, "l", &v), "overflows");
    static const uint8_t past_end[] = {0x0A, 0x05, 0x0A, 0x01, 'a'};
    CHECK_FAILS_WITH(sm_vocab_parse_spm(past_end, sizeof past_end, "p", &v), "runs past the end");
    static const uint8_t group[] = {0x23, 0x0C}; /* field 4, a group */
    CHECK_FAILS_WITH(sm_vocab_parse_spm(group, sizeof group, "g", &v), "wire type 3");
    static const uint8_t field0[] = {0x02, 0x00};
    CHECK_FAILS_WITH(sm_vocab_parse_spm(field0, sizeof field0, "f", &v), "field number");
    static const uint8_t wrong_wt[] = {0x0A, 0x02, 0x10, 0x01}; /* piece field 2 (score) as a varint */
    CHECK_FAILS_WITH(sm_vocab_parse_spm(wrong_wt, sizeof wrong_wt, "w", &v), "expected wire type 5");
    static const uint8_t bad_type[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x18, 0x09};
    CHECK_FAILS_WITH(sm_vocab_parse_spm(bad_type, sizeof bad_type, "t", &v), "type 9");
    /* one piece "a"; trainer_spec model_type WORD (3) */
    static const uint8_t word[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x12, 0x02, 0x18, 0x03};
    CHECK_FAILS_WITH(sm_vocab_parse_spm(word, sizeof word, "word", &v), "model_type 3 (WORD)");
    /* one piece "a"; the default bos_id 1 is out of range */
    static const uint8_t one[] = {0x0A, 0x03, 0x0A, 0x01, 'a'};
    CHECK_FAILS_WITH(sm_vocab_parse_spm(one, sizeof one, "one", &v), "bos_id 1 is out of range");
    /* the same with ids -1 (10-byte varints) and unknown fields (fixed64, fixed32) skipped */
    static const uint8_t ok[] = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x12, 0x1B, 0xC0, 0x02, 0x00,
                                 0xC8, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
                                 0xD0, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,
                                 0x29, 1, 2, 3, 4, 5, 6, 7, 8, 0x35, 1, 2, 3, 4};
    CHECK_OK(sm_vocab_parse_spm(ok, sizeof ok, "ok", &v));
    CHECK(v.n_tokens == 1 && v.unk_id == 0 && v.bos_id == -1 && v.eos_id == -1);
    sm_vocab_free(&v);
}

static void json_malformed(void) {
    sm_vocab v;
    const char *bad = "{\"model\": {\"type\": \"BPE\", ";
    CHECK_FAILS_WITH(sm_vocab_parse_tokenizer_json(bad, strlen(bad), "bad.json", &v), "bad.json: offset");
    const char *uni = "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
    CHECK_FAILS_WITH(sm_vocab_parse_tokenizer_json(uni, strlen(uni), "u", &v), "\"Unigram\" is not supported");
    const char *nopre = "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}";
    CHECK_FAILS_WITH(sm_vocab_parse_tokenizer_json(nopre, strlen(nopre), "w", &v), "pre_tokenizer not supported");
    const char *badid = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
                        "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}";
    CHECK_FAILS_WITH(sm_vocab_parse_tokenizer_json(badid, strlen(badid), "i", &v), "expected an id");
    /* ids left without a token are padded, up to 65536 beyond the tokens named: a few bytes
     * naming id 16M cost no millions of allocations (a libFuzzer timeout in CI) */
    const char *far = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
                      "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                      "\"added_tokens\": [{\"id\": 16777215, \"content\": \"<x>\"}]}";
    CHECK_FAILS_WITH(sm_vocab_parse_tokenizer_json(far, strlen(far), "far", &v),
                     "far: 16777214 token ids up to 16777215 have no token (2 tokens named)");
    const char *edge = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
                       "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 65537}, \"merges\": []}}";
    CHECK_OK(sm_vocab_parse_tokenizer_json(edge, strlen(edge), "edge", &v));
    CHECK(v.n_tokens == 65538 && v.types[1] == SM_TOKEN_UNUSED && !strcmp(v.tokens[65536], "[PAD65536]"));
    sm_vocab_free(&v);
    const char *over = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
                       "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 65538}, \"merges\": []}}";
    CHECK_FAILS_WITH(sm_vocab_parse_tokenizer_json(over, strlen(over), "over", &v), "expected at most 65536 unnamed ids");

    /* merges: both forms; a space inside a pair part becomes U+0120; merges naming unknown
     * tokens are refused when the tokenizer.json is read (HF tokenizers refuses them too), and
     * again by sm_tokenizer_new (a GGUF's merges) */
    const char *m = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
                    "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"c\": 3}, "
                    "\"merges\": [\"a b\", [\"a b\", \"c\"], [\"ab\", \"zz\"]]}}";
    CHECK_FAILS_WITH(sm_vocab_parse_tokenizer_json(m, strlen(m), "m", &v),
                     "m: model.merges[1] \"a\xC4\xA0" "b c\": its left part is not a token");
    const char *m2 = "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
                     "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2, \"c\": 3}, "
                     "\"merges\": [\"a b\", [\"a\", \"b\"], \"a b\"]}}";
    CHECK_OK(sm_vocab_parse_tokenizer_json(m2, strlen(m2), "m2", &v));
    CHECK(v.n_tokens == 4 && v.n_merges == 3 && !strcmp(v.merges[0], "a b") && !strcmp(v.merges[1], "a b"));
    CHECK(!strcmp(v.pre, "gpt-2") && v.bos_id == -1);
    free(v.merges[1]);
    v.merges[1] = strdup("a\xC4\xA0" "b c");
    sm_tokenizer *t;
    CHECK_FAILS_WITH(sm_tokenizer_new(&v, &t), "merge 1 \"a\xC4\xA0" "b c\": \"a\xC4\xA0" "b\" is not a token");
    free(v.merges[1]);
    v.merges[1] = strdup("ab zz");
    CHECK_FAILS_WITH(sm_tokenizer_new(&v, &t), "\"zz\" is not a token");
    free(v.merges[1]);
    v.merges[1] = strdup("abc");
    CHECK_FAILS_WITH(sm_tokenizer_new(&v, &t), "is not \"LEFT RIGHT\"");
    free(v.merges[1]);
    v.merges[1] = strdup("b c");
    CHECK_FAILS_WITH(sm_tokenizer_new(&v, &t), "the merged text is not a token");
    free(v.merges[1]);
    free(v.merges[2]);
    v.n_merges = 1;
    strcpy(v.pre, "default");
    CHECK_FAILS_WITH(sm_tokenizer_new(&v, &t), "pre-tokenizer 'default' is not supported");
    strcpy(v.pre, "gpt-2");
    v.bos_id = 4;
    CHECK_FAILS_WITH(sm_tokenizer_new(&v, &t), "BOS id 4 is out of range");
    v.bos_id = -1;
    CHECK_OK(sm_tokenizer_new(&v, &t));
    int32_t *ids;
    size_t n;
    CHECK_OK(sm_tokenize(t, "ab", 2, SM_TOK_ADD_SPECIAL, &ids, &n));
    CHECK(n == 1 && ids[0] == 2);
    free(ids);
    sm_tokenizer_free(t);
    v.add_bos = true;
    v.explicit_flags = SM_VOCAB_HAS_ADD_BOS;
    CHECK_OK(sm_tokenizer_new(&v, &t));
    CHECK_FAILS_WITH(sm_tokenize(t, "ab", 2, SM_TOK_ADD_SPECIAL, &ids, &n), "asks for a BOS token but has none");
    sm_tokenizer_free(t);
    sm_vocab_free(&v);

    CHECK_FAILS_WITH(sm_vocab_load_hf(src_path("tests/data"), &v), "no tokenizer.model or tokenizer.json");
}

/* The fuzz seeds are valid vocabularies (so that fuzzing starts from inputs that go deep). */
static void fuzz_seeds(void) {
    static const char *const DIRS[2] = {"tests/fuzz-seeds/spm", "tests/fuzz-seeds/tokenizer_json"};
    for (int k = 0; k < 2; k++) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "ls '%s' > '%s'", src_path(DIRS[k]), tl_tmp("seeds.txt"));
        CHECK(system(cmd) == 0);
        char *list = tl_slurp(tl_tmp("seeds.txt"), NULL);
        int n = 0;
        for (char *name = list ? strtok(list, "\n") : NULL; name; name = strtok(NULL, "\n"), n++) {
            char rel[512];
            snprintf(rel, sizeof rel, "%s/%s", DIRS[k], name);
            size_t len;
            char *data = tl_slurp(src_path(rel), &len);
            const char *sep = data ? memmem(data, len, "\0\0TEXT", 6) : NULL;
            size_t used = sep ? (size_t)(sep - data) : len;
            sm_vocab v;
            int rc = !data ? -1 : k == 0 ? sm_vocab_parse_spm(data, used, name, &v) : sm_vocab_parse_tokenizer_json(data, used, name, &v);
            CHECK_MSG(rc == 0, "%s: %s", rel, sm_last_error());
            sm_tokenizer *t = NULL;
            if (!rc) {
                CHECK_MSG(sm_tokenizer_new(&v, &t) == 0, "%s: %s", rel, sm_last_error());
                sm_vocab_free(&v);
            }
            sm_tokenizer_free(t);
            free(data);
        }
        CHECK(n >= 4);
        free(list);
    }
}

/* ---- Unicode tables (facts of the Unicode 15.1 character database) ---- */

static void unicode_classes(void) {
    CHECK(sm_ucat('a') == SM_UCAT_L && sm_ucat('Z') == SM_UCAT_L && sm_ucat('5') == SM_UCAT_N);
    CHECK(sm_ucat(' ') == SM_UCAT_Z && sm_ucat('!') == SM_UCAT_P && sm_ucat('$') == SM_UCAT_S && sm_ucat('\n') == SM_UCAT_C);
    CHECK(sm_ucat(0x00E9) == SM_UCAT_L && sm_ucat(0x0663) == SM_UCAT_N && sm_ucat(0x00BD) == SM_UCAT_N);
    CHECK(sm_ucat(0x0301) == SM_UCAT_M && sm_ucat(0x4E00) == SM_UCAT_L && sm_ucat(0x1F999) == SM_UCAT_S);
    CHECK(sm_ucat(0x31350) == SM_UCAT_L); /* CJK Extension H (Unicode 15.0) */
    CHECK(sm_ucat(0x2EBF0) == SM_UCAT_L); /* CJK Extension I (Unicode 15.1) */
    CHECK(sm_ucat(0x2FFC) == SM_UCAT_S);  /* ideographic description character (Unicode 15.1) */
    CHECK(sm_ucat(0x0378) == SM_UCAT_UNASSIGNED && sm_ucat(0x10FFFF) == SM_UCAT_UNASSIGNED && sm_ucat(0x110000) == SM_UCAT_UNASSIGNED);
    CHECK(sm_ucat(0xE000) == SM_UCAT_C && sm_ucat(0xD800) == SM_UCAT_C);
    CHECK(sm_uspace(' ') && sm_uspace('\t') && sm_uspace(0x0B) && sm_uspace(0x85) && sm_uspace(0xA0) && sm_uspace(0x3000));
    CHECK(!sm_uspace(0x1C) && !sm_uspace(0x200B) && !sm_uspace('a'));
    for (int b = 0; b < 256; b++) CHECK(sm_gpt2_cp_byte(sm_gpt2_byte_cp((uint8_t)b)) == b);
    CHECK(sm_gpt2_byte_cp(' ') == 0x120 && sm_gpt2_byte_cp('\n') == 0x10A && sm_gpt2_byte_cp('A') == 'A');
}

/* ---- the command ---- */

static void cli(void) {
    char args[2048], *out = NULL;
    snprintf(args, sizeof args, "tokenize '%s' --text '%s' --json", tl_asset("models/tiny-llama-kjv"), tl_asset("text/kjv-eval.txt"));
    CHECK(tl_run_smelt(args, &out) == 0);
    static const char head[] = "\"n_tokens\":43786,\"ids\":[1,";
    CHECK(out && !strncmp(out, "{\"schema_version\":1,\"command\":\"tokenize\"", 40) && strstr(out, head));
    free(out);
    const char *p = tl_tmp("once.txt");
    tl_write_file(p, "Once upon a time", 16);
    /* --quiet: only the ids (the summary line goes to stderr, which tl_run_smelt captures too) */
    snprintf(args, sizeof args, "tokenize '%s' --text '%s' --no-bos --quiet", tl_asset("models/stories260k/tok512.model"), p);
    CHECK(tl_run_smelt(args, &out) == 0);
    CHECK(out && !strcmp(out, "403 407 261 378\n"));
    free(out);
    snprintf(args, sizeof args, "tokenize '%s' --text '%s' --pieces", src_path("tests/data/bpe-gpt2"), p);
    CHECK(tl_run_smelt(args, &out) == 0);
    CHECK(out && out[0] >= '0' && out[0] <= '9' && strchr(out, '"'));
    free(out);
    snprintf(args, sizeof args, "tokenize '%s' --text '%s'", src_path("tests/data"), p);
    CHECK(tl_run_smelt(args, &out) == 1);
    CHECK(out && strstr(out, "no tokenizer.model or tokenizer.json"));
    free(out);
    CHECK(tl_run_smelt("tokenize", NULL) == 2);
}

void run_tests(void) {
    TEST(unicode_classes);
    TEST(kjv_hf_vocab);
    TEST(kjv_eval_tokens);
    TEST(fortunes_eval_tokens);
    TEST(kjv_tokenizer_model_alone);
    TEST(stories260k);
    TEST(spm_edge_cases);
    TEST(spm_hf_extras);
    TEST(bpe_gpt2);
    TEST(bpe_llama3);
    TEST(bpe_qwen2);
    TEST(bpe_gpt4o);
    TEST(gguf_round_trip);
    TEST(llama_cpp_cross_check);
    TEST(spm_malformed);
    TEST(json_malformed);
    TEST(fuzz_seeds);
    TEST(cli);
}
