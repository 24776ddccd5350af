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
#include <zlib.h>

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

/* ---- 2. PyTorch archives: CRC-32 of every entry read; deflated entries ---- */

typedef struct buf { uint8_t *b; size_t n, cap; } buf;
static void put(buf *o, const void *p, size_t n) {
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2;
        o->b = realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put16(buf *o, uint32_t v) { uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; put(o, b, 2); }
static void put32(buf *o, uint32_t v) { put16(o, v & 0xffff); put16(o, v >> 16); }

/* The archive's entries re-written as a plain zip (no zip64), each deflated (raw deflate by
 * zlib, level 6) when `deflated`, else stored: an independent writer, not smelt's reader. */
static buf rezip(const sm_zip *z, bool deflated) {
    buf o = {0}, cd = {0};
    for (size_t i = 0; i < z->n_entries; i++) {
        const sm_zip_entry *e = &z->entries[i];
        const uint8_t *d = sm_zip_entry_data(z, e);
        uint8_t *c = NULL;
        size_t cn = e->size;
        if (deflated) {
            z_stream st;
            memset(&st, 0, sizeof st);
            CHECK(deflateInit2(&st, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
            cn = deflateBound(&st, (uLong)e->size);
            c = malloc(cn);
            st.next_in = (Bytef *)(uintptr_t)d;
            st.avail_in = (uInt)e->size;
            st.next_out = c;
            st.avail_out = (uInt)cn;
            CHECK(deflate(&st, Z_FINISH) == Z_STREAM_END);
            cn = st.total_out;
            deflateEnd(&st);
        }
        uint32_t crc = (uint32_t)crc32(0, d, (uInt)e->size), lho = (uint32_t)o.n, nlen = (uint32_t)strlen(e->name);
        uint16_t method = deflated ? 8 : 0;
        put32(&o, 0x04034b50), put16(&o, 20), put16(&o, 0), put16(&o, method), put16(&o, 0), put16(&o, 0x21);
        put32(&o, crc), put32(&o, (uint32_t)cn), put32(&o, (uint32_t)e->size), put16(&o, nlen), put16(&o, 0);
        put(&o, e->name, nlen);
        put(&o, c ? c : d, cn);
        put32(&cd, 0x02014b50), put16(&cd, 20), put16(&cd, 20), put16(&cd, 0), put16(&cd, method), put16(&cd, 0);
        put16(&cd, 0x21), put32(&cd, crc), put32(&cd, (uint32_t)cn), put32(&cd, (uint32_t)e->size), put16(&cd, nlen);
        put16(&cd, 0), put16(&cd, 0), put16(&cd, 0), put16(&cd, 0), put32(&cd, 0), put32(&cd, lho);
        put(&cd, e->name, nlen);
        free(c);
    }
    uint32_t cd_off = (uint32_t)o.n;
    put(&o, cd.b, cd.n);
    put32(&o, 0x06054b50), put16(&o, 0), put16(&o, 0), put16(&o, (uint32_t)z->n_entries), put16(&o, (uint32_t)z->n_entries);
    put32(&o, (uint32_t)cd.n), put32(&o, cd_off), put16(&o, 0);
    free(cd.b);
    return o;
}

/* This process's resident pages of mapped files (RssFile in /proc/self/status), in KiB; -1 if
 * unknown. */
static long rss_file_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssFile: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

/* The CRC-32 pass over a stored entry of a mapped archive keeps at most its 64 MiB step
 * resident, not the whole entry (it summed the whole storage through the mapping before, so
 * opening a large pytorch_model.bin made all of it resident). A 192 MiB stored entry, written
 * by an independent writer (zlib's crc32). */
static void crc_pass_bounded(void) {
    const char *path = tl_tmp("big-stored.zip");
    const char *name = "archive/data/0";
    const uint32_t size = 192u << 20, nlen = (uint32_t)strlen(name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    enum { PIECE = 1 << 20 };
    uint8_t *piece = malloc(PIECE);
    CHECK(piece != NULL);
    if (!piece) { fclose(f); return; }
    uLong crc = crc32(0, NULL, 0);
    for (uint32_t i = 0; i < PIECE; i++) piece[i] = (uint8_t)(i * 2654435761u >> 13);
    for (uint32_t at = 0; at < size; at += PIECE) crc = crc32(crc, piece, PIECE);
    buf h = {0};
    put32(&h, 0x04034b50), put16(&h, 20), put16(&h, 0), put16(&h, 0), put16(&h, 0), put16(&h, 0x21);
    put32(&h, (uint32_t)crc), put32(&h, size), put32(&h, size), put16(&h, nlen), put16(&h, 0);
    put(&h, name, nlen);
    const uint32_t data_off = (uint32_t)h.n;
    CHECK(fwrite(h.b, 1, h.n, f) == h.n);
    for (uint32_t at = 0; at < size; at += PIECE) CHECK(fwrite(piece, 1, PIECE, f) == PIECE);
    buf cd = {0};
    put32(&cd, 0x02014b50), put16(&cd, 20), put16(&cd, 20), put16(&cd, 0), put16(&cd, 0), put16(&cd, 0);
    put16(&cd, 0x21), put32(&cd, (uint32_t)crc), put32(&cd, size), put32(&cd, size), put16(&cd, nlen);
    put16(&cd, 0), put16(&cd, 0), put16(&cd, 0), put16(&cd, 0), put32(&cd, 0), put32(&cd, 0);
    put(&cd, name, nlen);
    const uint32_t cd_len = (uint32_t)cd.n;
    put32(&cd, 0x06054b50), put16(&cd, 0), put16(&cd, 0), put16(&cd, 1), put16(&cd, 1);
    put32(&cd, cd_len), put32(&cd, data_off + size), put16(&cd, 0);
    CHECK(fwrite(cd.b, 1, cd.n, f) == cd.n);
    CHECK(fclose(f) == 0);
    free(h.b), free(cd.b), free(piece);

    sm_mmap m;
    CHECK_OK(sm_mmap_open(&m, path));
    sm_zip z;
    CHECK_OK(sm_zip_open(&z, m.data, m.size, path));
    z.map = &m;
    const long before = rss_file_kib();
    CHECK(z.n_entries == 1);
    if (z.n_entries == 1) CHECK_OK(sm_zip_check_crc(&z, &z.entries[0]));
    const long after = rss_file_kib();
    CHECK_MSG(before >= 0 && after >= 0, "no RssFile in /proc/self/status");
    CHECK_MSG(after - before < 100 * 1024, "the CRC pass left %ld KiB of the 192 MiB entry resident", after - before);
    sm_zip_close(&z);
    sm_mmap_close(&m);
    unlink(path);
}

static void pytorch_archives(void) {
    char dir[1024], args[4096], *log = NULL;
    snprintf(dir, sizeof dir, "%s", copy_dir(KJV "/pytorch", "pt-model"));
    const char *bin = join(dir, "pytorch_model.bin");
    size_t n;
    uint8_t *orig = (uint8_t *)slurp_or_fail(bin, &n);
    if (!orig) return;
    sm_zip z;
    CHECK_OK(sm_zip_open(&z, orig, n, bin));
    /* the reference: the original (stored) archive converted */
    char ref[1024];
    snprintf(ref, sizeof ref, "%s", tl_tmp("pt-ref.gguf"));
    snprintf(args, sizeof args, "convert '%s' -o '%s' --quiet", dir, ref);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);

    /* a flipped byte in the middle of the largest storage: a CRC-32 error naming the entry */
    const sm_zip_entry *big = NULL;
    for (size_t i = 0; i < z.n_entries; i++)
        if (strstr(z.entries[i].name, "/data/") && (!big || z.entries[i].size > big->size)) big = &z.entries[i];
    CHECK(big != NULL && big->size > 1000);
    if (big) {
        uint8_t v = orig[big->offset + big->size / 2] ^ 0x10;
        patch(bin, (long)(big->offset + big->size / 2), &v, 1);
        const char *out = tl_tmp("pt-flip.gguf");
        snprintf(args, sizeof args, "convert '%s' -o '%s' --quiet", dir, out);
        int rc = tl_run_smelt(args, &log);
        CHECK_MSG(rc != 0 && strstr(log, big->name) && strstr(log, "CRC-32"), "rc %d: %s", rc, log);
        CHECK(!exists(out));
        free(log);
    }

    /* re-zipped with every entry deflated: the same GGUF as from the stored original */
    buf d = rezip(&z, true);
    CHECK(d.n < n); /* it did compress */
    CHECK(tl_write_file(bin, d.b, d.n) == 0);
    const char *out = tl_tmp("pt-deflate.gguf");
    snprintf(args, sizeof args, "convert '%s' -o '%s' --quiet", dir, out);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    CHECK(tl_same_file(ref, out));
    /* and stored by this writer: the same again (the writer itself is sound) */
    buf st = rezip(&z, false);
    CHECK(tl_write_file(bin, st.b, st.n) == 0);
    snprintf(args, sizeof args, "convert '%s' -o '%s' --quiet", dir, out);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    CHECK(tl_same_file(ref, out));
    free(st.b);

    /* a deflated storage corrupted: a deflate error or a CRC-32 error, never a silent success */
    sm_zip dz;
    CHECK_OK(sm_zip_open(&dz, d.b, d.n, "deflated.bin"));
    const sm_zip_entry *dbig = big ? sm_zip_find(&dz, big->name) : NULL;
    CHECK(dbig && dbig->method == 8);
    if (dbig) {
        d.b[dbig->offset + dbig->csize / 2] ^= 0x10;
        const uint8_t *p;
        uint8_t *owned = NULL;
        CHECK_FAILS_WITH(sm_zip_read(&dz, dbig, &p, &owned), dbig->name);
        free(owned);
        d.b[dbig->offset + dbig->csize / 2] ^= 0x10;
        /* an inflated size larger than recorded, and a recorded size larger than the stream */
        sm_zip_entry e = *dbig;
        e.size--;
        CHECK_FAILS_WITH(sm_zip_read(&dz, &e, &p, &owned), "inflates to more than");
        e.size += 2;
        CHECK_FAILS_WITH(sm_zip_read(&dz, &e, &p, &owned), "the central directory records");
        /* the limit on what one entry may inflate to */
        uint64_t lim = sm_zip_max_inflate;
        sm_zip_max_inflate = dbig->size - 1;
        CHECK_FAILS_WITH(sm_zip_read(&dz, dbig, &p, &owned), "more than the");
        sm_zip_max_inflate = lim;
        CHECK_OK(sm_zip_read(&dz, dbig, &p, &owned));
        CHECK(owned && p == owned && memcmp(p, orig + big->offset, big->size) == 0);
        free(owned);
        sm_zip_close(&dz);
    }
    free(d.b);
    sm_zip_close(&z);
    free(orig);
}

/* ---- 3. LoRA: the config's r against the tensors' rank ---- */

/* Rewrite a JSON file with key set to the JSON text `value` (NULL: removed). */
static void set_json(const char *path, const char *key, const char *value) {
    size_t n;
    char *b = slurp_or_fail(path, &n);
    cJSON *j = b ? cJSON_ParseWithLength(b, n) : NULL;
    CHECK(j != NULL);
    if (!j) { free(b); return; }
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (value) cJSON_AddItemToObject(j, key, cJSON_Parse(value));
    char *out = cJSON_Print(j);
    CHECK(tl_write_file(path, out, strlen(out)) == 0);
    free(out);
    cJSON_Delete(j);
    free(b);
}

static void lora_rank(void) {
    char ad[1024], args[4096], ref[1024], out[1024], *log = NULL;
    snprintf(ad, sizeof ad, "%s", copy_dir(LORA, "lora-r16"));
    snprintf(ref, sizeof ref, "%s", tl_tmp("lora-ref.gguf"));
    snprintf(out, sizeof out, "%s", tl_tmp("lora-r.gguf"));
    snprintf(args, sizeof args, "convert '%s' --lora '%s' -o '%s' --quiet", tl_asset(KJV), ad, ref);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    /* r = 16 for tensors of rank 8: refused (by lora merge and by convert --lora) */
    const char *cfg = join(ad, "adapter_config.json");
    set_json(cfg, "r", "16");
    snprintf(args, sizeof args, "lora merge '%s' --adapter '%s' -o '%s' --quiet", tl_asset(KJV), ad, tl_tmp("lora-r-merged"));
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "lora_A") && strstr(log, "rank 8") && strstr(log, "r = 16"), "%s",
              log);
    free(log);
    CHECK(!exists(tl_tmp("lora-r-merged")) || !exists(join(tl_tmp("lora-r-merged"), "model.safetensors")));
    snprintf(args, sizeof args, "convert '%s' --lora '%s' -o '%s' --quiet", tl_asset(KJV), ad, out);
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "rank 8"), "%s", log);
    free(log);
    CHECK(!exists(out));
    /* rank_pattern giving one module another rank: refused naming that module's pattern */
    set_json(cfg, "r", "8");
    set_json(cfg, "rank_pattern", "{\"q_proj\": 4}");
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "q_proj.lora_A") && strstr(log, "r = 4 (from rank_pattern)"), "%s",
              log);
    free(log);
    /* r = 16 but a rank_pattern of 8 for every target module: the same merge as the original */
    set_json(cfg, "r", "16");
    set_json(cfg, "rank_pattern", "{\"q_proj\": 8, \"k_proj\": 8, \"v_proj\": 8, \"o_proj\": 8, \"gate_proj\": 8, "
                                  "\"up_proj\": 8, \"down_proj\": 8}");
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    CHECK(tl_same_file(ref, out));
}

/* ---- 4. tokenizers: merges, token count against embedding rows, rope dimension count ---- */

static void tokenizer_merges(void) {
    const char *model = tl_make_qwen2_tiny();
    CHECK(model != NULL);
    if (!model) return;
    char tok[1024], args[4096], *log = NULL;
    snprintf(tok, sizeof tok, "%s", tl_tmp("tok-json"));
    char src[1024];
    snprintf(src, sizeof src, "%s/tests/data/bpe-qwen2", getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && chmod -R u+w '%s'", tok, src, tok, tok);
    CHECK(system(cmd) == 0);
    /* the fixture's tokens padded to the tiny model's 2048 (the converter wants them equal) */
    size_t n;
    char *b = slurp_or_fail(join(tok, "tokenizer.json"), &n);
    cJSON *j = b ? cJSON_ParseWithLength(b, n) : NULL;
    cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab");
    CHECK(cJSON_IsObject(vocab));
    int n_vocab = cJSON_GetArraySize(vocab);
    CHECK(n_vocab == 679 - 3); /* and 3 added tokens */
    for (int id = 679; id < QW_VOCAB; id++) {
        char name[32];
        snprintf(name, sizeof name, "<fill%d>", id);
        cJSON_AddNumberToObject(vocab, name, id);
    }
    char *text = cJSON_Print(j);
    CHECK(tl_write_file(join(tok, "tokenizer.json"), text, strlen(text)) == 0);
    free(text);
    set_json(join(tok, "config.json"), "vocab_size", "2048");
    /* the fixture as it is converts */
    const char *out = tl_tmp("tok.gguf");
    snprintf(args, sizeof args, "convert '%s' --tokenizer '%s' -o '%s' --quiet", model, tok, out);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    unlink(out);
    /* a merge naming a token model.vocab does not have */
    cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "merges");
    CHECK(cJSON_IsArray(merges) && cJSON_GetArraySize(merges) > 10);
    if (!cJSON_IsArray(merges)) { cJSON_Delete(j); free(b); return; }
    int at = cJSON_GetArraySize(merges);
    bool pairs = cJSON_IsArray(cJSON_GetArrayItem(merges, 0));
    cJSON_AddItemToArray(merges, pairs ? cJSON_Parse("[\"zq\", \"xw\"]") : cJSON_CreateString("zq xw"));
    text = cJSON_Print(j);
    CHECK(tl_write_file(join(tok, "tokenizer.json"), text, strlen(text)) == 0);
    free(text);
    cJSON_Delete(j);
    free(b);
    char want[64];
    snprintf(want, sizeof want, "model.merges[%d] \"zq xw\"", at);
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, want) && strstr(log, "is not a token"), "%s", log);
    free(log);
    CHECK(!exists(out));
}

/* Copy a GGUF file, changing its metadata with edit(w, src). */
static void rewrite_gguf(const char *from, const char *to, void (*edit)(sm_gguf_writer *w, const sm_gguf *g, int arg), int arg) {
    sm_gguf *g;
    CHECK_OK(sm_gguf_open(from, &g));
    if (!g) return;
    sm_gguf_writer *w = sm_gguf_writer_new();
    for (size_t i = 0; i < sm_gguf_n_kv(g); i++) sm_meta_set_val(sm_gguf_writer_meta(w), sm_gguf_key(g, i), sm_gguf_val(g, i));
    edit(w, g, arg);
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        CHECK_OK(sm_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->shape));
    }
    CHECK_OK(sm_gguf_writer_begin(w, to));
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++)
        CHECK_OK(sm_gguf_writer_write(w, sm_gguf_tensor(g, i)->data, sm_gguf_tensor(g, i)->nbytes));
    CHECK_OK(sm_gguf_writer_finish(w));
    sm_gguf_close(g);
}

static void edit_none(sm_gguf_writer *w, const sm_gguf *g, int arg) { (void)w, (void)g, (void)arg; }

/* arg extra tokens at the end of the token list (with scores and types) */
static void edit_tokens(sm_gguf_writer *w, const sm_gguf *g, int arg) {
    const sm_gguf_value *t = sm_gguf_find(g, "tokenizer.ggml.tokens"), *sc = sm_gguf_find(g, "tokenizer.ggml.scores"),
                        *ty = sm_gguf_find(g, "tokenizer.ggml.token_type");
    CHECK(t && sc && ty);
    if (!t || !sc || !ty) return;
    size_t n = (size_t)t->v.arr.n, m = n + (size_t)arg;
    const char **s = calloc(m, sizeof *s);
    float *f = calloc(m, sizeof *f);
    int32_t *k = calloc(m, sizeof *k);
    char extra[16][16];
    for (size_t i = 0; i < m; i++) {
        if (i < n) s[i] = t->v.arr.items[i].v.str.ptr;
        else snprintf(extra[i - n], 16, "<x%zu>", i - n), s[i] = extra[i - n];
        if (i < n) memcpy(&f[i], (const char *)sc->v.arr.data + 4 * i, 4), memcpy(&k[i], (const char *)ty->v.arr.data + 4 * i, 4);
        else k[i] = 1;
    }
    sm_meta_set_arr_str(sm_gguf_writer_meta(w), "tokenizer.ggml.tokens", s, m);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "tokenizer.ggml.scores", SM_GGUF_FLOAT32, f, m);
    sm_meta_set_arr(sm_gguf_writer_meta(w), "tokenizer.ggml.token_type", SM_GGUF_INT32, k, m);
    free(s), free(f), free(k);
}

static void edit_rope(sm_gguf_writer *w, const sm_gguf *g, int arg) { (void)g, sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.rope.dimension_count", (uint32_t)arg); }

static void gguf_vocab_and_rope(void) {
    char base[1024], args[4096], *log = NULL, bad[1024];
    snprintf(base, sizeof base, "%s", tl_tmp("kjv-f32.gguf"));
    snprintf(bad, sizeof bad, "%s", tl_tmp("kjv-bad.gguf"));
    snprintf(args, sizeof args, "convert '%s' --outtype f32 -o '%s' --quiet", tl_asset(KJV), base);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    const char *text = tl_asset("text/kjv-eval.txt");
    /* the control: a plain copy evaluates */
    rewrite_gguf(base, bad, edit_none, 0);
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 64 --chunks 1 --threads 1", bad, text);
    CHECK_MSG(tl_run_smelt(args, &log) == 0, "%s", log);
    free(log);
    /* 2049 tokens for 2048 embedding rows */
    rewrite_gguf(base, bad, edit_tokens, 1);
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "2049 tokens") && strstr(log, "2048 rows"), "%s", log);
    free(log);
    /* a tokenizer from elsewhere with more tokens than the model has rows: stories260k (512) */
    snprintf(args, sizeof args, "ppl '%s' --vocab '%s' --text '%s' --ctx 64 --chunks 1 --threads 1",
             tl_asset("models/stories260k/stories260K.bin"), tl_asset(KJV "/tokenizer.model"), text);
    CHECK_MSG(tl_run_smelt(args, &log) != 0 && strstr(log, "2048 tokens") && strstr(log, "512 rows"), "%s", log);
    free(log);
    /* rope.dimension_count: the head size (32) passes; half of it, more, or odd are refused */
    const int dims[] = {32, 16, 34, 31};
    for (int i = 0; i < 4; i++) {
        rewrite_gguf(base, bad, edit_rope, dims[i]);
        snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 64 --chunks 1 --threads 1", bad, text);
        int rc = tl_run_smelt(args, &log);
        if (i == 0) CHECK_MSG(rc == 0, "%s", log);
        else CHECK_MSG(rc != 0 && strstr(log, "rope.dimension_count") && strstr(log, "head size is 32"), "%d: %s", dims[i], log);
        free(log);
    }
}

void run_tests(void) {
    TEST(nonfinite_weights);
    TEST(pytorch_archives);
    TEST(crc_pass_bounded);
    TEST(lora_rank);
    TEST(tokenizer_merges);
    TEST(gguf_vocab_and_rope);
}
