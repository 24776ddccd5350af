/* test_safetensors.c - safetensors reader (single file, sharded, directory), checkpoint
 * dispatch and lookup, strict rejection of malformed files, and the writer.
 *
 * References: the shapes in ../shared/models/README.md; the F32 variant holds the BF16 values
 * upcast exactly; the shared model files were written and checked by independent code, so
 * rewriting them through our writer must reproduce them byte for byte; the header bytes of
 * Hugging Face's own serializer tests (huggingface/safetensors tensor.rs). */
#include "formats/formats.h"
#include "testlib.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_TENSORS 39

/* ---- the shared model ---- */

static void expected_shape(const char *name, int *nd, int64_t *s0, int64_t *s1) {
    *nd = 2;
    *s1 = 256;
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight")) *s0 = 2048;
    else if (strstr(name, "q_proj") || strstr(name, "o_proj")) *s0 = 256;
    else if (strstr(name, "k_proj") || strstr(name, "v_proj")) *s0 = 128;
    else if (strstr(name, "gate_proj") || strstr(name, "up_proj")) *s0 = 768;
    else if (strstr(name, "down_proj")) *s0 = 256, *s1 = 768;
    else *nd = 1, *s0 = 256, *s1 = 0; /* norms */
}

static void check_model(const sm_ckpt *c, sm_type type) {
    CHECK(c->kind == SM_CKPT_SAFETENSORS);
    CHECK_MSG(c->n_tensors == N_TENSORS, "%zu tensors", c->n_tensors);
    int64_t params = 0;
    for (size_t i = 0; i < c->n_tensors; i++) {
        const sm_tensor *t = &c->tensors[i];
        int nd;
        int64_t s0, s1;
        expected_shape(t->name, &nd, &s0, &s1);
        CHECK_MSG(t->type == type, "%s type %s", t->name, sm_type_name(t->type));
        CHECK_MSG(t->n_dims == nd && t->shape[0] == s0 && (nd == 1 || t->shape[1] == s1), "%s shape", t->name);
        CHECK(t->nbytes == (uint64_t)sm_tensor_nelements(t) * sm_type_get(type)->block_bytes);
        CHECK(sm_ckpt_find(c, t->name) == t);
        params += sm_tensor_nelements(t);
    }
    CHECK_MSG(params == 4196608, "%lld parameters", (long long)params);
    CHECK(sm_ckpt_find(c, "model.layers.4.mlp.up_proj.weight") == NULL);
    CHECK(sm_ckpt_find(c, "") == NULL);
    CHECK(sm_ckpt_find(c, "zzz") == NULL);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(c->metadata, "format");
    CHECK(cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "pt"));
}

static void model_variants(void) {
    sm_ckpt *bf = NULL, *f32 = NULL, *sh = NULL;
    CHECK_OK(sm_safetensors_open(tl_asset("models/tiny-llama-kjv/model.safetensors"), &bf));
    CHECK_OK(sm_safetensors_open(tl_asset("models/tiny-llama-kjv/f32/model.safetensors"), &f32));
    CHECK_OK(sm_safetensors_open(tl_asset("models/tiny-llama-kjv/sharded/model.safetensors.index.json"), &sh));
    if (!bf || !f32 || !sh) goto out;
    check_model(bf, SM_TYPE_BF16);
    check_model(f32, SM_TYPE_F32);
    check_model(sh, SM_TYPE_BF16);
    /* file order: offsets ascending within each file; shards in name order */
    for (size_t i = 1; i < bf->n_tensors; i++)
        CHECK((const uint8_t *)bf->tensors[i].data == (const uint8_t *)bf->tensors[i - 1].data + bf->tensors[i - 1].nbytes);
    /* same values everywhere: F32 is the BF16 upcast exactly, the shards hold the same bytes */
    int64_t mismatches = 0, compared = 0;
    for (size_t i = 0; i < bf->n_tensors; i++) {
        const sm_tensor *b = &bf->tensors[i];
        const sm_tensor *f = sm_ckpt_find(f32, b->name), *s = sm_ckpt_find(sh, b->name);
        CHECK_MSG(f && s, "%s missing", b->name);
        if (!f || !s) continue;
        CHECK(s->nbytes == b->nbytes && !memcmp(s->data, b->data, b->nbytes));
        int64_t n = sm_tensor_nelements(b);
        CHECK(sm_tensor_nelements(f) == n);
        const uint8_t *pb = b->data, *pf = f->data;
        for (int64_t k = 0; k < n; k++) {
            uint16_t hb;
            uint32_t wf;
            memcpy(&hb, pb + 2 * k, 2);
            memcpy(&wf, pf + 4 * k, 4);
            mismatches += wf != (uint32_t)hb << 16;
            compared++;
        }
    }
    CHECK_MSG(mismatches == 0 && compared == 4196608, "%lld of %lld differ", (long long)mismatches,
              (long long)compared);
    /* the sharded variant lists shard 1 before shard 2 */
    const sm_tensor *e = sm_ckpt_find(sh, "model.embed_tokens.weight");
    CHECK(e && e == &sh->tensors[0]);
out:
    sm_ckpt_close(bf);
    sm_ckpt_close(f32);
    sm_ckpt_close(sh);
}

static void dispatch(void) {
    static const char *const dirs[] = {"models/tiny-llama-kjv", "models/tiny-llama-kjv/f32",
                                       "models/tiny-llama-kjv/sharded"};
    for (int i = 0; i < 3; i++) {
        const char *dir = tl_asset(dirs[i]);
        sm_ckpt *c = NULL;
        CHECK_OK(sm_ckpt_open(dir, &c));
        if (c) {
            check_model(c, i == 1 ? SM_TYPE_F32 : SM_TYPE_BF16);
            CHECK(!strcmp(c->path, dir));
        }
        sm_ckpt_close(c);
        c = NULL;
        CHECK_OK(sm_safetensors_open(dir, &c));
        CHECK(c && c->n_tensors == N_TENSORS);
        sm_ckpt_close(c);
    }
    sm_ckpt *c = NULL;
    CHECK_OK(sm_ckpt_open(tl_asset("models/tiny-llama-kjv/sharded/model.safetensors.index.json"), &c));
    CHECK(c && c->n_tensors == N_TENSORS && c->kind == SM_CKPT_SAFETENSORS);
    sm_ckpt_close(c);
    CHECK_OK(sm_ckpt_open(tl_asset("models/tiny-llama-kjv/sharded/model-00002-of-00002.safetensors"), &c));
    CHECK(c && c->n_tensors > 0 && c->n_tensors < N_TENSORS);
    sm_ckpt_close(c);
    CHECK_FAILS_WITH(sm_ckpt_open(tl_tmpdir(), &c), "no checkpoint found");
    CHECK(c == NULL);
    CHECK_FAILS_WITH(sm_ckpt_open(tl_tmp("does-not-exist"), &c), "does-not-exist");
    CHECK_FAILS_WITH(sm_safetensors_open(tl_tmpdir(), &c), "model.safetensors");
}

/* ---- malformed files ---- */

/* Write a file: u64 header length (hdr_len, or strlen(json) when ~0), the JSON, then
 * data_len bytes. */
static const char *write_st(const char *name, const char *json, uint64_t hdr_len, size_t data_len) {
    size_t jl = strlen(json);
    if (hdr_len == ~0ull) hdr_len = jl;
    size_t n = 8 + jl + data_len;
    uint8_t *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(hdr_len >> (8 * i));
    memcpy(b + 8, json, jl);
    for (size_t i = 0; i < data_len; i++) b[8 + jl + i] = (uint8_t)i;
    const char *path = tl_tmp(name);
    CHECK(tl_write_file(path, b, n) == 0);
    free(b);
    return path;
}

/* Opening `path` fails, naming the file and saying `needle`. */
static void expect_fail(const char *path, const char *needle) {
    sm_ckpt *c = (sm_ckpt *)1;
    CHECK_FAILS_WITH(sm_safetensors_open(path, &c), needle);
    CHECK(c == NULL);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECK_MSG(strstr(sm_last_error(), base) != NULL, "error does not name %s: %s", base, sm_last_error());
    sm_ckpt_close(c == (sm_ckpt *)1 ? NULL : c);
}

#define T(name, json, data_len, needle) expect_fail(write_st(name, json, ~0ull, data_len), needle)
#define F32_4(off) "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" off "}"

static void malformed(void) {
    uint8_t five[5] = {1, 2, 3, 4, 5};
    const char *p = tl_tmp("truncated.safetensors");
    CHECK(tl_write_file(p, five, 5) == 0);
    expect_fail(p, "at least 8");
    expect_fail(write_st("empty-header.safetensors", "", 0, 0), "'{'");
    expect_fail(write_st("huge-header.safetensors", "{}", 1ull << 40, 0), "too large");
    expect_fail(write_st("huge-header2.safetensors", "{}", ~1ull, 0), "too large");
    expect_fail(write_st("header-past-end.safetensors", "{}", 100, 10), "past the end of the file");
    T("bad-json.safetensors", "{\"a\": {\"dtype\":", 0, "invalid JSON");
    T("bad-json2.safetensors", "{\"a\" 1}", 0, "invalid JSON");
    T("not-object.safetensors", "[1, 2]", 0, "'{'");
    T("trailing-junk.safetensors", "{} x", 0, "whitespace");
    T("bad-utf8.safetensors", "{\"a\xff\":" F32_4("[0,4]") "}", 4, "UTF-8");
    T("nul-name.safetensors", "{\"a\\u0000b\":" F32_4("[0,4]") "}", 4, "NUL");
    T("ctrl-name.safetensors", "{\"a\nb\":" F32_4("[0,4]") "}", 4, "control");
    T("float-offset.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}}", 4,
      "integer");
    T("negative-dim.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
      "non-negative");
    T("big-number.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}}",
      4, "2^53");
    T("entry-not-object.safetensors", "{\"a\": 5}", 0, "JSON object");
    T("no-dtype.safetensors", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype");
    T("unknown-dtype.safetensors", "{\"a\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "unknown dtype");
    T("lowercase-dtype.safetensors", "{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
      "unknown dtype");
    T("shape-not-array.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4,
      "shape");
    T("shape-string.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4,
      "shape[0]");
    T("too-many-dims.safetensors",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "dimensions");
    T("offsets-3.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
      "data_offsets");
    T("no-offsets.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets");
    T("begin-after-end.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
      "begin <= end");
    T("out-of-range.safetensors", "{\"a\":" F32_4("[0,4]") ",\"b\":" F32_4("[4,8]") "}", 6,
      "past the end of the data section");
    T("overlap.safetensors",
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":" F32_4("[4,8]") "}", 8,
      "overlaps");
    T("gap.safetensors", "{\"a\":" F32_4("[0,4]") ",\"b\":" F32_4("[8,12]") "}", 12, "gap");
    T("gap-at-start.safetensors", "{\"a\":" F32_4("[4,8]") "}", 8, "gap");
    T("trailing-bytes.safetensors", "{\"a\":" F32_4("[0,4]") "}", 8, "trailing");
    T("data-but-no-tensors.safetensors", "{}", 3, "trailing");
    T("shape-mismatch.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
      "needs 12 bytes");
    T("dim-overflow.safetensors",
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflow");
    T("bytes-overflow.safetensors",
      "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,4]}}", 4, "overflow");
    T("duplicate.safetensors", "{\"a\":" F32_4("[0,4]") ",\"a\":" F32_4("[4,8]") "}", 8, "twice");
    T("empty-name.safetensors", "{\"\":" F32_4("[0,4]") "}", 4, "1 to 1024 bytes");
    T("meta-not-object.safetensors", "{\"__metadata__\":[\"pt\"]}", 0, "__metadata__");
    T("meta-not-strings.safetensors", "{\"__metadata__\":{\"format\":1}}", 0, "__metadata__");
    T("meta-twice.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__");
    char *longname = malloc(1100 + 64);
    strcpy(longname, "{\"");
    memset(longname + 2, 'x', 1100);
    strcpy(longname + 1102, "\":" F32_4("[0,4]") "}");
    T("long-name.safetensors", longname, 4, "1 to 1024 bytes");
    free(longname);

    /* accepted edge cases: empty file set, zero-size and scalar tensors, null __metadata__ */
    sm_ckpt *c = NULL;
    CHECK_OK(sm_safetensors_open(write_st("empty.safetensors", "{}      ", ~0ull, 0), &c));
    CHECK(c && c->n_tensors == 0 && c->metadata == NULL);
    sm_ckpt_close(c);
    c = NULL;
    CHECK_OK(sm_safetensors_open(
        write_st("edge.safetensors",
                 "{\"__metadata__\":null,\"z\":{\"dtype\":\"I8\",\"shape\":[0,5],\"data_offsets\":[2,2]},"
                 "\"s\":{\"dtype\":\"I16\",\"shape\":[],\"data_offsets\":[0,2]},\"e\":{\"dtype\":\"BOOL\","
                 "\"shape\":[1],\"data_offsets\":[2,3],\"extra\":true}}",
                 ~0ull, 3),
        &c));
    if (c && c->n_tensors == 3) {
        /* listed in name order (as the safetensors library and llama.cpp's converter list them),
         * not in header or data order */
        CHECK(!strcmp(c->tensors[1].name, "s") && c->tensors[1].n_dims == 0 && c->tensors[1].nbytes == 2);
        CHECK(!strcmp(c->tensors[2].name, "z") && c->tensors[2].nbytes == 0 && c->tensors[2].shape[1] == 5);
        CHECK(!strcmp(c->tensors[0].name, "e") && c->tensors[0].type == SM_TYPE_BOOL);
        CHECK(c->metadata == NULL);
    } else {
        CHECK(0);
    }
    sm_ckpt_close(c);
}

/* ---- sharded ---- */

static void write_small(const char *path, const char *const *names, int n, uint8_t fill) {
    sm_st_writer *w = sm_st_writer_new();
    int64_t shape[1] = {4};
    for (int i = 0; i < n; i++) CHECK_OK(sm_st_writer_add(w, names[i], SM_TYPE_U8, 1, shape));
    CHECK_OK(sm_st_writer_begin(w, path));
    for (int i = 0; i < n; i++) {
        uint8_t b[4] = {fill, (uint8_t)i, 0, 0};
        CHECK_OK(sm_st_writer_write(w, b, 4));
    }
    CHECK_OK(sm_st_writer_finish(w));
}

static const char *write_index(const char *name, const char *weight_map) {
    char buf[1024];
    snprintf(buf, sizeof buf, "{\"metadata\":{\"total_size\":16},\"weight_map\":{%s}}", weight_map);
    const char *p = tl_tmp(name);
    CHECK(tl_write_file(p, buf, strlen(buf)) == 0);
    return p;
}

static void sharded(void) {
    static const char *const s1[] = {"a", "b"}, *const s2[] = {"c", "d"}, *const s2dup[] = {"c", "a"};
    write_small(tl_tmp("s-1.safetensors"), s1, 2, 1);
    write_small(tl_tmp("s-2.safetensors"), s2, 2, 2);
    write_small(tl_tmp("s-2dup.safetensors"), s2dup, 2, 3);
    sm_ckpt *c = NULL;
    CHECK_OK(sm_safetensors_open(write_index("good.index.json", "\"d\":\"s-2.safetensors\",\"a\":\"s-1.safetensors\","
                                                               "\"c\":\"s-2.safetensors\",\"b\":\"s-1.safetensors\""),
                                 &c));
    if (c && c->n_tensors == 4) {
        CHECK(!strcmp(c->tensors[0].name, "a") && !strcmp(c->tensors[3].name, "d"));
        const sm_tensor *t = sm_ckpt_find(c, "c");
        CHECK(t && ((const uint8_t *)t->data)[0] == 2);
    } else {
        CHECK(0);
    }
    sm_ckpt_close(c);
    expect_fail(write_index("missing-shard.index.json", "\"a\":\"s-1.safetensors\",\"b\":\"s-1.safetensors\","
                                                        "\"c\":\"s-9.safetensors\",\"d\":\"s-9.safetensors\""),
                "missing");
    CHECK(strstr(sm_last_error(), "s-9.safetensors") != NULL);
    expect_fail(write_index("missing-tensor.index.json", "\"a\":\"s-1.safetensors\",\"b\":\"s-1.safetensors\","
                                                         "\"c\":\"s-2.safetensors\",\"d\":\"s-2.safetensors\","
                                                         "\"e\":\"s-2.safetensors\""),
                "missing it");
    expect_fail(write_index("unlisted.index.json", "\"a\":\"s-1.safetensors\",\"b\":\"s-1.safetensors\","
                                                   "\"c\":\"s-2.safetensors\""),
                "missing from weight_map");
    expect_fail(write_index("wrong-shard.index.json", "\"a\":\"s-1.safetensors\",\"b\":\"s-2.safetensors\","
                                                      "\"c\":\"s-2.safetensors\",\"d\":\"s-2.safetensors\""),
                "wrong shard");
    expect_fail(write_index("two-shards.index.json", "\"a\":\"s-1.safetensors\",\"b\":\"s-1.safetensors\","
                                                     "\"c\":\"s-2dup.safetensors\""),
                "two shards");
    expect_fail(write_index("dup-key.index.json", "\"a\":\"s-1.safetensors\",\"a\":\"s-1.safetensors\""), "twice");
    expect_fail(write_index("escape.index.json", "\"a\":\"../s-1.safetensors\""), "relative");
    expect_fail(write_index("absolute.index.json", "\"a\":\"/etc/passwd\""), "relative");
    expect_fail(write_index("not-string.index.json", "\"a\":1"), "relative");
    expect_fail(write_index("empty-map.index.json", ""), "empty");
    const char *p = tl_tmp("no-map.index.json");
    CHECK(tl_write_file(p, "{\"metadata\":{}}", 15) == 0);
    expect_fail(p, "weight_map");
    p = tl_tmp("broken.index.json");
    CHECK(tl_write_file(p, "{\"weight_map\":{", 15) == 0);
    expect_fail(p, "invalid JSON");
}

/* ---- writer ---- */

static uint64_t header_len(const char *path) {
    size_t n = 0;
    uint8_t *b = (uint8_t *)tl_slurp(path, &n);
    uint64_t v = 0;
    if (b && n >= 8)
        for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    free(b);
    return v;
}

static void writer_roundtrip(void) {
    static const struct { const char *name; sm_type type; int nd; int64_t shape[3]; } T_[] = {
        {"f32", SM_TYPE_F32, 2, {3, 5}},     {"f16", SM_TYPE_F16, 1, {7}},     {"bf16", SM_TYPE_BF16, 2, {2, 3}},
        {"scalar.f64", SM_TYPE_F64, 0, {0}}, {"i64", SM_TYPE_I64, 1, {3}},     {"i32", SM_TYPE_I32, 3, {1, 2, 3}},
        {"i16", SM_TYPE_I16, 1, {5}},        {"i8", SM_TYPE_I8, 1, {9}},       {"u8", SM_TYPE_U8, 1, {1}},
        {"bool", SM_TYPE_BOOL, 1, {4}},      {"empty", SM_TYPE_F32, 2, {0, 4}}, {"e4m3", SM_TYPE_F8_E4M3, 1, {3}},
        {"e5m2", SM_TYPE_F8_E5M2, 1, {3}},   {"u16", SM_TYPE_U16, 1, {2}},     {"u32", SM_TYPE_U32, 1, {2}},
        {"u64", SM_TYPE_U64, 1, {2}},        {"na\"me\\ w\xc3\xa9ird\n", SM_TYPE_U8, 1, {2}},
    };
    const int n = (int)(sizeof T_ / sizeof T_[0]);
    uint8_t data[4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 7 + 3);
    uint64_t total = 0;
    sm_st_writer *w = sm_st_writer_new();
    for (int i = 0; i < n; i++) {
        CHECK_OK(sm_st_writer_add(w, T_[i].name, T_[i].type, T_[i].nd, T_[i].shape));
        int64_t e = 1;
        for (int d = 0; d < T_[i].nd; d++) e *= T_[i].shape[d];
        total += (uint64_t)e * sm_type_get(T_[i].type)->block_bytes;
    }
    CHECK_OK(sm_st_writer_set_metadata(w, "format", "np"));
    CHECK_OK(sm_st_writer_set_metadata(w, "note", "a \"quoted\" \\ value\n"));
    CHECK_OK(sm_st_writer_set_metadata(w, "format", "pt")); /* replaces */
    const char *path = tl_tmp("roundtrip.safetensors");
    CHECK_OK(sm_st_writer_begin(w, path));
    CHECK(access(path, F_OK) != 0);
    /* odd-sized chunks that straddle tensor boundaries */
    for (uint64_t off = 0; off < total;) {
        uint64_t k = total - off < 5 ? total - off : 5;
        CHECK_OK(sm_st_writer_write(w, data + off, k));
        off += k;
    }
    CHECK_OK(sm_st_writer_finish(w));
    CHECK(header_len(path) % 8 == 0);
    sm_ckpt *c = NULL;
    CHECK_OK(sm_safetensors_open(path, &c));
    if (!c) return;
    CHECK(c->n_tensors == (size_t)n);
    uint64_t off = 0;
    for (size_t i = 1; i < c->n_tensors; i++) /* listed in name order */
        CHECK_MSG(strcmp(c->tensors[i - 1].name, c->tensors[i].name) < 0, "tensor %zu is '%s'", i, c->tensors[i].name);
    for (int i = 0; i < n && i < (int)c->n_tensors; i++) {
        const sm_tensor *t = sm_ckpt_find(c, T_[i].name);
        CHECK_MSG(t != NULL, "tensor '%s' is missing", T_[i].name);
        if (!t) break;
        CHECK(t->type == T_[i].type && t->n_dims == T_[i].nd);
        for (int d = 0; d < T_[i].nd; d++) CHECK(t->shape[d] == T_[i].shape[d]);
        CHECK(!memcmp(t->data, data + off, t->nbytes));
        off += t->nbytes;
    }
    CHECK(off == total);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(c->metadata, "format");
    const cJSON *note = cJSON_GetObjectItemCaseSensitive(c->metadata, "note");
    CHECK(cJSON_IsString(f) && !strcmp(f->valuestring, "pt"));
    CHECK(cJSON_IsString(note) && !strcmp(note->valuestring, "a \"quoted\" \\ value\n"));
    CHECK(cJSON_GetArraySize(c->metadata) == 2);
    sm_ckpt_close(c);
}

/* Byte-exact against Hugging Face's serializer (its test_empty and test_serialization
 * vectors, with metadata ordered first as it writes it). */
static void writer_hf_bytes(void) {
    sm_st_writer *w = sm_st_writer_new();
    CHECK_OK(sm_st_writer_set_metadata(w, "framework", "pt"));
    const char *p = tl_tmp("hf-empty.safetensors");
    CHECK_OK(sm_st_writer_begin(w, p));
    CHECK_OK(sm_st_writer_finish(w));
    static const uint8_t want_empty[] = {40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97,
                                         95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58,
                                         34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32};
    size_t n = 0;
    char *got = tl_slurp(p, &n);
    CHECK(got && n == sizeof want_empty && !memcmp(got, want_empty, n));
    free(got);

    w = sm_st_writer_new();
    int64_t shape[3] = {1, 2, 3};
    float vals[6] = {0, 1, 2, 3, 4, 5};
    CHECK_OK(sm_st_writer_add(w, "attn.0", SM_TYPE_F32, 3, shape));
    p = tl_tmp("hf-attn.safetensors");
    CHECK_OK(sm_st_writer_begin(w, p));
    CHECK_OK(sm_st_writer_write(w, vals, sizeof vals));
    CHECK_OK(sm_st_writer_finish(w));
    const char *hdr = "{\"__metadata__\":{\"format\":\"pt\"},\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],"
                      "\"data_offsets\":[0,24]}}";
    size_t hl = (strlen(hdr) + 7) / 8 * 8;
    got = tl_slurp(p, &n);
    CHECK(got && n == 8 + hl + 24);
    if (got && n == 8 + hl + 24) {
        CHECK((uint8_t)got[0] == hl && !memcmp(got + 8, hdr, strlen(hdr)));
        for (size_t i = 8 + strlen(hdr); i < 8 + hl; i++) CHECK(got[i] == ' ');
        CHECK(!memcmp(got + 8 + hl, vals, 24));
    }
    free(got);
}

/* Rewriting the shared model through the writer reproduces the file byte for byte. */
static void writer_reproduces_model(void) {
    const char *src = tl_asset("models/tiny-llama-kjv/model.safetensors");
    sm_ckpt *c = NULL;
    CHECK_OK(sm_safetensors_open(src, &c));
    if (!c) return;
    sm_st_writer *w = sm_st_writer_new();
    for (size_t i = 0; i < c->n_tensors; i++)
        CHECK_OK(sm_st_writer_add(w, c->tensors[i].name, c->tensors[i].type, c->tensors[i].n_dims,
                                  c->tensors[i].shape));
    const char *dst = tl_tmp("rewritten.safetensors");
    CHECK_OK(sm_st_writer_begin(w, dst));
    for (size_t i = 0; i < c->n_tensors; i++) CHECK_OK(sm_st_writer_write(w, c->tensors[i].data, c->tensors[i].nbytes));
    CHECK_OK(sm_st_writer_finish(w));
    sm_ckpt_close(c);
    size_t na = 0, nb = 0;
    char *a = tl_slurp(src, &na), *b = tl_slurp(dst, &nb);
    CHECK_MSG(a && b && na == nb && !memcmp(a, b, na), "rewritten file differs (%zu vs %zu bytes)", na, nb);
    free(a);
    free(b);
}

static int count_files(const char *prefix) {
    DIR *d = opendir(tl_tmpdir());
    int k = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) k += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return k;
}

static void writer_refusals(void) {
    int64_t shape[1] = {4};
    uint8_t bytes[16] = {0};
    /* too many bytes */
    sm_st_writer *w = sm_st_writer_new();
    CHECK_OK(sm_st_writer_add(w, "a", SM_TYPE_F32, 1, shape));
    CHECK_OK(sm_st_writer_begin(w, tl_tmp("refused-more.safetensors")));
    CHECK_OK(sm_st_writer_write(w, bytes, 10));
    CHECK_FAILS_WITH(sm_st_writer_write(w, bytes, 7), "too many");
    CHECK_FAILS_WITH(sm_st_writer_finish(w), "too many");
    /* too few */
    w = sm_st_writer_new();
    CHECK_OK(sm_st_writer_add(w, "a", SM_TYPE_F32, 1, shape));
    CHECK_OK(sm_st_writer_add(w, "b", SM_TYPE_F32, 1, shape));
    CHECK_OK(sm_st_writer_begin(w, tl_tmp("refused-fewer.safetensors")));
    CHECK_OK(sm_st_writer_write(w, bytes, 16));
    CHECK_OK(sm_st_writer_write(w, bytes, 8));
    CHECK_FAILS_WITH(sm_st_writer_finish(w), "'b' is incomplete");
    /* declared twice; a type safetensors cannot hold; bad shapes */
    w = sm_st_writer_new();
    CHECK_OK(sm_st_writer_add(w, "a", SM_TYPE_F32, 1, shape));
    CHECK_OK(sm_st_writer_add(w, "a", SM_TYPE_F32, 1, shape));
    CHECK_FAILS_WITH(sm_st_writer_add(w, "q", SM_TYPE_Q4_K, 1, shape), "no safetensors dtype");
    CHECK_FAILS_WITH(sm_st_writer_add(w, "__metadata__", SM_TYPE_F32, 1, shape), "__metadata__");
    CHECK_FAILS_WITH(sm_st_writer_add(w, "", SM_TYPE_F32, 1, shape), "1 to 1024");
    CHECK_FAILS_WITH(sm_st_writer_add(w, "bad\xff", SM_TYPE_F32, 1, shape), "UTF-8");
    int64_t neg[2] = {2, -1}, huge[2] = {INT64_MAX, 4};
    CHECK_FAILS_WITH(sm_st_writer_add(w, "n", SM_TYPE_F32, 2, neg), "negative");
    CHECK_FAILS_WITH(sm_st_writer_add(w, "h", SM_TYPE_F32, 2, huge), "overflow");
    CHECK_FAILS_WITH(sm_st_writer_add(w, "d", SM_TYPE_F32, SM_MAX_DIMS + 1, shape), "dimensions");
    CHECK_FAILS_WITH(sm_st_writer_begin(w, tl_tmp("refused-dup.safetensors")), "twice");
    sm_st_writer_abort(w);
    /* abort after begin */
    w = sm_st_writer_new();
    CHECK_OK(sm_st_writer_add(w, "a", SM_TYPE_F32, 1, shape));
    CHECK_OK(sm_st_writer_begin(w, tl_tmp("refused-abort.safetensors")));
    CHECK_OK(sm_st_writer_write(w, bytes, 4));
    sm_st_writer_abort(w);
    CHECK_MSG(count_files("refused-") == 0, "%d files left behind", count_files("refused-"));
}

/* The fuzz seeds are valid files (they were made by the writer). */
static void fuzz_seeds(void) {
    const char *src = getenv("SMELT_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/tests/fuzz-seeds/safetensors", src ? src : "..");
    DIR *d = opendir(dir);
    CHECK_MSG(d != NULL, "cannot open %s", dir);
    if (!d) return;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t k = strlen(e->d_name);
        if (k < 12 || strcmp(e->d_name + k - 12, ".safetensors")) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        sm_ckpt *c = NULL;
        CHECK_OK(sm_safetensors_open(path, &c));
        sm_ckpt_close(c);
        n++;
    }
    closedir(d);
    CHECK(n >= 3);
}

void run_tests(void) {
    TEST(model_variants);
    TEST(dispatch);
    TEST(malformed);
    TEST(sharded);
    TEST(writer_roundtrip);
    TEST(writer_hf_bytes);
    TEST(writer_reproduces_model);
    TEST(writer_refusals);
    TEST(fuzz_seeds);
}
