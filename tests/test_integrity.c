/* test_integrity.c - what smelt reads is checked (issue 10, "integrity of what is read").
 * Fixtures are copies of the shared tiny-llama-kjv model (and its LoRA adapter) corrupted at
 * test time: a NaN/Inf in a weight, a flipped byte in a PyTorch storage, a re-zipped archive
 * with deflated entries, an adapter whose config `r` disagrees with its tensors, tokenizer
 * merges naming unknown tokens, a GGUF with more tokens than embedding rows or a rope
 * dimension count beyond the head size. Each case checks the refusal names what is wrong, and
 * that the valid input still goes through. */
#include "testlib.h"

#include "formats/formats.h"
#include "formats/gguf_internal.h"
#include "formats/zip_internal.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KJV "models/tiny-llama-kjv"
#define LORA "models/tiny-llama-kjv-lora-fortunes"

static char *slurp_or_fail(const char *path, size_t *n) {
    char *b = tl_slurp(path, n);
    CHECK_MSG(b != NULL, "cannot read %s", path);
    return b;
}

/* A writable copy of an asset directory at tl_tmp(name). */
static const char *copy_dir(const char *asset, const char *name) {
    static char dst[8][1024];
    static int k;
    char *d = dst[k++ % 8];
    snprintf(d, 1024, "%s", tl_tmp(name));
    char cmd[3072];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && chmod -R u+w '%s'", d, tl_asset(asset), d, d);
    CHECK(system(cmd) == 0);
    return d;
}

static char *join(const char *dir, const char *file) {
    static char b[8][2048];
    static int k;
    char *p = b[k++ % 8];
    snprintf(p, 2048, "%s/%s", dir, file);
    return p;
}

/* File offset and dtype of tensor `name` in a safetensors file (parsed here from its header). */
static long st_offset(const char *path, const char *name, int64_t *cols) {
    size_t n;
    char *b = slurp_or_fail(path, &n);
    if (!b) return -1;
    uint64_t hl;
    memcpy(&hl, b, 8);
    cJSON *h = cJSON_ParseWithLength(b + 8, (size_t)hl);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(h, name);
    long off = -1;
    if (t) {
        off = (long)(8 + hl + (uint64_t)cJSON_GetArrayItem(cJSON_GetObjectItem(t, "data_offsets"), 0)->valuedouble);
        cJSON *shape = cJSON_GetObjectItem(t, "shape");
        *cols = (int64_t)cJSON_GetArrayItem(shape, cJSON_GetArraySize(shape) - 1)->valuedouble;
    }
    CHECK_MSG(off >= 0, "%s: no tensor %s", path, name);
    cJSON_Delete(h);
    free(b);
    return off;
}

/* Overwrite `n` bytes at `off` of a file. */
static void patch(const char *path, long off, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fseek(f, off, SEEK_SET) == 0 && fwrite(bytes, 1, n, f) == n);
    fclose(f);
}

/* Put a bf16 value (NaN 0x7fc0, +Inf 0x7f80) at [row, col] of a BF16 tensor of a safetensors file. */
static void put_bf16(const char *file, const char *tensor, int64_t row, int64_t col, uint16_t v) {
    int64_t cols = 0;
    long off = st_offset(file, tensor, &cols);
    if (off < 0) return;
    patch(file, off + (long)(2 * (row * cols + col)), &v, 2);
}

static bool exists(const char *p) { return access(p, F_OK) == 0; }

/* ---- 1. NaN/Inf weights ---- */

static void nonfinite_weights(void) {
    char m[1024], pass[1024], mo[1024];
    snprintf(m, sizeof m, "%s", copy_dir(KJV, "nan-model"));
    put_bf16(join(m, "model.safetensors"), "model.layers.1.mlp.down_proj.weight", 37, 501, 0x7fc0); /* NaN */
    char args[4096], *log = NULL;
    /* bf16 out: written straight from the file; f16 out: cast; q8_0: the codec path */
    const char *outtypes[] = {"auto", "f16", "q8_0"};
    for (int k = 0; k < 3; k++) {
        const char *out = tl_tmp("nan.gguf");
        snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype %s --quiet", m, out, outtypes[k]);
        int rc = tl_run_smelt(args, &log);
        CHECK_MSG(rc != 0 && strstr(log, "model.layers.1.mlp.down_proj.weight") && strstr(log, "row 37, column 501") &&
                      strstr(log, "nan"),
                  "%s: rc %d: %s", outtypes[k], rc, log);
        CHECK(!exists(out));
        free(log);
    }
    /* quantize straight from the HF directory: the same refusal */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --quiet", m, tl_tmp("nanq.gguf"));
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "row 37, column 501"), "%s", log);
    free(log);
    /* --allow-nonfinite passes them through; the GGUF then holds them */
    snprintf(pass, sizeof pass, "%s", tl_tmp("nan-pass.gguf"));
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype f16 --allow-nonfinite --quiet", m, pass);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    /* quantize of that GGUF: through the codec, or kept as it is (F16 -> F16): both refuse */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0 --quiet", pass, tl_tmp("nan-q8.gguf"));
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "row 37") && strstr(log, "column 501"), "%s", log);
    free(log);
    snprintf(args, sizeof args, "quantize '%s' '%s' F16 --quiet", pass, tl_tmp("nan-f16.gguf"));
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "blk.1.ffn_down") && strstr(log, "row 37, column 501"), "%s", log);
    free(log);
    snprintf(args, sizeof args, "quantize '%s' '%s' F16 --allow-nonfinite --quiet", pass, tl_tmp("nan-f16.gguf"));
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    /* ppl on NaN weights: the result is NaN and the exit status says so */
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 64 --chunks 1 --threads 1", pass, tl_asset("text/kjv-eval.txt"));
    int rc = tl_run_smelt(args, &log);
    CHECK_MSG(rc != 0 && strstr(log, "not finite"), "rc %d: %s", rc, log);
    free(log);
    /* lora merge: a NaN in the base, and a merge whose result overflows (weight 1e30) */
    snprintf(mo, sizeof mo, "%s", tl_tmp("nan-merged"));
    snprintf(args, sizeof args, "lora merge '%s' --adapter '%s' -o '%s' --quiet", m, tl_asset(LORA), mo);
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "row 37, column 501"), "%s", log);
    free(log);
    CHECK(!exists(join(mo, "model.safetensors")));
    /* weight 1e30: finite in float, beyond f16; weight 1e300: beyond float itself */
    const char *how[] = {"1e30' --dtype f16", "1e300'"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "lora merge '%s' --adapter '%s:%s -o '%s' --quiet", tl_asset(KJV), tl_asset(LORA), how[k], mo);
        CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "the LoRA merge gives") && strstr(log, "row ") &&
                      strstr(log, "inf"),
                  "%s", log);
        free(log);
        CHECK(!exists(join(mo, "model.safetensors")));
    }
    /* the same overflows merged on the fly by convert */
    const char *how2[] = {"1e30' --outtype f16", "1e300'", "1e300' --outtype q8_0"};
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof args, "convert '%s' --lora '%s:%s -o '%s' --quiet", tl_asset(KJV), tl_asset(LORA), how2[k],
                 tl_tmp("overflow.gguf"));
        CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "the LoRA merge gives") && strstr(log, "inf"), "%s", log);
        free(log);
        CHECK(!exists(tl_tmp("overflow.gguf")));
    }
    /* and a sane weight still merges */
    snprintf(args, sizeof args, "lora merge '%s' --adapter '%s:0.5' -o '%s' --dtype f16 --quiet", tl_asset(KJV), tl_asset(LORA), mo);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
}

void run_tests(void) {
    TEST(nonfinite_weights);
}
