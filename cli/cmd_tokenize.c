/* cmd_tokenize.c - `smelt tokenize MODEL --text FILE`: the token ids llama.cpp would give a text
 * (llama_tokenize with add_special, as llama-perplexity calls it), from a model's vocabulary. */
#include "cli.h"
#include "formats/formats.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TEXT ((size_t)1 << 30)

static const char USAGE[] =
    "usage: smelt tokenize MODEL --text FILE [--no-bos] [--parse-special] [--json | --pieces]\n"
    "\n"
    "Print the token ids of a text, as llama.cpp tokenizes it. MODEL: a Hugging Face model\n"
    "directory (tokenizer.model or tokenizer.json with their config files), a GGUF file, a\n"
    "SentencePiece tokenizer.model, or a tokenizer.json. FILE is read whole, as one string\n"
    "('-' reads standard input).\n"
    "\n"
    "  --no-bos          do not add the BOS (and EOS) tokens the vocabulary asks for\n"
    "  --parse-special   text such as \"<s>\" or \"<|eot_id|>\" becomes that control token\n"
    "                    (default: only user-defined tokens are matched in the text)\n"
    "  -f, --text FILE   the text (required)\n"
    "  --json            one JSON report: n_tokens, ids (fields: docs/json.md)\n"
    "  --quiet, -q       no summary line on stderr (the ids are still printed)\n"
    "  --pieces          one token per line: id, then the piece's bytes as a JSON string\n"
    "\n"
    "Default output: the ids on one line, separated by spaces; then (without --json or --quiet)\n"
    "the summary line on stderr: smelt tokenize: FILE: N tokens in TIME.\n";

static int read_stdin(char **out, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            if (cap >= MAX_TEXT) {
                free(buf);
                return sm_error("standard input: more than %zu bytes", MAX_TEXT);
            }
            cap *= 2;
            char *p = realloc(buf, cap + 1);
            if (!p) free(buf);
            buf = p;
        }
    }
    if (!buf) return sm_error("standard input: out of memory");
    buf[n] = 0;
    *out = buf;
    *len = n;
    return 0;
}

static void print_pieces(const sm_tokenizer *t, const int32_t *ids, size_t n) {
    char small[256];
    for (size_t i = 0; i < n; i++) {
        int len = sm_token_to_piece(t, ids[i], small, sizeof small);
        char *p = small;
        if (len >= (int)sizeof small) {
            p = malloc((size_t)len + 1);
            if (!p) continue;
            sm_token_to_piece(t, ids[i], p, (size_t)len);
        }
        p[len] = 0;
        cJSON *s = cJSON_CreateString(p); /* bytes that are not UTF-8 are printed as they are */
        char *js = cJSON_PrintUnformatted(s);
        printf("%d %s\n", ids[i], js ? js : "\"\"");
        free(js);
        cJSON_Delete(s);
        if (p != small) free(p);
    }
}

static int run(int argc, char **argv) {
    const char *text_path = NULL;
    cli_common com = {0};
    bool no_bos = false, parse_special = false, pieces = false;
    const cli_option opts[] = {
        CLI_OPT_JSON(com),
        {"-f --text --file", CLI_STR, &text_path, 0, 0, NULL},
        {"--no-bos", CLI_FLAG, &no_bos, 0, 0, NULL},
        {"--parse-special", CLI_FLAG, &parse_special, 0, 0, NULL},
        {"--pieces", CLI_FLAG, &pieces, 0, 0, NULL},
        {0},
    };
    const char *args[1];
    int nargs = 0;
    const int prc = cli_parse(&sm_cmd_tokenize, NULL, argc, argv, opts, args, 1, &nargs);
    if (prc) return prc;
    const char *model = nargs ? args[0] : NULL;
    const bool json = com.json;
    if (!model) return cli_usage_error(&sm_cmd_tokenize, "MODEL is missing");
    if (!text_path) return cli_usage_error(&sm_cmd_tokenize, "--text FILE is missing");
    if (json && pieces) return cli_usage_error(&sm_cmd_tokenize, "--json and --pieces exclude each other");
    const double t0 = sm_now();

    sm_vocab v;
    if (sm_vocab_load(model, &v)) return cli_fail_last("tokenize");
    sm_tokenizer *t;
    int rc = sm_tokenizer_new(&v, &t);
    sm_vocab_free(&v);
    if (rc) return cli_fail_last("tokenize");

    char *text;
    size_t len;
    if (strcmp(text_path, "-") ? sm_read_file(text_path, MAX_TEXT, &text, &len) : read_stdin(&text, &len)) {
        sm_tokenizer_free(t);
        return cli_fail_last("tokenize");
    }
    int32_t *ids;
    size_t n;
    unsigned flags = (no_bos ? 0 : SM_TOK_ADD_SPECIAL) | (parse_special ? SM_TOK_PARSE_SPECIAL : 0);
    rc = sm_tokenize(t, text, len, flags, &ids, &n);
    free(text);
    if (rc) {
        sm_tokenizer_free(t);
        return cli_fail_last("tokenize");
    }
    if (json) {
        const char *ins[2] = {model, text_path};
        cJSON *o = cli_report_new("tokenize", ins, 2, NULL);
        cJSON_AddNumberToObject(o, "n_tokens", (double)n);
        cJSON *arr = cJSON_AddArrayToObject(o, "ids");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(ids[i]));
        cli_report_print(o, NULL);
    } else if (pieces) {
        print_pieces(t, ids, n);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(ids);
    sm_tokenizer_free(t);
    if (fflush(stdout)) return cli_fail("tokenize", "cannot write the output");
    if (!json && !com.quiet) {
        char b1[32], b2[32];
        cli_summary("tokenize", strcmp(text_path, "-") ? text_path : "standard input", sm_now() - t0, "%s from %s",
                    cli_count(b1, sizeof b1, (long long)n, "token"), cli_bytes(b2, sizeof b2, (double)len));
    }
    return 0;
}

const sm_command sm_cmd_tokenize = {"tokenize", "print a text's token ids (as llama.cpp tokenizes it)", USAGE, run};
