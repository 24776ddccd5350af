/* test_checks.c - every check before the work, with the user's words in the error (issue 10).
 *
 * Each case runs the CLI the way a user would get it wrong and asserts the exit status, what
 * the message says (the user's path, what the file is, what was wanted), that no output and
 * no temporary file were left, and for the early checks that they came before the work (no
 * progress line, and well under the time the work takes). */
#include "testlib.h"

#include "calib/calib.h"
#include "formats/formats.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KJV "models/tiny-llama-kjv"
#define STORIES "models/stories260k"
#define EVAL "text/kjv-eval.txt"
#define CALIB "text/kjv-calib.txt"

static char g_model[1024]; /* the KJV model as an F32 GGUF in the temporary directory */

/* tl_tmp / tl_asset keep 8 paths live; these keep every path until the end */
static char *g_keep[256];
static size_t g_n_keep;
static const char *keep(const char *p) {
    char *c = strdup(p);
    if (g_n_keep < sizeof g_keep / sizeof g_keep[0]) g_keep[g_n_keep++] = c;
    return c;
}
#define TMP(name) keep(tl_tmp(name))
#define ASSET(rel) keep(tl_asset(rel))

static const char *model_gguf(void) {
    if (!g_model[0]) {
        char args[2048];
        snprintf(g_model, sizeof g_model, "%s", tl_tmp("kjv.gguf"));
        snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype f32 --quiet", tl_asset(KJV), g_model);
        CHECK(tl_run_smelt(args, NULL) == 0);
    }
    return g_model;
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* No "*.tmp.*" or "*.src.gguf" file anywhere directly in dir. */
static bool no_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return true;
    bool clean = true;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.") || strstr(e->d_name, ".src.gguf")) {
            fprintf(stderr, "  left behind: %s/%s\n", dir, e->d_name);
            clean = false;
        }
    closedir(d);
    return clean;
}

/* Run args; check the exit status, that the output names every needle (NULL-terminated list),
 * and that it took less than max_s seconds. */
static void expect_run(const char *args, int want_rc, double max_s, const char *const *needles) {
    char *out = NULL;
    const double t0 = sm_now();
    const int rc = tl_run_smelt(args, &out);
    const double dt = sm_now() - t0;
    CHECK_MSG(rc == want_rc, "smelt %s: exit %d, expected %d: %s", args, rc, want_rc, out ? out : "");
    for (int i = 0; needles && needles[i]; i++)
        CHECK_MSG(out && strstr(out, needles[i]), "smelt %s: the message does not say \"%s\": %s", args, needles[i],
                  out ? out : "");
    CHECK_MSG(dt < max_s, "smelt %s took %.2f s: the check did not come before the work", args, dt);
    CHECK_MSG(!out || (!strstr(out, "gptq: layer") && !strstr(out, "gptq: converting") && !strstr(out, " entries from ")),
              "smelt %s did work before failing: %s", args, out ? out : "");
    free(out);
}
#define EXPECT(args, rc, ...) expect_run(args, rc, 5.0, (const char *const[]){__VA_ARGS__, NULL})

/* ---- 1. output paths, recipe names and option values, before any work ---- */

static void output_checks(void) {
    char args[4096];
    const char *m = model_gguf();
    const char *dir = TMP("outdir");
    mkdir(dir, 0755);
    char missing[1024];
    snprintf(missing, sizeof missing, "%s", TMP("no-such-dir/out.gguf"));
    char file[1024];
    snprintf(file, sizeof file, "%s", TMP("a-file"));
    CHECK(tl_write_file(file, "x", 1) == 0);

    /* gptq -o EXISTING_DIR: used to run every layer and then fail at the rename */
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:Q4_K_M -o '%s' --samples 4 --seqlen 64", ASSET(KJV),
             ASSET(CALIB), dir);
    EXPECT(args, 1, dir, "is a directory");
    /* --to gguf:q4km: used to fail after the conversion */
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:q4km -o '%s'", ASSET(KJV), ASSET(CALIB),
             TMP("g.gguf"));
    EXPECT(args, 2, "unknown recipe 'q4km'", "Q4_K_M");
    CHECK(!exists(TMP("g.gguf")));
    /* gptq --to hf -o A_FILE: a directory output over a file */
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to hf -o '%s' --samples 4 --seqlen 64", ASSET(KJV),
             ASSET(CALIB), file);
    EXPECT(args, 1, file, "not a directory");
    /* gptq into a directory that does not exist */
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:Q8_0 -o '%s' --samples 4 --seqlen 64", m,
             ASSET(CALIB), missing);
    EXPECT(args, 1, missing, "does not exist");

    snprintf(args, sizeof args, "convert '%s' -o '%s'", ASSET(KJV), dir);
    EXPECT(args, 1, dir, "is a directory");
    snprintf(args, sizeof args, "convert '%s' -o '%s'", ASSET(KJV), missing);
    EXPECT(args, 1, missing, "does not exist");
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M", m, dir);
    EXPECT(args, 1, dir, "is a directory");
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M", ASSET(KJV), missing);
    EXPECT(args, 1, missing, "does not exist");
    snprintf(args, sizeof args, "imatrix '%s' --text '%s' -o '%s' --chunks 2", m, ASSET(CALIB), dir);
    EXPECT(args, 1, dir, "is a directory");
    snprintf(args, sizeof args, "imatrix '%s' --text '%s' -o '%s' --chunks 2", m, ASSET(CALIB), missing);
    EXPECT(args, 1, missing, "does not exist");
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --save-logits '%s'", m, ASSET(EVAL), dir);
    EXPECT(args, 1, "--save-logits", dir, "is a directory");
    snprintf(args, sizeof args, "lora merge '%s' --adapter '%s' -o '%s'", ASSET(KJV),
             ASSET("models/tiny-llama-kjv-lora-fortunes"), file);
    EXPECT(args, 1, file, "not a directory");
    snprintf(args, sizeof args, "lora export '%s' --base '%s' -o '%s'", ASSET("models/tiny-llama-kjv-lora-fortunes"),
             ASSET(KJV), dir);
    EXPECT(args, 1, dir, "is a directory");
    CHECK(!exists(missing));
    CHECK(no_leftovers(tl_tmpdir()) && no_leftovers(dir));

    /* recipe names: case-insensitive exact names, as llama-quantize takes them */
    snprintf(args, sizeof args, "quantize '%s' '%s' q8_0 --quiet", m, TMP("lower.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' q4km", m, TMP("bad.gguf"));
    EXPECT(args, 2, "unknown quantization 'q4km'", "Q4_K_M");
    CHECK(!exists(TMP("bad.gguf")));
}

/* ---- 2. an importance matrix that does not match the model ---- */

/* An imatrix with an entry for every quantizable block weight of the model (rows of the
 * tensor's width), except `skip`, and `wrong` given 3 values too many. */
static void make_imatrix(const char *path, const char *skip, const char *wrong) {
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(model_gguf(), &g));
    if (!g) return;
    sm_imatrix im = {0};
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        if (strncmp(t->name, "blk.", 4) || t->n_dims != 2 || (skip && !strcmp(t->name, skip))) continue;
        const int64_t n = sm_tensor_row_len(t) + (wrong && !strcmp(t->name, wrong) ? 3 : 0);
        float *sums = malloc((size_t)n * sizeof *sums);
        for (int64_t k = 0; k < n; k++) sums[k] = 1.0f + (float)(k % 7);
        const int64_t count = 1;
        CHECK_OK(sm_imatrix_add(&im, t->name, 1, n, sums, &count));
        free(sums);
    }
    CHECK_OK(sm_imatrix_save_gguf(&im, path));
    sm_imatrix_free(&im);
    sm_gguf_close(g);
}

static void imatrix_mismatch(void) {
    char args[4096];
    const char *m = model_gguf();
    char good[1024], missing[1024], wrong[1024];
    snprintf(good, sizeof good, "%s", TMP("good.imatrix"));
    snprintf(missing, sizeof missing, "%s", TMP("missing.imatrix"));
    snprintf(wrong, sizeof wrong, "%s", TMP("wrong.imatrix"));
    make_imatrix(good, NULL, NULL);
    make_imatrix(missing, "blk.2.ffn_up.weight", NULL);
    make_imatrix(wrong, NULL, "blk.1.attn_v.weight");
    const char *out = TMP("im.gguf");

    /* a matching matrix is used and recorded */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --imatrix '%s' --quiet", m, out, good);
    CHECK(tl_run_smelt(args, NULL) == 0);
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(out, &g));
    if (g) CHECK(sm_gguf_get_str(g, "quantize.imatrix.file") != NULL);
    sm_gguf_close(g);
    remove(out);

    /* a block tensor without an entry, and an entry of the wrong size: refused, naming the
     * tensor, from a GGUF and from the Hugging Face directory alike */
    const char *inputs[2] = {m, ASSET(KJV)};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --imatrix '%s'", inputs[i], out, missing);
        EXPECT(args, 1, missing, "no entry for blk.2.ffn_up.weight");
        CHECK(!exists(out));
        snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --imatrix '%s'", inputs[i], out, wrong);
        EXPECT(args, 1, wrong, "blk.1.attn_v.weight has 259 values");
        CHECK(!exists(out));
    }
    /* a model is not an importance matrix */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0 --imatrix '%s'", m, out, model_gguf());
    EXPECT(args, 1, "not an importance matrix");
    CHECK(!exists(out) && no_leftovers(tl_tmpdir()));
}

/* ---- 3. what a file is, by its first bytes ---- */

static void sniff_kinds(void) {
    const char *lora_only = TMP("lora-only");
    mkdir(lora_only, 0755);
    char p[1024];
    snprintf(p, sizeof p, "%s/adapter_config.json", lora_only);
    CHECK(tl_write_file(p, "{}", 2) == 0);
    CHECK(tl_write_file(TMP("empty"), "", 0) == 0);
    CHECK(tl_write_file(TMP("logits.bin"), "_logits_\x00\x02\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00", 20) == 0);
    static const unsigned char dat[] = {1, 0, 0, 0, 19, 0, 0, 0, 'b', 'l', 'k', '.', '0', '.', 'a', 't', 't', 'n',
                                        '_', 'q', '.', 'w', 'e', 'i', 'g', 'h', 't', 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 128, 63};
    CHECK(tl_write_file(TMP("im.dat"), dat, sizeof dat) == 0);
    /* a llama2.c header whose dim (640) starts with the bytes of a pickle's protocol 2 */
    static const int32_t l2c[7] = {640, 1728, 2, 10, 10, 32000, 256};
    CHECK(tl_write_file(TMP("l2c.bin"), l2c, sizeof l2c) == 0);
    CHECK(tl_write_file(TMP("text.txt"), "In the beginning God created the heaven and the earth.\n", 56) == 0);
    const struct { const char *path; sm_file_kind kind; } cases[] = {
        {model_gguf(), SM_FILE_GGUF},
        {ASSET(KJV), SM_FILE_HF_DIR},
        {lora_only, SM_FILE_LORA_DIR},
        {tl_tmpdir(), SM_FILE_DIR},
        {ASSET(KJV "/model.safetensors"), SM_FILE_SAFETENSORS},
        {ASSET(KJV "/pytorch/pytorch_model.bin"), SM_FILE_ZIP},
        {ASSET(STORIES "/stories260K.bin"), SM_FILE_LLAMA2C},
        {ASSET(STORIES "/stories260K_q8.bin"), SM_FILE_LLAMA2C_AK42},
        {ASSET(STORIES "/tok512.model"), SM_FILE_SPM},
        {ASSET(KJV "/config.json"), SM_FILE_JSON},
        {TMP("logits.bin"), SM_FILE_LOGITS},
        {TMP("im.dat"), SM_FILE_IMATRIX_DAT},
        {TMP("empty"), SM_FILE_EMPTY},
        {TMP("text.txt"), SM_FILE_UNKNOWN},
        {TMP("l2c.bin"), SM_FILE_LLAMA2C},
        {TMP("nothing-here"), SM_FILE_MISSING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const sm_file_kind k = sm_sniff(cases[i].path, NULL);
        CHECK_MSG(k == cases[i].kind, "%s: sniffed as %s, expected %s", cases[i].path, sm_file_kind_name(k),
                  sm_file_kind_name(cases[i].kind));
    }
    int v = 0;
    CHECK(sm_sniff(ASSET(STORIES "/stories260K_q8.bin"), &v) == SM_FILE_LLAMA2C_AK42 && v == 2);
    CHECK(sm_sniff(model_gguf(), &v) == SM_FILE_GGUF && v == 3);
}

static void sniff_errors(void) {
    char args[4096];
    const char *out = TMP("s.gguf");
    /* convert x.gguf used to say "dim = 1179993927, expected 1..1048576" */
    snprintf(args, sizeof args, "convert '%s' -o '%s'", model_gguf(), out);
    EXPECT(args, 1, "this is a GGUF file", "expected a Hugging Face model directory", "smelt quantize");
    snprintf(args, sizeof args, "convert '%s' -o '%s'", ASSET(STORIES "/stories260K_q8.bin"), out);
    EXPECT(args, 1, "llama2.c version 2 export", "version-0");
    snprintf(args, sizeof args, "convert '%s' -o '%s'", ASSET(EVAL), out);
    EXPECT(args, 1, "not a file kind smelt knows");
    snprintf(args, sizeof args, "ppl '%s' --text '%s'", ASSET(KJV "/model.safetensors"), ASSET(EVAL));
    EXPECT(args, 1, "this is a safetensors file", "expected a model");
    snprintf(args, sizeof args, "ppl '%s' --text '%s'", TMP("im.dat"), ASSET(EVAL));
    EXPECT(args, 1, "this is an importance matrix", "expected a model");
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0", ASSET(STORIES "/tok512.model"), out);
    EXPECT(args, 1, "SentencePiece", "expected an F32/F16/BF16 GGUF");
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0 --imatrix '%s'", model_gguf(), out, TMP("logits.bin"));
    EXPECT(args, 1, "log-probability file", "expected an importance matrix");
    snprintf(args, sizeof args, "tokenize '%s' --text '%s'", ASSET(KJV "/model.safetensors"), ASSET(EVAL));
    EXPECT(args, 1, "this is a safetensors file", "expected a tokenizer");
    snprintf(args, sizeof args, "lora merge '%s' --adapter '%s' -o '%s'", ASSET(KJV), ASSET(KJV "/model.safetensors"),
             TMP("merged"));
    EXPECT(args, 1, "safetensors file", "LoRA adapter directory");
    snprintf(args, sizeof args, "inspect '%s'", TMP("logits.bin"));
    EXPECT(args, 1, "log-probability file");
    CHECK(!exists(out) && !exists(TMP("merged")) && no_leftovers(tl_tmpdir()));
}

/* ---- 4. a context beyond the model's training context ---- */

static void ctx_beyond_training(void) {
    char args[4096], *out = NULL;
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 1024 --chunks 1", model_gguf(), ASSET(EVAL));
    CHECK(tl_run_smelt(args, &out) == 0);
    CHECK_MSG(out && strstr(out, "warning") && strstr(out, "trained on only 512 context tokens (1024 specified)"), "%s",
              out ? out : "");
    free(out);
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 512 --chunks 1", model_gguf(), ASSET(EVAL));
    CHECK(tl_run_smelt(args, &out) == 0);
    CHECK_MSG(out && !strstr(out, "warning"), "%s", out ? out : "");
    free(out);
}

/* ---- 5. the user's path and the precise cause in the message ---- */

/* A copy of the KJV directory (weights copied, the rest linked) with one weight not finite. */
static const char *model_with_nan(const char *tensor, int64_t row, int64_t col) {
    const char *dir = TMP("nan-model");
    mkdir(dir, 0755);
    static const char *const files[] = {"config.json", "tokenizer.model", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    char a[1024], b[1024];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", ASSET(KJV), files[i]);
        snprintf(b, sizeof b, "%s/%s", dir, files[i]);
        CHECK(symlink(a, b) == 0);
    }
    size_t n = 0;
    unsigned char *st = (unsigned char *)tl_slurp(ASSET(KJV "/model.safetensors"), &n);
    if (!st) return dir;
    uint64_t hlen = 0;
    memcpy(&hlen, st, 8);
    cJSON *h = cJSON_ParseWithLength((const char *)st + 8, (size_t)hlen);
    const cJSON *t = cJSON_GetObjectItem(h, tensor);
    const cJSON *shape = cJSON_GetObjectItem(t, "shape"), *offs = cJSON_GetObjectItem(t, "data_offsets");
    CHECK(t && !strcmp(cJSON_GetObjectItem(t, "dtype")->valuestring, "BF16"));
    if (t) {
        const int64_t cols = (int64_t)cJSON_GetArrayItem(shape, 1)->valuedouble;
        const uint64_t at = 8 + hlen + (uint64_t)cJSON_GetArrayItem(offs, 0)->valuedouble + (uint64_t)(row * cols + col) * 2;
        st[at] = 0xc0; /* bf16 0x7fc0: a quiet NaN */
        st[at + 1] = 0x7f;
    }
    cJSON_Delete(h);
    snprintf(b, sizeof b, "%s/model.safetensors", dir);
    CHECK(tl_write_file(b, st, n) == 0);
    free(st);
    return dir;
}

static void precise_messages(void) {
    char args[4096], *out = NULL;
    /* the output's name, not its temporary's */
    char name[512];
    memset(name, 'x', 250);
    name[250] = 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tl_tmpdir(), name);
    sm_outfile *o = sm_outfile_open(path); /* the name fits; "<name>.tmp.<pid>" does not */
    CHECK(o == NULL);
    sm_outfile_abort(o);
    CHECK_MSG(strstr(sm_last_error(), name) && !strstr(sm_last_error(), ".tmp."), "%s", sm_last_error());

    /* a non-finite weight: the codec's reason (row and column of the checkpoint tensor) is kept */
    const char *dir = model_with_nan("model.layers.1.mlp.down_proj.weight", 37, 5);
    const char *q = TMP("nan.gguf");
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M", dir, q);
    CHECK(tl_run_smelt(args, &out) == 1);
    CHECK_MSG(out && strstr(out, "blk.1.ffn_down.weight") && strstr(out, "row 37") && strstr(out, "column 5") &&
                  !strstr(out, "failed"),
              "%s", out ? out : "");
    free(out);
    CHECK(!exists(q) && no_leftovers(tl_tmpdir()));

    /* ppl of a directory whose tokenizer does not parse: the parse error, not "no tokenizer" */
    const char *bt = TMP("broken-tok");
    mkdir(bt, 0755);
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/config.json", ASSET(KJV));
    snprintf(b, sizeof b, "%s/config.json", bt);
    CHECK(symlink(a, b) == 0);
    snprintf(a, sizeof a, "%s/model.safetensors", ASSET(KJV));
    snprintf(b, sizeof b, "%s/model.safetensors", bt);
    CHECK(symlink(a, b) == 0);
    snprintf(b, sizeof b, "%s/tokenizer.json", bt);
    CHECK(tl_write_file(b, "{\"model\": {\"type\": \"BPE\", \"vocab\": {", 36) == 0);
    snprintf(args, sizeof args, "ppl '%s' --text '%s'", bt, ASSET(EVAL));
    CHECK(tl_run_smelt(args, &out) == 1);
    CHECK_MSG(out && strstr(out, "tokenizer.json") && strstr(out, "cannot load the tokenizer") &&
                  !strstr(out, "has no tokenizer"),
              "%s", out ? out : "");
    free(out);
}

/* ---- 6. --threads beyond what the OpenMP runtime can start ---- */

static void threads_bound(void) {
    char args[4096];
    const char *out = TMP("t.gguf");
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --threads 4096", model_gguf(), out);
    EXPECT(args, 2, "--threads 4096", "1 to 512");
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --threads 4096", model_gguf(), ASSET(EVAL));
    EXPECT(args, 2, "--threads 4096");
    snprintf(args, sizeof args, "imatrix '%s' --text '%s' -o '%s' --threads 1000", model_gguf(), ASSET(CALIB), out);
    EXPECT(args, 2, "--threads 1000");
    snprintf(args, sizeof args, "gptq '%s' --calib '%s' --to gguf:Q8_0 -o '%s' --threads 600", model_gguf(),
             ASSET(CALIB), out);
    EXPECT(args, 2, "--threads 600");
    CHECK(!exists(out) && no_leftovers(tl_tmpdir()));
    /* the limit itself works (and gives the same bytes: the output does not depend on threads) */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --threads 512 --quiet", model_gguf(), out);
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --threads 1 --quiet", model_gguf(), TMP("t1.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    CHECK(tl_same_file(out, TMP("t1.gguf")));
}

void run_tests(void) {
    TEST(output_checks);
    TEST(imatrix_mismatch);
    TEST(sniff_kinds);
    TEST(sniff_errors);
    TEST(ctx_beyond_training);
    TEST(precise_messages);
    TEST(threads_bound);
    for (size_t i = 0; i < g_n_keep; i++) free(g_keep[i]);
}
