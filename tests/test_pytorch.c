/* test_pytorch.c - the PyTorch checkpoint reader: real torch.save files (the shared tiny Llama
 * and small fixtures written by scripts/make_pytorch_fixtures.py with torch), sharded indexes,
 * and hostile archives and pickles built here byte by byte. Every hostile input must fail with
 * a message naming the problem. */
#include "testlib.h"

#include "formats/formats.h"
#include "formats/pytorch_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static const char *fixture(const char *name) {
    static char buf[8][1024];
    static int k;
    const char *src = getenv("SMELT_SOURCE_DIR");
    char *b = buf[k++ & 7];
    snprintf(b, 1024, "%s/tests/data/pytorch/%s", src && *src ? src : "..", name);
    return b;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float f32_at(const sm_tensor *t, int64_t i) {
    float f;
    memcpy(&f, (const char *)t->data + 4 * i, 4);
    return f;
}

static bool shape_is(const sm_tensor *t, int n, int64_t a, int64_t b) {
    return t && t->n_dims == n && (n < 1 || t->shape[0] == a) && (n < 2 || t->shape[1] == b);
}

/* A growing byte buffer. */
typedef struct buf {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *o, const void *p, size_t k) {
    if (o->n + k > o->cap) {
        o->cap = (o->n + k) * 2 + 64;
        o->b = realloc(o->b, o->cap);
    }
    if (k) memcpy(o->b + o->n, p, k);
    o->n += k;
}
static void put8(buf *o, uint8_t v) { put(o, &v, 1); }
static void put16(buf *o, uint16_t v) { put8(o, (uint8_t)v), put8(o, (uint8_t)(v >> 8)); }
static void put32(buf *o, uint32_t v) { put16(o, (uint16_t)v), put16(o, (uint16_t)(v >> 16)); }
static void puts_(buf *o, const char *s) { put(o, s, strlen(s)); }

/* ---- a stored-zip builder (what torch's writer produces, minus alignment padding) ---- */

typedef struct zb {
    buf data, cd;
    uint16_t count;
} zb;

static void zb_entry(zb *z, const char *name, const void *d, size_t len, uint16_t method) {
    uint32_t off = (uint32_t)z->data.n, crc = sm_crc32(d, len);
    uint16_t nlen = (uint16_t)strlen(name);
    put32(&z->data, 0x04034b50), put16(&z->data, 20), put16(&z->data, 0), put16(&z->data, method);
    put32(&z->data, 0), put32(&z->data, crc), put32(&z->data, (uint32_t)len), put32(&z->data, (uint32_t)len);
    put16(&z->data, nlen), put16(&z->data, 0), put(&z->data, name, nlen), put(&z->data, d, len);
    put32(&z->cd, 0x02014b50), put16(&z->cd, 20), put16(&z->cd, 20), put16(&z->cd, 0), put16(&z->cd, method);
    put32(&z->cd, 0), put32(&z->cd, crc), put32(&z->cd, (uint32_t)len), put32(&z->cd, (uint32_t)len);
    put16(&z->cd, nlen), put16(&z->cd, 0), put16(&z->cd, 0), put16(&z->cd, 0), put16(&z->cd, 0), put32(&z->cd, 0);
    put32(&z->cd, off), put(&z->cd, name, nlen);
    z->count++;
}

/* The finished archive (caller frees .b). */
static buf zb_finish(zb *z) {
    uint32_t cd_off = (uint32_t)z->data.n;
    put(&z->data, z->cd.b, z->cd.n);
    put32(&z->data, 0x06054b50), put16(&z->data, 0), put16(&z->data, 0), put16(&z->data, z->count), put16(&z->data, z->count);
    put32(&z->data, (uint32_t)z->cd.n), put32(&z->data, cd_off), put16(&z->data, 0);
    free(z->cd.b);
    buf out = z->data;
    memset(z, 0, sizeof *z);
    return out;
}

/* ---- pickle bytes ---- */

static void pk_str(buf *p, const char *s) { put8(p, 'X'), put32(p, (uint32_t)strlen(s)), puts_(p, s); }
static void pk_int(buf *p, int64_t v) { put8(p, 'J'), put32(p, (uint32_t)v); }
static void pk_global(buf *p, const char *mod, const char *name) {
    put8(p, 'c'), puts_(p, mod), put8(p, '\n'), puts_(p, name), put8(p, '\n');
}
static void pk_ints(buf *p, int n, const int64_t *v) {
    put8(p, '(');
    for (int i = 0; i < n; i++) pk_int(p, v[i]);
    put8(p, 't');
}

typedef struct sd_opts {
    const char *storage_cls, *key;
    int64_t numel, offset;
    int nd;
    int64_t shape[4], stride[4];
} sd_opts;

/* {name: _rebuild_tensor_v2(('storage', torch.<cls>, key, 'cpu', numel), offset, shape, stride, False, OrderedDict())} */
static void pk_state_dict(buf *p, const char *name, const sd_opts *o) {
    put8(p, 0x80), put8(p, 2), put8(p, '}');
    pk_str(p, name);
    pk_global(p, "torch._utils", "_rebuild_tensor_v2");
    put8(p, '('), put8(p, '(');
    pk_str(p, "storage"), pk_global(p, "torch", o->storage_cls), pk_str(p, o->key), pk_str(p, "cpu"), pk_int(p, o->numel);
    put8(p, 't'), put8(p, 'Q');
    pk_int(p, o->offset), pk_ints(p, o->nd, o->shape), pk_ints(p, o->nd, o->stride);
    put8(p, 0x89), pk_global(p, "collections", "OrderedDict"), put8(p, ')'), put8(p, 'R');
    put8(p, 't'), put8(p, 'R'), put8(p, 's'), put8(p, '.');
}

static const sd_opts SD_OK = {"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}};
static const float STORAGE6[6] = {1, 2, 3, 4, 5, 6};

/* An archive "a/..." with data.pkl = pickle, a/data/0 = storage bytes, optional byteorder. */
static buf archive(const buf *pickle, const void *storage, size_t storage_len, const char *byteorder) {
    zb z = {0};
    zb_entry(&z, "a/data.pkl", pickle->b, pickle->n, 0);
    if (byteorder) zb_entry(&z, "a/byteorder", byteorder, strlen(byteorder), 0);
    zb_entry(&z, "a/data/0", storage, storage_len, 0);
    zb_entry(&z, "a/version", "3\n", 2, 0);
    return zb_finish(&z);
}

static int open_mem(const buf *b) {
    sm_pt_archive a;
    int rc = sm_pt_archive_open(&a, b->b, b->n, "mem.pt", NULL);
    if (rc == 0) sm_pt_archive_close(&a);
    return rc;
}

/* The pickle, wrapped in an archive with the 6-float storage. */
static int open_pickle(const buf *p) {
    buf b = archive(p, STORAGE6, sizeof STORAGE6, NULL);
    int rc = open_mem(&b);
    free(b.b);
    return rc;
}

static int open_sd(const sd_opts *o, const void *storage, size_t len, const char *byteorder) {
    buf p = {0};
    pk_state_dict(&p, "w", o);
    buf b = archive(&p, storage, len, byteorder);
    int rc = open_mem(&b);
    free(p.b);
    free(b.b);
    return rc;
}

/* ---- the shared tiny Llama (torch 1.13 torch.save) ---- */

static void real_model(void) {
    sm_ckpt *c = NULL;
    CHECK_OK(sm_pytorch_open(tl_asset("models/tiny-llama-kjv/pytorch/pytorch_model.bin"), &c));
    if (!c) return;
    CHECK(c->kind == SM_CKPT_PYTORCH);
    CHECK(c->n_tensors == 39);
    int64_t params = 0;
    for (size_t i = 0; i < c->n_tensors; i++) {
        CHECK(c->tensors[i].type == SM_TYPE_F32);
        CHECK(c->tensors[i].nbytes == 4 * (uint64_t)sm_tensor_nelements(&c->tensors[i]));
        params += sm_tensor_nelements(&c->tensors[i]);
    }
    CHECK(params == 4196608);
    CHECK(strcmp(c->tensors[0].name, "model.embed_tokens.weight") == 0);
    CHECK(shape_is(sm_ckpt_find(c, "model.embed_tokens.weight"), 2, 2048, 256));
    CHECK(shape_is(sm_ckpt_find(c, "lm_head.weight"), 2, 2048, 256));
    CHECK(shape_is(sm_ckpt_find(c, "model.norm.weight"), 1, 256, 0));
    for (int l = 0; l < 4; l++) {
        char n[128];
        static const struct { const char *s; int64_t a, b; } W[] = {
            {"self_attn.q_proj", 256, 256}, {"self_attn.k_proj", 128, 256}, {"self_attn.v_proj", 128, 256},
            {"self_attn.o_proj", 256, 256}, {"mlp.gate_proj", 768, 256},   {"mlp.up_proj", 768, 256},
            {"mlp.down_proj", 256, 768},
        };
        for (size_t w = 0; w < sizeof W / sizeof W[0]; w++) {
            snprintf(n, sizeof n, "model.layers.%d.%s.weight", l, W[w].s);
            CHECK_MSG(shape_is(sm_ckpt_find(c, n), 2, W[w].a, W[w].b), "%s", n);
        }
        snprintf(n, sizeof n, "model.layers.%d.input_layernorm.weight", l);
        CHECK(shape_is(sm_ckpt_find(c, n), 1, 256, 0));
        snprintf(n, sizeof n, "model.layers.%d.post_attention_layernorm.weight", l);
        CHECK(shape_is(sm_ckpt_find(c, n), 1, 256, 0));
    }
    /* Elements printed by torch.load (bit patterns of the F32 values). */
    static const struct { const char *name; int64_t idx; uint32_t bits; } V[] = {
        {"model.embed_tokens.weight", 0, 0xbb120000},
        {"model.embed_tokens.weight", 2047 * 256 + 255, 0xbb4f0000},
        {"lm_head.weight", 1000 * 256 + 17, 0x3ca70000},
        {"model.norm.weight", 5, 0x3fe50000},
        {"model.layers.3.mlp.down_proj.weight", 255 * 768 + 767, 0xbd9a0000},
        {"model.layers.0.self_attn.k_proj.weight", 127 * 256 + 3, 0xbb670000},
    };
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        const sm_tensor *t = sm_ckpt_find(c, V[i].name);
        CHECK_MSG(t && f32_bits(f32_at(t, V[i].idx)) == V[i].bits, "%s[%lld]", V[i].name, (long long)V[i].idx);
    }
    sm_ckpt_close(c);
}

/* Every tensor equals the F32 safetensors variant of the same weights (read by the
 * safetensors reader), and sm_ckpt_open finds the PyTorch file in its folder. */
static void real_model_vs_safetensors(void) {
    sm_ckpt *pt = NULL, *st = NULL;
    CHECK_OK(sm_ckpt_open(tl_asset("models/tiny-llama-kjv/pytorch"), &pt));
    CHECK_OK(sm_safetensors_open(tl_asset("models/tiny-llama-kjv/f32/model.safetensors"), &st));
    if (pt && st) {
        CHECK(pt->kind == SM_CKPT_PYTORCH && pt->n_tensors == st->n_tensors);
        size_t same = 0;
        for (size_t i = 0; i < st->n_tensors; i++) {
            const sm_tensor *a = &st->tensors[i], *b = sm_ckpt_find(pt, a->name);
            bool eq = b && a->type == b->type && a->n_dims == b->n_dims && a->nbytes == b->nbytes &&
                      memcmp(a->shape, b->shape, sizeof a->shape) == 0 && memcmp(a->data, b->data, a->nbytes) == 0;
            CHECK_MSG(eq, "%s", a->name);
            same += eq;
        }
        CHECK(same == 39);
    }
    sm_ckpt_close(pt);
    sm_ckpt_close(st);
    /* the dispatcher sends a legacy file here too */
    sm_ckpt *c = NULL;
    CHECK_FAILS_WITH(sm_ckpt_open(fixture("legacy.pt"), &c), "unsupported legacy (pre-1.6, non-zip) PyTorch format");
    CHECK_OK(sm_ckpt_open(fixture("sharded/pytorch_model.bin.index.json"), &c));
    if (c) CHECK(c->n_tensors == 3 && c->kind == SM_CKPT_PYTORCH);
    sm_ckpt_close(c);
}

/* ---- small real torch.save files ---- */

static void dtypes(void) {
    sm_ckpt *c = NULL;
    CHECK_OK(sm_pytorch_open(fixture("dtypes.pt"), &c));
    if (!c) return;
    CHECK(c->n_tensors == 12);
    const sm_tensor *t;
    CHECK((t = sm_ckpt_find(c, "f32")) && t->type == SM_TYPE_F32 && shape_is(t, 2, 3, 4));
    for (int i = 0; t && i < 12; i++) CHECK(f32_at(t, i) == i * 0.5f - 1.0f);
    CHECK((t = sm_ckpt_find(c, "f16")) && t->type == SM_TYPE_F16 && shape_is(t, 2, 2, 3));
    for (int i = 0; t && i < 6; i++) CHECK(sm_f16_to_f32(((const uint16_t *)t->data)[i]) == i * 0.25f - 0.5f);
    CHECK((t = sm_ckpt_find(c, "bf16")) && t->type == SM_TYPE_BF16 && shape_is(t, 1, 8, 0));
    for (int i = 0; t && i < 8; i++) CHECK(sm_bf16_to_f32(((const uint16_t *)t->data)[i]) == -2.0f * i + 3.0f);
    CHECK((t = sm_ckpt_find(c, "f64")) && t->type == SM_TYPE_F64 && shape_is(t, 1, 5, 0));
    for (int i = 0; t && i < 5; i++) CHECK(((const double *)t->data)[i] == i * 0.1);
    CHECK((t = sm_ckpt_find(c, "i64")) && t->type == SM_TYPE_I64 && shape_is(t, 1, 4, 0));
    for (int i = 0; t && i < 4; i++) CHECK(((const int64_t *)t->data)[i] == 7 - i * 1000000000000LL);
    CHECK((t = sm_ckpt_find(c, "i32")) && t->type == SM_TYPE_I32);
    for (int i = 0; t && i < 4; i++) CHECK(((const int32_t *)t->data)[i] == 1 - 3 * i);
    CHECK((t = sm_ckpt_find(c, "i16")) && t->type == SM_TYPE_I16);
    for (int i = 0; t && i < 3; i++) CHECK(((const int16_t *)t->data)[i] == 300 * i - 300);
    CHECK((t = sm_ckpt_find(c, "i8")) && t->type == SM_TYPE_I8);
    for (int i = 0; t && i < 4; i++) CHECK(((const int8_t *)t->data)[i] == 20 - 30 * i);
    CHECK((t = sm_ckpt_find(c, "u8")) && t->type == SM_TYPE_U8);
    for (int i = 0; t && i < 4; i++) CHECK(((const uint8_t *)t->data)[i] == 10 + 60 * i);
    CHECK((t = sm_ckpt_find(c, "bool")) && t->type == SM_TYPE_BOOL && t->nbytes == 3);
    if (t) CHECK(memcmp(t->data, "\1\0\1", 3) == 0);
    CHECK((t = sm_ckpt_find(c, "scalar")) && t->type == SM_TYPE_F32 && t->n_dims == 0 && t->nbytes == 4);
    if (t) CHECK(f32_at(t, 0) == 3.5f);
    CHECK((t = sm_ckpt_find(c, "empty")) && shape_is(t, 2, 0, 4) && t->nbytes == 0);
    sm_ckpt_close(c);
}

static void shared_storage(void) {
    sm_ckpt *c = NULL;
    CHECK_OK(sm_pytorch_open(fixture("shared.pt"), &c));
    if (!c) return;
    const sm_tensor *whole = sm_ckpt_find(c, "whole"), *mid = sm_ckpt_find(c, "mid"), *tail = sm_ckpt_find(c, "tail");
    CHECK(shape_is(whole, 2, 4, 5) && shape_is(mid, 1, 5, 0) && shape_is(tail, 2, 2, 5));
    if (whole && mid && tail) {
        for (int i = 0; i < 20; i++) CHECK(f32_at(whole, i) == (float)i);
        CHECK(mid->data == (const char *)whole->data + 2 * 4 && f32_at(mid, 0) == 2.0f && mid->nbytes == 20);
        CHECK(tail->data == (const char *)whole->data + 10 * 4 && f32_at(tail, 9) == 19.0f);
        const sm_tensor *tied = sm_ckpt_find(c, "tied");
        CHECK(shape_is(tied, 2, 4, 5) && tied && tied->data == whole->data && tied->nbytes == 80);
    }
    sm_ckpt_close(c);
}

static void state_dicts(void) {
    static const char *files[] = {"linear.pt", "params.pt", "linear_p4.pt"};
    for (int f = 0; f < 3; f++) {
        sm_ckpt *c = NULL;
        CHECK_OK(sm_pytorch_open(fixture(files[f]), &c));
        if (!c) continue;
        CHECK(c->n_tensors == 2);
        const sm_tensor *w = sm_ckpt_find(c, "weight"), *b = sm_ckpt_find(c, "bias");
        CHECK_MSG(shape_is(w, 2, 2, 3) && shape_is(b, 1, 2, 0), "%s", files[f]);
        for (int i = 0; w && i < 6; i++) CHECK(f32_at(w, i) == i / 8.0f - 0.25f);
        if (b) CHECK(f32_at(b, 0) == 10.0f && f32_at(b, 1) == -10.0f);
        sm_ckpt_close(c);
    }
    /* A training checkpoint: weights under "model", nested dicts flattened, optimizer ignored. */
    sm_ckpt *c = NULL;
    CHECK_OK(sm_pytorch_open(fixture("nested.pt"), &c));
    if (!c) return;
    CHECK(c->n_tensors == 2);
    const sm_tensor *e = sm_ckpt_find(c, "embed.weight");
    CHECK(shape_is(e, 2, 3, 2) && e && f32_at(e, 5) == 6.0f);
    CHECK(shape_is(sm_ckpt_find(c, "norm.weight"), 1, 2, 0));
    sm_ckpt_close(c);
}

static void refused_files(void) {
    sm_ckpt *c = NULL;
    CHECK_FAILS_WITH(sm_pytorch_open(fixture("noncontig.pt"), &c), "non-contiguous tensor t is not supported");
    CHECK_FAILS_WITH(sm_pytorch_open(fixture("legacy.pt"), &c), "unsupported legacy (pre-1.6, non-zip) PyTorch format");
    CHECK_FAILS_WITH(sm_pytorch_open(fixture("nope.pt"), &c), "cannot open");
    CHECK(c == NULL);
}

/* ---- sharded ---- */

static void sharded(void) {
    sm_ckpt *c = NULL;
    CHECK_OK(sm_pytorch_open(fixture("sharded/pytorch_model.bin.index.json"), &c));
    if (!c) return;
    CHECK(c->n_tensors == 3);
    if (c->n_tensors == 3) {
        CHECK(strcmp(c->tensors[0].name, "a.weight") == 0 && c->tensors[0].type == SM_TYPE_F32);
        CHECK(strcmp(c->tensors[1].name, "b.weight") == 0 && c->tensors[1].type == SM_TYPE_F16);
        CHECK(strcmp(c->tensors[2].name, "c.weight") == 0 && c->tensors[2].type == SM_TYPE_BF16);
        CHECK(f32_at(&c->tensors[0], 3) == 3.0f);
        CHECK(sm_f16_to_f32(((const uint16_t *)c->tensors[1].data)[1]) == 5.0f);
        CHECK(sm_bf16_to_f32(((const uint16_t *)c->tensors[2].data)[2]) == 8.0f);
    }
    sm_ckpt_close(c);
}

static void write_index(const char *map_json) {
    char text[1024];
    snprintf(text, sizeof text, "{\"metadata\": {}, \"weight_map\": {%s}}", map_json);
    CHECK(tl_write_file(tl_tmp("sh/index.json"), text, strlen(text)) == 0);
}

static void sharded_errors(void) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s' '%s'", tl_tmp("sh"), fixture("sharded/pytorch_model-00001-of-00002.bin"),
             fixture("sharded/pytorch_model-00002-of-00002.bin"), tl_tmp("sh"));
    CHECK(system(cmd) == 0);
    const char *s1 = "\"pytorch_model-00001-of-00002.bin\"", *s2 = "\"pytorch_model-00002-of-00002.bin\"";
    char m[1024];
    sm_ckpt *c = NULL;
    const char *idx = tl_tmp("sh/index.json");
    snprintf(m, sizeof m, "\"a.weight\": %s, \"b.weight\": %s, \"c.weight\": %s", s1, s1, s2);
    write_index(m);
    CHECK_OK(sm_pytorch_open(idx, &c));
    sm_ckpt_close(c);
    c = NULL;
    snprintf(m, sizeof m, "\"a.weight\": %s, \"b.weight\": %s, \"c.weight\": \"missing.bin\"", s1, s1);
    write_index(m);
    CHECK_FAILS_WITH(sm_pytorch_open(idx, &c), "shard missing.bin");
    snprintf(m, sizeof m, "\"a.weight\": %s, \"b.weight\": %s, \"c.weight\": %s, \"d.weight\": %s", s1, s1, s2, s2);
    write_index(m);
    CHECK_FAILS_WITH(sm_pytorch_open(idx, &c), "tensor 'd.weight' listed in the index is missing");
    snprintf(m, sizeof m, "\"a.weight\": %s, \"c.weight\": %s", s1, s2);
    write_index(m);
    CHECK_FAILS_WITH(sm_pytorch_open(idx, &c), "tensor 'b.weight' in shard pytorch_model-00001-of-00002.bin is not listed");
    snprintf(m, sizeof m, "\"a.weight\": %s, \"b.weight\": %s, \"c.weight\": %s", s1, s2, s2);
    write_index(m);
    CHECK_FAILS_WITH(sm_pytorch_open(idx, &c), "tensor 'b.weight' is in shard pytorch_model-00001-of-00002.bin but the index maps it");
    snprintf(m, sizeof m, "\"a.weight\": \"../sh/pytorch_model-00001-of-00002.bin\"");
    write_index(m);
    CHECK_FAILS_WITH(sm_pytorch_open(idx, &c), "not a plain file name");
    write_index("");
    CHECK_FAILS_WITH(sm_pytorch_open(idx, &c), "empty weight_map");
    CHECK(tl_write_file(idx, "{\"weight_map\": [", 16) == 0);
    CHECK_FAILS_WITH(sm_pytorch_open(idx, &c), "not valid JSON");
    CHECK(c == NULL);
}

/* ---- archives and pickles built by hand ---- */

static void handmade_ok(void) {
    /* the builder itself and the byteorder entry */
    CHECK_OK(open_sd(&SD_OK, STORAGE6, sizeof STORAGE6, "little"));
    /* _rebuild_tensor_v3: an untyped storage with an explicit dtype (torch >= 2.1, float8) */
    buf p = {0};
    put8(&p, 0x80), put8(&p, 2), put8(&p, '}'), pk_str(&p, "f8");
    pk_global(&p, "torch._utils", "_rebuild_tensor_v3");
    put8(&p, '('), put8(&p, '('), pk_str(&p, "storage"), pk_global(&p, "torch.storage", "UntypedStorage"), pk_str(&p, "0");
    pk_str(&p, "cpu"), pk_int(&p, 24), put8(&p, 't'), put8(&p, 'Q');
    pk_int(&p, 4), pk_ints(&p, 2, (int64_t[]){4, 5}), pk_ints(&p, 2, (int64_t[]){5, 1});
    put8(&p, 0x89), put8(&p, '}'), pk_global(&p, "torch", "float8_e4m3fn"), put8(&p, 't'), put8(&p, 'R'), put8(&p, 's'), put8(&p, '.');
    buf b = archive(&p, STORAGE6, sizeof STORAGE6, NULL);
    sm_pt_archive a;
    CHECK_OK(sm_pt_archive_open(&a, b.b, b.n, "v3.pt", NULL));
    if (a.n_tensors == 1) {
        CHECK(a.tensors[0].type == SM_TYPE_F8_E4M3 && shape_is(&a.tensors[0], 2, 4, 5) && a.tensors[0].nbytes == 20);
        CHECK(a.tensors[0].data == sm_zip_entry_data(&a.zip, sm_zip_find(&a.zip, "a/data/0")) + 4);
        sm_pt_archive_close(&a);
    }
    free(p.b);
    free(b.b);
}

static void hostile_pickles(void) {
    buf p = {0};
#define PICKLE(bytes, len, needle)                                                                                                 \
    do {                                                                                                                           \
        p.n = 0;                                                                                                                   \
        put(&p, bytes, len);                                                                                                       \
        CHECK_FAILS_WITH(open_pickle(&p), needle);                                                                                 \
    } while (0)
#define PICKLE_S(lit, needle) PICKLE(lit, sizeof lit - 1, needle)
    PICKLE_S("\x80\x02" "cos\nsystem\nX\x07\0\0\0echo hi\x85R.", "refusing pickle global 'os.system' at offset");
    PICKLE_S("\x80\x02" "cbuiltins\neval\nX\x01\0\0\0" "1\x85R.", "refusing pickle global 'builtins.eval'");
    PICKLE_S("\x80\x02" "c__builtin__\ngetattr\n.", "refusing pickle global '__builtin__.getattr'");
    PICKLE_S("\x80\x04\x8c\x05posix\x8c\x06system\x93\x8c\x02id\x85R.", "refusing pickle global 'posix.system'");
    PICKLE_S("\x80\x02" "csubprocess\nPopen\n.", "refusing pickle global 'subprocess.Popen'");
    PICKLE_S("\x80\x02" "ctorch.storage\n_load_from_bytes\n.", "refusing pickle global 'torch.storage._load_from_bytes'");
    PICKLE_S("\x80\x02" "ctorch\nComplexFloatStorage\n.", "unsupported tensor storage type 'torch.ComplexFloatStorage'");
    PICKLE_S("\x80\x02(X\x02\0\0\0idios\nsystem\n.", "unsupported pickle opcode INST (0x69)");
    PICKLE_S("\x80\x02(ctorch\nFloatStorage\no.", "unsupported pickle opcode OBJ");
    PICKLE_S("\x80\x02" "ccollections\nOrderedDict\n)\x81.", "unsupported pickle opcode NEWOBJ");
    PICKLE_S("\x80\x02" "ctorch\nFloatStorage\n)R.", "refusing to call torch.FloatStorage");
    PICKLE_S("\x80\x02]}b.", "refusing BUILD of a list");
    PICKLE_S("\x80\x02}]b.", "refusing BUILD of a dict with a list state");
    PICKLE_S("\x80\x02\xff", "unsupported pickle opcode unknown (0xff) at offset 2");
    PICKLE_S("\x80\x02" "C\x03" "abc.", "unsupported pickle opcode SHORT_BINBYTES");
    PICKLE_S("\x80\x02X\xf0\xff\xff\xff", "exceeds the string limit");
    PICKLE_S("\x80\x02X\x10\0\0\0abc", "truncated pickle: BINUNICODE needs 16 more bytes");
    PICKLE_S("\x80\x02X\x02\0\0\0\xc3\x28.", "not valid UTF-8");
    PICKLE_S("\x80\x02h\x05.", "memo index 5 was never set");
    PICKLE_S("\x80\x02Nr\xff\xff\xff\x7f.", "memo index 2147483647 out of range");
    PICKLE_S("\x80\x02}", "truncated pickle: no STOP opcode");
    PICKLE_S("\x80\x02.", "STOP on an empty stack");
    PICKLE_S("\x80\x02](N.", "the pickle holds a None"); /* an open MARK at STOP is harmless */
    PICKLE_S("\x80\x02]N.", "not a dict of tensors");
    PICKLE_S("\x80\x02}Ns.", "SETITEM on an empty stack");
    PICKLE_S("\x80\x02}(Nu.", "odd number");
    PICKLE_S("\x80\x02N(Ne.", "APPENDS to a None");
    PICKLE_S("\x80\x02t.", "TUPLE without a MARK");
    PICKLE_S("\x80\x02(N\x86.", "TUPLE2 needs 2 values");
    PICKLE_S("\x80\x09}.", "unsupported pickle protocol 9");
    PICKLE_S("\x80\x02\x8a\x09\0\0\0\0\0\0\0\0\x01.", "does not fit in 64 bits");
    PICKLE_S("\x80\x02}X\x01\0\0\0wNs.", "no tensors found");
    PICKLE_S("\x80\x02}X\x01\0\0\0w]s.", "state dict entry 'w' is a list");
    PICKLE_S("\x80\x02}X\x01\0\0\0wX\x01\0\0\0xQs.", "persistent id is a str");
    /* deep MARK nesting and stack overflow */
    p.n = 0;
    put8(&p, 0x80), put8(&p, 2);
    for (int i = 0; i < 10000; i++) put8(&p, '(');
    CHECK_FAILS_WITH(open_pickle(&p), "MARKs nested deeper than 256");
    p.n = 0;
    put8(&p, 0x80), put8(&p, 2), put8(&p, 'N'), put8(&p, 'q'), put8(&p, 0);
    for (int i = 0; i < (1 << 20) + 10; i++) put8(&p, 'h'), put8(&p, 0);
    CHECK_FAILS_WITH(open_pickle(&p), "pickle stack overflow");
    /* cyclic / deeply nested dicts */
    p.n = 0;
    put8(&p, 0x80), put8(&p, 2), put8(&p, '}'), put8(&p, 'q'), put8(&p, 0), pk_str(&p, "x"), put8(&p, 'h'), put8(&p, 0), put8(&p, 's'), put8(&p, '.');
    CHECK_FAILS_WITH(open_pickle(&p), "the same dict appears twice in the state dict (at 'x')");
    /* a "billion laughs" DAG: d[k] = {"a": d[k-1], "b": d[k-1]}, 2^30 paths if walked naively */
    p.n = 0;
    put8(&p, 0x80), put8(&p, 2), put8(&p, '}'), put8(&p, 'q'), put8(&p, 0);
    for (int k = 1; k <= 30; k++) {
        put8(&p, '}'), put8(&p, 'q'), put8(&p, (uint8_t)k), put8(&p, '(');
        pk_str(&p, "a"), put8(&p, 'h'), put8(&p, (uint8_t)(k - 1)), pk_str(&p, "b"), put8(&p, 'h'), put8(&p, (uint8_t)(k - 1));
        put8(&p, 'u');
    }
    put8(&p, '.');
    CHECK_FAILS_WITH(open_pickle(&p), "the same dict appears twice");
    /* nesting deeper than the walk allows */
    p.n = 0;
    put8(&p, 0x80), put8(&p, 2);
    for (int k = 0; k < 40; k++) put8(&p, '}'), pk_str(&p, "x");
    put8(&p, '}');
    for (int k = 0; k < 40; k++) put8(&p, 's');
    put8(&p, '.');
    CHECK_FAILS_WITH(open_pickle(&p), "state dict nested deeper than 32 levels");
    free(p.b);
#undef PICKLE
#undef PICKLE_S
}

static void hostile_tensors(void) {
    sd_opts o = SD_OK;
    o.key = "7";
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "refers to storage '7' but the archive has no entry 'a/data/7'");
    o = SD_OK;
    o.numel = 100;
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "storage '0' holds 24 bytes, fewer than its 100 f32 elements need");
    o = SD_OK;
    o.offset = 1;
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "reaches past its storage of 6 f32 elements");
    o = SD_OK;
    o.offset = 0x7fffffff;
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "past the end of its storage");
    o = SD_OK;
    o.shape[0] = 0x40000000, o.shape[1] = 0x40000000;
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "reaches past its storage");
    o = SD_OK;
    o.stride[0] = 1, o.stride[1] = 2; /* a transposed view */
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "non-contiguous tensor w is not supported");
    o = SD_OK;
    o.shape[0] = -1;
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "tensor size must hold non-negative ints");
    o = SD_OK;
    o.storage_cls = "HalfStorage";
    o.numel = 12;
    o.shape[0] = 4;
    CHECK_OK(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL)); /* 12 halves in 24 bytes, a [4,3] view */
    o.numel = 13;
    CHECK_FAILS_WITH(open_sd(&o, STORAGE6, sizeof STORAGE6, NULL), "fewer than its 13 f16 elements need");
    CHECK_FAILS_WITH(open_sd(&SD_OK, STORAGE6, sizeof STORAGE6, "big"), "big-endian checkpoints are not supported");
    CHECK_FAILS_WITH(open_sd(&SD_OK, STORAGE6, sizeof STORAGE6, "middle"), "byteorder: expected \"little\"");
}

/* A valid two-entry archive to mutate: returns offsets of the central directory entries. */
static buf two_entries(const char *n1, const char *n2) {
    zb z = {0};
    zb_entry(&z, n1, "hello", 5, 0);
    zb_entry(&z, n2, "world", 5, 0);
    return zb_finish(&z);
}

static int open_zip(const buf *b) {
    sm_zip z;
    int rc = sm_zip_open(&z, b->b, b->n, "mem.zip");
    if (rc == 0) sm_zip_close(&z);
    return rc;
}

static void hostile_zips(void) {
    buf b = two_entries("a/x", "../../etc/passwd");
    CHECK_FAILS_WITH(open_zip(&b), "'..' component in entry name refused");
    free(b.b);
    b = two_entries("a/x", "/etc/passwd");
    CHECK_FAILS_WITH(open_zip(&b), "absolute entry name refused");
    free(b.b);
    b = two_entries("a/x", "a\\..\\x");
    CHECK_FAILS_WITH(open_zip(&b), "backslash");
    free(b.b);
    b = two_entries("a/x", "a/x");
    CHECK_FAILS_WITH(open_zip(&b), "duplicate entry name 'a/x'");
    free(b.b);
    b = two_entries("a/x", "a/y");
    CHECK_OK(open_zip(&b));
    /* overlap: the first entry's size (central directory) grows over the second's header */
    size_t cd = b.n - 22 - 2 * (46 + 3);
    buf o = {0};
    put(&o, b.b, b.n);
    o.b[cd + 20] = o.b[cd + 24] = 40;
    o.b[6] = 8; /* sizes in a data descriptor, as torch writes them */
    o.b[18] = o.b[22] = 0;
    CHECK_FAILS_WITH(open_zip(&o), "entries 'a/x' and 'a/y' overlap");
    /* the second central record points at the first local header */
    memcpy(o.b, b.b, b.n);
    memset(o.b + cd + 46 + 3 + 42, 0, 4);
    CHECK_FAILS_WITH(open_zip(&o), "local header names a different entry");
    /* data running into the central directory */
    memcpy(o.b, b.b, b.n);
    o.b[cd + 46 + 3 + 20] = o.b[cd + 46 + 3 + 24] = 200;
    o.b[38 + 18] = o.b[38 + 22] = 200;
    CHECK_FAILS_WITH(open_zip(&o), "run past the data area into the central directory");
    /* a compression method other than deflate (12: bzip2) */
    memcpy(o.b, b.b, b.n);
    o.b[cd + 10] = 12, o.b[8] = 12;
    CHECK_FAILS_WITH(open_zip(&o), "entry 'a/x' is compressed with method 12");
    /* encrypted */
    memcpy(o.b, b.b, b.n);
    o.b[cd + 8] = 1;
    CHECK_FAILS_WITH(open_zip(&o), "encrypted");
    /* a NUL in a name */
    memcpy(o.b, b.b, b.n);
    o.b[cd + 46 + 1] = 0;
    CHECK_FAILS_WITH(open_zip(&o), "NUL byte");
    /* central directory offset past the end */
    memcpy(o.b, b.b, b.n);
    o.b[b.n - 22 + 16] = 0xff;
    CHECK_FAILS_WITH(open_zip(&o), "central directory (offset");
    /* zip64 markers without a locator */
    memcpy(o.b, b.b, b.n);
    memset(o.b + b.n - 22 + 12, 0xff, 8);
    CHECK_FAILS_WITH(open_zip(&o), "no zip64 locator");
    /* multi-disk */
    memcpy(o.b, b.b, b.n);
    o.b[b.n - 22 + 4] = 1;
    CHECK_FAILS_WITH(open_zip(&o), "multi-disk");
    /* a wrong CRC on data.pkl is caught */
    free(o.b);
    /* every truncation fails cleanly */
    for (size_t n = 0; n < b.n; n++) {
        buf t = {b.b, n, n};
        if (open_zip(&t) == 0) CHECK_MSG(0, "truncated to %zu bytes accepted", n);
    }
    free(b.b);
    /* a zip64 archive: the end record and locator that torch's writer always adds */
    zb z = {0};
    zb_entry(&z, "a/x", "hello", 5, 0);
    uint32_t cd_off = (uint32_t)z.data.n, cd_len = (uint32_t)z.cd.n;
    put(&z.data, z.cd.b, z.cd.n);
    uint32_t z64 = (uint32_t)z.data.n;
    put32(&z.data, 0x06064b50), put32(&z.data, 44), put32(&z.data, 0), put16(&z.data, 45), put16(&z.data, 45);
    put32(&z.data, 0), put32(&z.data, 0), put32(&z.data, 1), put32(&z.data, 0), put32(&z.data, 1), put32(&z.data, 0);
    put32(&z.data, cd_len), put32(&z.data, 0), put32(&z.data, cd_off), put32(&z.data, 0);
    put32(&z.data, 0x07064b50), put32(&z.data, 0), put32(&z.data, z64), put32(&z.data, 0), put32(&z.data, 1);
    put32(&z.data, 0x06054b50), put32(&z.data, 0), put16(&z.data, 0xffff), put16(&z.data, 0xffff);
    put32(&z.data, 0xffffffff), put32(&z.data, 0xffffffff), put16(&z.data, 0);
    sm_zip zz;
    CHECK_OK(sm_zip_open(&zz, z.data.b, z.data.n, "z64.zip"));
    if (zz.n_entries == 1) {
        CHECK(zz.entries[0].size == 5 && memcmp(sm_zip_entry_data(&zz, &zz.entries[0]), "hello", 5) == 0);
        sm_zip_close(&zz);
    }
    z.data.b[z64 + 24] = 2; /* entry counts disagree */
    CHECK_FAILS_WITH(sm_zip_open(&zz, z.data.b, z.data.n, "z64.zip"), "multi-disk");
    free(z.data.b);
    free(z.cd.b);
}

/* An entry whose sizes and offset live in zip64 extra fields (as for storages over 4 GiB),
 * local and central, then the zip64 end records. with_extra = false drops the central extra. */
static buf zip64_archive(bool with_extra) {
    buf b = {0};
    uint32_t crc = sm_crc32("hello", 5);
    put32(&b, 0x04034b50), put16(&b, 45), put16(&b, 0), put16(&b, 0), put32(&b, 0), put32(&b, crc);
    put32(&b, 0xffffffff), put32(&b, 0xffffffff), put16(&b, 3), put16(&b, 20), puts_(&b, "a/x");
    put16(&b, 1), put16(&b, 16), put32(&b, 5), put32(&b, 0), put32(&b, 5), put32(&b, 0);
    puts_(&b, "hello");
    uint32_t cd_off = (uint32_t)b.n;
    put32(&b, 0x02014b50), put16(&b, 45), put16(&b, 45), put16(&b, 0), put16(&b, 0), put32(&b, 0), put32(&b, crc);
    put32(&b, 0xffffffff), put32(&b, 0xffffffff), put16(&b, 3), put16(&b, with_extra ? 28 : 0), put16(&b, 0);
    put16(&b, 0), put16(&b, 0), put32(&b, 0), put32(&b, 0xffffffff), puts_(&b, "a/x");
    if (with_extra) put16(&b, 1), put16(&b, 24), put32(&b, 5), put32(&b, 0), put32(&b, 5), put32(&b, 0), put32(&b, 0), put32(&b, 0);
    uint32_t cd_len = (uint32_t)b.n - cd_off, z64 = (uint32_t)b.n;
    put32(&b, 0x06064b50), put32(&b, 44), put32(&b, 0), put16(&b, 45), put16(&b, 45);
    put32(&b, 0), put32(&b, 0), put32(&b, 1), put32(&b, 0), put32(&b, 1), put32(&b, 0);
    put32(&b, cd_len), put32(&b, 0), put32(&b, cd_off), put32(&b, 0);
    put32(&b, 0x07064b50), put32(&b, 0), put32(&b, z64), put32(&b, 0), put32(&b, 1);
    put32(&b, 0x06054b50), put32(&b, 0), put16(&b, 0xffff), put16(&b, 0xffff);
    put32(&b, 0xffffffff), put32(&b, 0xffffffff), put16(&b, 0);
    return b;
}

static void zip64(void) {
    buf b = zip64_archive(true);
    sm_zip z;
    CHECK_OK(sm_zip_open(&z, b.b, b.n, "z64.zip"));
    if (z.n_entries == 1) {
        CHECK(z.entries[0].size == 5 && memcmp(sm_zip_entry_data(&z, &z.entries[0]), "hello", 5) == 0);
        CHECK_OK(sm_zip_check_crc(&z, &z.entries[0]));
        sm_zip_close(&z);
    }
    free(b.b);
    b = zip64_archive(false);
    CHECK_FAILS_WITH(open_zip(&b), "marked as zip64 but no valid zip64 extra field");
    free(b.b);
}

static void hostile_archives(void) {
    buf p = {0};
    pk_state_dict(&p, "w", &SD_OK);
    buf b = archive(&p, STORAGE6, sizeof STORAGE6, NULL);
    CHECK_OK(open_mem(&b));
    /* a corrupted pickle is caught by its CRC */
    b.b[30 + 10 + 5] ^= 1;
    CHECK_FAILS_WITH(open_mem(&b), "CRC-32");
    b.b[30 + 10 + 5] ^= 1;
    /* every truncation and every single-byte corruption fails cleanly or parses */
    for (size_t n = 0; n < b.n; n++) {
        buf t = {b.b, n, n};
        if (open_mem(&t) == 0) CHECK_MSG(0, "truncated archive of %zu bytes accepted", n);
    }
    for (size_t i = 0; i < b.n; i++) {
        b.b[i] ^= 0xa5;
        (void)open_mem(&b);
        b.b[i] ^= 0xa5;
    }
    free(b.b);
    /* legacy and non-zip bytes */
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    buf l = {(uint8_t *)legacy, sizeof legacy, sizeof legacy};
    CHECK_FAILS_WITH(open_mem(&l), "unsupported legacy (pre-1.6, non-zip) PyTorch format");
    buf j = {(uint8_t *)"{\"a\": 1}", 8, 8};
    CHECK_FAILS_WITH(open_mem(&j), "not a PyTorch checkpoint");
    /* archives without a folder, without data.pkl, TorchScript */
    zb z = {0};
    zb_entry(&z, "data.pkl", p.b, p.n, 0);
    b = zb_finish(&z);
    CHECK_FAILS_WITH(open_mem(&b), "not inside an archive folder");
    free(b.b);
    zb_entry(&z, "a/constants.pkl", p.b, p.n, 0);
    b = zb_finish(&z);
    CHECK_FAILS_WITH(open_mem(&b), "TorchScript");
    free(b.b);
    zb_entry(&z, "a/other", p.b, p.n, 0);
    b = zb_finish(&z);
    CHECK_FAILS_WITH(open_mem(&b), "no 'a/data.pkl'");
    free(b.b);
    /* data.pkl marked deflated but holding stored bytes (deflated archives: test_integrity) */
    zb_entry(&z, "a/data.pkl", p.b, p.n, 8);
    b = zb_finish(&z);
    CHECK_FAILS_WITH(open_mem(&b), "entry 'a/data.pkl': invalid deflate data");
    free(b.b);
    free(p.b);
}

/* Byte-level robustness on a real torch file: truncations and corruptions fail cleanly. */
static void mutations(void) {
    size_t n = 0;
    char *data = tl_slurp(fixture("linear.pt"), &n);
    CHECK(data != NULL);
    if (!data) return;
    buf b = {(uint8_t *)data, n, n};
    CHECK_OK(open_mem(&b));
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            uint8_t x = k ? 0xff : 0x01;
            data[i] ^= (char)x;
            (void)open_mem(&b);
            data[i] ^= (char)x;
        }
    }
    for (size_t len = 0; len < n; len += 7) {
        buf t = {(uint8_t *)data, len, len};
        if (open_mem(&t) == 0) CHECK_MSG(0, "truncated to %zu bytes accepted", len);
    }
    free(data);
}

void run_tests(void) {
    TEST(real_model);
    TEST(real_model_vs_safetensors);
    TEST(dtypes);
    TEST(shared_storage);
    TEST(state_dicts);
    TEST(refused_files);
    TEST(sharded);
    TEST(sharded_errors);
    TEST(handmade_ok);
    TEST(hostile_pickles);
    TEST(hostile_tensors);
    TEST(hostile_zips);
    TEST(zip64);
    TEST(hostile_archives);
    TEST(mutations);
}
