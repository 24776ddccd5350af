/* fuzz_spm.c - libFuzzer target for the SentencePiece model reader: parse arbitrary bytes with
 * sm_vocab_parse_spm and, when they parse, build a tokenizer and tokenize a few texts (and
 * detokenize the result), so that ASan/UBSan see the whole path a hostile tokenizer.model
 * takes. Input layout: the model bytes, optionally followed by "\0\0TEXT" with a text of the
 * fuzzer's choosing. */
#include "formats/formats.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

static void run(const sm_tokenizer *t, const char *text, size_t len, unsigned flags) {
    int32_t *ids;
    size_t n;
    if (sm_tokenize(t, text, len, flags, &ids, &n)) return;
    char *back;
    size_t blen;
    if (!sm_detokenize(t, ids, n, &back, &blen)) free(back);
    char piece[8];
    for (size_t i = 0; i < n; i++) sm_token_to_piece(t, ids[i], piece, sizeof piece);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *sep = size >= 2 ? memmem(data, size, "\0\0TEXT", 6) : NULL;
    size_t model_len = sep ? (size_t)(sep - data) : size;
    sm_vocab v;
    if (sm_vocab_parse_spm(data, model_len, "fuzz", &v)) return 0;
    sm_tokenizer *t;
    int rc = sm_tokenizer_new(&v, &t);
    sm_vocab_free(&v);
    if (rc) return 0;
    static const char fixed[] = " Hello  world\n\xE2\x96\x81x <s>\xff\xc3 42 <0x41>";
    run(t, fixed, sizeof fixed - 1, SM_TOK_ADD_SPECIAL | SM_TOK_PARSE_SPECIAL);
    if (sep) run(t, (const char *)sep + 6, size - model_len - 6, SM_TOK_ADD_SPECIAL);
    sm_tokenizer_free(t);
    return 0;
}
