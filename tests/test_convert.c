/* test_convert.c - `smelt convert` / sm_convert end to end.
 *
 * Independent expectations:
 *  - the checkpoint variants of tiny-llama-kjv hold the same values (models/README.md), so
 *    their F32 GGUFs must be byte-identical tensor by tensor;
 *  - metadata: the keys, types and values llama.cpp's convert_hf_to_gguf.py writes for this
 *    config (TextModel/LlamaModel.set_gguf_parameters, gguf-py Metadata: the name from the
 *    directory title-cased, size label of 4,196,608 parameters = "4.2M", quantization
 *    version 2, file type 0/1/7/32 from gguf-py's LlamaFileType);
 *  - q/k rows: LlamaModel.permute worked by hand for head_dim 32 (GGUF row h*32+2i+j =
 *    HF row h*32+16j+i), against the source values read with the safetensors reader;
 *  - q8_0 bytes: the codec's Q8_0 of the same floats (test_codecs proves ggml equality);
 *  - stories260K: shared classifier -> no output tensor, 512 tokens, ffn_down rows of 172
 *    cannot be Q8_0 blocks -> F16 (gguf-py's QuantError fallback). */
#include "convert/convert.h"
#include "formats/formats.h"
#include "quantize/quantize.h"
#include "testlib.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KJV "models/tiny-llama-kjv"
/* tl_tmp / tl_asset reuse 8 static buffers: keep paths that must live longer in a local copy */
#define TMP(var, name)  \
    char var[1024];     \
    snprintf(var, sizeof var, "%s", tl_tmp(name))

static int convert_to(const char *model, const char *out, const char *outtype, sm_convert_report *rep) {
    sm_convert_opts o = {.outtype = outtype, .quiet = true};
    return sm_convert(model, out, &o, rep);
}

static sm_gguf *open_out(const char *path) {
    sm_gguf *g = NULL;
    if (sm_gguf_open(path, &g)) {
        CHECK_MSG(0, "cannot open %s: %s", path, sm_last_error());
        return NULL;
    }
    return g;
}

/* No file at path and no temporary beside it. */
static void no_output(const char *path) {
    CHECK_MSG(access(path, F_OK) != 0, "%s exists after a failed conversion", path);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    const char *base = slash + 1;
    size_t blen = strlen(base);
    *slash = 0;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        CHECK_MSG(strncmp(e->d_name, base, blen) != 0 || strstr(e->d_name, ".tmp.") == NULL, "leftover %s", e->d_name);
    closedir(d);
}

static void variants_identical(void) {
    static const char *const VARIANTS[] = {KJV, KJV "/f32", KJV "/sharded", KJV "/pytorch"};
    const size_t n_var = sizeof VARIANTS / sizeof VARIANTS[0];
    sm_gguf *g[sizeof VARIANTS / sizeof VARIANTS[0]] = {0};
    for (size_t v = 0; v < n_var; v++) {
        char name[32];
        snprintf(name, sizeof name, "variant%zu.gguf", v);
        sm_convert_report rep = {0};
        CHECK_OK(convert_to(tl_asset(VARIANTS[v]), tl_tmp(name), "f32", &rep));
        CHECK(rep.n_tensors == 39 && rep.n_params == 4196608 && rep.outtype == SM_TYPE_F32);
        g[v] = open_out(tl_tmp(name));
    }
    if (!g[0]) goto done;
    CHECK(sm_gguf_n_tensors(g[0]) == 39);
    for (size_t i = 0; i < sm_gguf_n_tensors(g[0]); i++) {
        const sm_tensor *a = sm_gguf_tensor(g[0], i);
        CHECK(a->type == SM_TYPE_F32);
        for (size_t v = 1; v < n_var; v++) {
            if (!g[v]) continue;
            const sm_tensor *b = sm_gguf_find_tensor(g[v], a->name);
            CHECK_MSG(b && b->nbytes == a->nbytes && !memcmp(a->data, b->data, a->nbytes), "%s differs in %s", a->name,
                      VARIANTS[v]);
        }
    }
done:
    for (size_t v = 0; v < n_var; v++) sm_gguf_close(g[v]);
}

static void check_u32(const sm_gguf *g, const char *key, uint64_t want) {
    const sm_gguf_value *v = sm_gguf_find(g, key);
    CHECK_MSG(v && v->type == SM_GGUF_UINT32 && v->v.u == want, "%s: want u32 %llu", key, (unsigned long long)want);
}

static void check_f32(const sm_gguf *g, const char *key, float want) {
    const sm_gguf_value *v = sm_gguf_find(g, key);
    CHECK_MSG(v && v->type == SM_GGUF_FLOAT32 && (float)v->v.f == want, "%s: want f32 %g", key, (double)want);
}

static void check_str(const sm_gguf *g, const char *key, const char *want) {
    const char *s = sm_gguf_get_str(g, key);
    CHECK_MSG(s && !strcmp(s, want), "%s: want \"%s\", got \"%s\"", key, want, s ? s : "(none)");
}

static void metadata(void) {
    TMP(out, "meta.gguf");
    sm_convert_report rep = {0};
    CHECK_OK(convert_to(tl_asset(KJV), out, NULL, &rep)); /* auto: the checkpoint is bf16 */
    CHECK(rep.outtype == SM_TYPE_BF16);
    sm_gguf *g = open_out(out);
    if (!g) return;
    /* the keys llama.cpp's converter writes for this config, in its order */
    static const char *const KEYS[] = {
        "general.architecture", "general.type", "general.name", "general.size_label", "llama.block_count",
        "llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
        "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon",
        "general.file_type", "llama.vocab_size", "llama.rope.dimension_count", "general.quantization_version",
    };
    const size_t n_keys = sizeof KEYS / sizeof KEYS[0];
    CHECK(sm_gguf_n_kv(g) > n_keys);
    for (size_t i = 0; i < n_keys && i < sm_gguf_n_kv(g); i++)
        CHECK_MSG(!strcmp(sm_gguf_key(g, i), KEYS[i]), "key %zu: %s, want %s", i, sm_gguf_key(g, i), KEYS[i]);
    for (size_t i = n_keys; i < sm_gguf_n_kv(g); i++)
        CHECK_MSG(!strncmp(sm_gguf_key(g, i), "tokenizer.ggml.", 15), "unexpected key %s", sm_gguf_key(g, i));
    check_str(g, "general.architecture", "llama");
    check_str(g, "general.type", "model");
    check_str(g, "general.name", "Tiny Llama Kjv");
    check_str(g, "general.size_label", "4.2M");
    check_u32(g, "llama.block_count", 4);
    check_u32(g, "llama.context_length", 512);
    check_u32(g, "llama.embedding_length", 256);
    check_u32(g, "llama.feed_forward_length", 768);
    check_u32(g, "llama.attention.head_count", 8);
    check_u32(g, "llama.attention.head_count_kv", 4);
    check_f32(g, "llama.rope.freq_base", 10000.0f);
    check_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    check_u32(g, "general.file_type", 32);
    check_u32(g, "llama.vocab_size", 2048);
    check_u32(g, "llama.rope.dimension_count", 32);
    check_u32(g, "general.quantization_version", 2);
    check_str(g, "tokenizer.ggml.model", "llama");
    const sm_gguf_value *toks = sm_gguf_find(g, "tokenizer.ggml.tokens");
    CHECK(toks && toks->type == SM_GGUF_ARRAY && toks->v.arr.n == 2048);
    /* tensor types under bf16: 2-D weights bf16, norms f32 */
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        CHECK_MSG(t->type == (t->n_dims == 1 ? SM_TYPE_F32 : SM_TYPE_BF16), "%s type %s", t->name, sm_type_name(t->type));
    }
    sm_gguf_close(g);

    /* --name overrides; f16 -> file type 1 */
    sm_convert_opts o = {.outtype = "f16", .quiet = true, .name = "kjv test"};
    CHECK_OK(sm_convert(tl_asset(KJV), out, &o, NULL));
    if ((g = open_out(out))) {
        check_str(g, "general.name", "kjv test");
        check_u32(g, "general.file_type", 1);
        sm_gguf_close(g);
    }
}

/* The source tensor's row r as floats. */
static void hf_row(const sm_tensor *t, int64_t r, float *out) {
    int64_t n = t->shape[1];
    sm_plain_to_f32(t->type, (const uint8_t *)t->data + (size_t)(r * n) * sm_type_get(t->type)->block_bytes, out, n);
}

static void permutation(void) {
    TMP(out, "perm.gguf");
    CHECK_OK(convert_to(tl_asset(KJV), out, "f32", NULL));
    sm_gguf *g = open_out(out);
    sm_ckpt *c = NULL;
    CHECK_OK(sm_ckpt_open(tl_asset(KJV), &c));
    if (!g || !c) goto done;
    /* {gguf tensor, gguf row, hf tensor, hf row}: head_dim 32, half 16 */
    static const struct { const char *g; int64_t gr; const char *h; int64_t hr; } M[] = {
        {"blk.0.attn_q.weight", 0, "model.layers.0.self_attn.q_proj.weight", 0},
        {"blk.0.attn_q.weight", 1, "model.layers.0.self_attn.q_proj.weight", 16},
        {"blk.0.attn_q.weight", 2, "model.layers.0.self_attn.q_proj.weight", 1},
        {"blk.0.attn_q.weight", 31, "model.layers.0.self_attn.q_proj.weight", 31},
        {"blk.0.attn_q.weight", 33, "model.layers.0.self_attn.q_proj.weight", 48},
        {"blk.2.attn_q.weight", 254, "model.layers.2.self_attn.q_proj.weight", 239},
        {"blk.1.attn_k.weight", 126, "model.layers.1.self_attn.k_proj.weight", 111},
        {"blk.1.attn_k.weight", 127, "model.layers.1.self_attn.k_proj.weight", 127},
        {"blk.3.attn_k.weight", 65, "model.layers.3.self_attn.k_proj.weight", 80},
        /* not permuted */
        {"blk.0.attn_v.weight", 1, "model.layers.0.self_attn.v_proj.weight", 1},
        {"blk.0.attn_output.weight", 1, "model.layers.0.self_attn.o_proj.weight", 1},
        {"output.weight", 7, "lm_head.weight", 7},
        {"token_embd.weight", 2047, "model.embed_tokens.weight", 2047},
    };
    for (size_t i = 0; i < sizeof M / sizeof M[0]; i++) {
        const sm_tensor *gt = sm_gguf_find_tensor(g, M[i].g);
        const sm_tensor *ht = sm_ckpt_find(c, M[i].h);
        CHECK_MSG(gt && ht, "%s / %s", M[i].g, M[i].h);
        if (!gt || !ht) continue;
        float want[256];
        hf_row(ht, M[i].hr, want);
        CHECK_MSG(!memcmp((const float *)gt->data + M[i].gr * 256, want, 256 * sizeof(float)), "%s row %lld",
                  M[i].g, (long long)M[i].gr);
    }
    /* every attn_q row appears exactly once: the permutation is a bijection of rows */
    const sm_tensor *q = sm_gguf_find_tensor(g, "blk.0.attn_q.weight");
    const sm_tensor *hq = sm_ckpt_find(c, "model.layers.0.self_attn.q_proj.weight");
    if (q && hq) {
        int hits = 0;
        for (int64_t r = 0; r < 256; r++) {
            float want[256];
            hf_row(hq, r, want);
            int64_t gr = (r / 32) * 32 + 2 * (r % 16) + (r % 32) / 16;
            hits += !memcmp((const float *)q->data + gr * 256, want, sizeof want);
        }
        CHECK(hits == 256);
    }
done:
    sm_gguf_close(g);
    sm_ckpt_close(c);
}

static void q8_0(void) {
    TMP(f32, "q-ref.gguf");
    TMP(q8, "q8.gguf");
    CHECK_OK(convert_to(tl_asset(KJV), f32, "f32", NULL));
    sm_convert_report rep = {0};
    CHECK_OK(convert_to(tl_asset(KJV), q8, "q8_0", &rep));
    CHECK(rep.outtype == SM_TYPE_Q8_0);
    sm_gguf *a = open_out(f32), *b = open_out(q8);
    if (!a || !b) goto done;
    check_u32(b, "general.file_type", 7);
    for (size_t i = 0; i < sm_gguf_n_tensors(a); i++) {
        const sm_tensor *ta = sm_gguf_tensor(a, i);
        const sm_tensor *tb = sm_gguf_find_tensor(b, ta->name);
        CHECK(tb != NULL);
        if (!tb) continue;
        if (ta->n_dims == 1) {
            CHECK(tb->type == SM_TYPE_F32 && !memcmp(ta->data, tb->data, ta->nbytes));
            continue;
        }
        /* token_embd and output too: llama.cpp's converter makes every 2-D weight Q8_0 */
        CHECK_MSG(tb->type == SM_TYPE_Q8_0, "%s is %s", ta->name, sm_type_name(tb->type));
        int64_t rows = ta->shape[0], cols = ta->shape[1];
        size_t n = (size_t)sm_type_row_bytes(SM_TYPE_Q8_0, cols) * (size_t)rows;
        uint8_t *want = malloc(n);
        CHECK(sm_quantize_rows(SM_TYPE_Q8_0, ta->data, want, rows, cols, NULL) == n);
        CHECK_MSG(tb->nbytes == n && !memcmp(tb->data, want, n), "%s q8_0 bytes", ta->name);
        free(want);
    }
done:
    sm_gguf_close(a);
    sm_gguf_close(b);
}

static void stories260k(void) {
    TMP(out, "stories.gguf");
    char args[2048], *log = NULL;
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype q8_0 --json",
             tl_asset("models/stories260k/stories260K.bin"), out);
    int rc = tl_run_smelt(args, &log);
    CHECK_MSG(rc == 0, "%s", log);
    cJSON *j = cJSON_Parse(log);
    CHECK_MSG(j != NULL, "not JSON: %s", log);
    if (j) {
        static const char *const FIELDS[] = {"output", "n_tensors", "n_params", "bytes_in", "bytes_out", "seconds", "outtype"};
        for (size_t i = 0; i < sizeof FIELDS / sizeof FIELDS[0]; i++)
            CHECK_MSG(cJSON_GetObjectItem(j, FIELDS[i]) != NULL, "no %s", FIELDS[i]);
        CHECK(cJSON_GetObjectItem(j, "n_params")->valuedouble == 260032);
        CHECK(cJSON_GetObjectItem(j, "n_tensors")->valuedouble == 47);
        CHECK(!strcmp(cJSON_GetObjectItem(j, "outtype")->valuestring, "q8_0"));
        cJSON_Delete(j);
    }
    free(log);
    sm_gguf *g = open_out(out);
    if (!g) return;
    CHECK(sm_gguf_find_tensor(g, "output.weight") == NULL);
    const sm_tensor *e = sm_gguf_find_tensor(g, "token_embd.weight");
    CHECK(e && e->type == SM_TYPE_Q8_0 && e->shape[0] == 512 && e->shape[1] == 64);
    const sm_tensor *down = sm_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(down && down->type == SM_TYPE_F16 && down->shape[1] == 172);
    const sm_tensor *gate = sm_gguf_find_tensor(g, "blk.4.ffn_gate.weight");
    CHECK(gate && gate->type == SM_TYPE_Q8_0);
    const sm_gguf_value *toks = sm_gguf_find(g, "tokenizer.ggml.tokens");
    CHECK(toks && toks->v.arr.n == 512);
    check_u32(g, "llama.vocab_size", 512);
    check_u32(g, "llama.context_length", 512);
    check_u32(g, "llama.feed_forward_length", 172);
    check_u32(g, "llama.attention.head_count_kv", 4);
    check_u32(g, "llama.rope.dimension_count", 8);
    check_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    check_str(g, "general.name", "stories260K");
    check_str(g, "general.size_label", "260K");
    sm_gguf_close(g);

    /* f32: the weights are the file's floats, unpermuted */
    CHECK_OK(convert_to(tl_asset("models/stories260k/stories260K.bin"), out, "f32", NULL));
    if ((g = open_out(out))) {
        const sm_tensor *q = sm_gguf_find_tensor(g, "blk.0.attn_q.weight");
        FILE *f = fopen(tl_asset("models/stories260k/stories260K.bin"), "rb");
        float want[64 * 64];
        CHECK(f && !fseek(f, 132380, SEEK_SET) && fread(want, 4, 64 * 64, f) == 64 * 64);
        if (f) fclose(f);
        CHECK(q && !memcmp(q->data, want, sizeof want));
        sm_gguf_close(g);
    }
    /* no tokenizer beside it and none given */
    TMP(lone, "lone.bin");
    TMP(lone_out, "lone.gguf");
    CHECK(symlink(tl_asset("models/stories260k/stories260K.bin"), lone) == 0);
    CHECK_FAILS_WITH(convert_to(lone, lone_out, NULL, NULL), "--tokenizer");
    no_output(lone_out);
    sm_convert_opts o = {.quiet = true, .tokenizer = tl_asset("models/stories260k/tok512.model")};
    CHECK_OK(sm_convert(lone, lone_out, &o, NULL));
}

/* A model directory in tmp: links to the KJV tokenizer files, the given config, and the
 * KJV checkpoint's tensors rewritten with the safetensors writer, less `skip` (if not NULL),
 * plus F32 q/k/v biases (value i/1000 at index i) if qkv_bias. No config.json if config is NULL. */
static const char *make_model_ex(const char *dir, const char *config, const char *skip, bool qkv_bias) {
    const char *d = tl_tmp(dir);
    static char path[1024];
    snprintf(path, sizeof path, "%s", d);
    mkdir(path, 0755);
    static const char *const LINKS[] = {"tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                                        "generation_config.json"};
    for (size_t i = 0; i < sizeof LINKS / sizeof LINKS[0]; i++) {
        char src[1024], dst[1100];
        snprintf(src, sizeof src, "%s/%s", tl_asset(KJV), LINKS[i]);
        snprintf(dst, sizeof dst, "%s/%s", path, LINKS[i]);
        if (symlink(src, dst)) {}
    }
    char p[1100];
    snprintf(p, sizeof p, "%s/config.json", path);
    if (config) tl_write_file(p, config, strlen(config));
    sm_ckpt *c = NULL;
    if (sm_ckpt_open(tl_asset(KJV), &c)) return path;
    sm_st_writer *w = sm_st_writer_new();
    for (size_t i = 0; i < c->n_tensors; i++)
        if (!skip || strcmp(c->tensors[i].name, skip))
            sm_st_writer_add(w, c->tensors[i].name, c->tensors[i].type, c->tensors[i].n_dims, c->tensors[i].shape);
    static const char *const BIAS[3] = {"q_proj", "k_proj", "v_proj"};
    float bias[256];
    for (int i = 0; i < 256; i++) bias[i] = (float)i / 1000;
    for (int l = 0; qkv_bias && l < 4; l++)
        for (int k = 0; k < 3; k++) {
            char name[96];
            int64_t n = k ? 128 : 256;
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.bias", l, BIAS[k]);
            sm_st_writer_add(w, name, SM_TYPE_F32, 1, &n);
        }
    snprintf(p, sizeof p, "%s/model.safetensors", path);
    int rc = sm_st_writer_begin(w, p);
    for (size_t i = 0; !rc && i < c->n_tensors; i++)
        if (!skip || strcmp(c->tensors[i].name, skip)) rc = sm_st_writer_write(w, c->tensors[i].data, c->tensors[i].nbytes);
    for (int l = 0; !rc && qkv_bias && l < 4; l++)
        for (int k = 0; !rc && k < 3; k++) rc = sm_st_writer_write(w, bias, (k ? 128 : 256) * sizeof(float));
    if (!rc) sm_st_writer_finish(w);
    else sm_st_writer_abort(w);
    sm_ckpt_close(c);
    return path;
}

static const char *make_model(const char *dir, const char *config, const char *skip) {
    return make_model_ex(dir, config, skip, false);
}

/* config.json of KJV with one substitution (from -> to). */
static char *kjv_config_with(const char *from, const char *to) {
    char *cfg = tl_slurp(tl_asset(KJV "/config.json"), NULL);
    if (!cfg) return NULL;
    char *at = strstr(cfg, from);
    if (!at) return cfg;
    size_t n = strlen(cfg) - strlen(from) + strlen(to) + 1;
    char *r = malloc(n);
    snprintf(r, n, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    free(cfg);
    return r;
}

static void tied_embeddings(void) {
    char *cfg = kjv_config_with("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true");
    /* tied, lm_head absent */
    const char *d = make_model("tied", cfg, "lm_head.weight");
    TMP(out, "tied.gguf");
    sm_convert_report rep = {0};
    CHECK_OK(convert_to(d, out, "f32", &rep));
    CHECK(rep.n_tensors == 38);
    sm_gguf *g = open_out(out);
    if (g) {
        CHECK(sm_gguf_find_tensor(g, "output.weight") == NULL && sm_gguf_find_tensor(g, "token_embd.weight"));
        sm_gguf_close(g);
    }
    /* tied, lm_head present anyway: skipped (llama.cpp uses token_embd) */
    d = make_model("tied2", cfg, NULL);
    CHECK_OK(convert_to(d, out, "f32", &rep));
    CHECK(rep.n_tensors == 38);
    free(cfg);
}

/* Qwen2: q/k/v biases, NEOX rope in llama.cpp (rows not permuted), no LlamaModel keys. */
static void qwen2(void) {
    char *cfg = kjv_config_with("LlamaForCausalLM", "Qwen2ForCausalLM");
    char *cfg2 = cfg ? strstr(cfg, "\"tie_word_embeddings\": false") : NULL;
    if (cfg2) memcpy(cfg2, "\"tie_word_embeddings\":  true", 28);
    const char *d = make_model_ex("qwen2", cfg, "lm_head.weight", true);
    free(cfg);
    TMP(out, "qwen2.gguf");
    CHECK_OK(convert_to(d, out, "f16", NULL));
    sm_gguf *g = open_out(out);
    sm_ckpt *c = NULL;
    CHECK_OK(sm_ckpt_open(tl_asset(KJV), &c));
    if (!g || !c) goto done;
    check_str(g, "general.architecture", "qwen2");
    check_u32(g, "qwen2.block_count", 4);
    check_u32(g, "qwen2.attention.head_count_kv", 4);
    CHECK(sm_gguf_find(g, "qwen2.vocab_size") == NULL && sm_gguf_find(g, "qwen2.rope.dimension_count") == NULL);
    CHECK(sm_gguf_find_tensor(g, "output.weight") == NULL);
    CHECK(sm_gguf_n_tensors(g) == 38 + 12);
    const sm_tensor *b = sm_gguf_find_tensor(g, "blk.3.attn_k.bias");
    CHECK(b && b->type == SM_TYPE_F32 && b->shape[0] == 128 && ((const float *)b->data)[127] == 0.127f);
    const sm_tensor *q = sm_gguf_find_tensor(g, "blk.0.attn_q.weight");
    const sm_tensor *hq = sm_ckpt_find(c, "model.layers.0.self_attn.q_proj.weight");
    if (q && hq) {
        CHECK(q->type == SM_TYPE_F16);
        float want[256];
        hf_row(hq, 1, want); /* row 1 stays row 1 */
        bool same = true;
        for (int i = 0; i < 256; i++) same &= ((const uint16_t *)q->data)[256 + i] == sm_f32_to_f16(want[i]);
        CHECK(same);
    }
done:
    sm_gguf_close(g);
    sm_ckpt_close(c);
}

/* llama3 rope scaling: llama.cpp reads the factors from a generated rope_freqs tensor. */
static void llama3_rope(void) {
    char *cfg = kjv_config_with("\"rope_scaling\": null",
                                "\"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                                "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}");
    const char *d = make_model("llama3", cfg, NULL);
    free(cfg);
    TMP(out, "llama3.gguf");
    sm_convert_report rep = {0};
    CHECK_OK(convert_to(d, out, "bf16", &rep));
    CHECK(rep.n_tensors == 40);
    sm_gguf *g = open_out(out);
    if (!g) return;
    const sm_tensor *f = sm_gguf_tensor(g, 0);
    CHECK(f && !strcmp(f->name, "rope_freqs.weight") && f->type == SM_TYPE_F32 && f->n_dims == 1 && f->shape[0] == 16);
    /* head_dim 32, theta 1e4: wavelength 2*pi*1e4^(2i/32) is < 8192/4 for i = 0 (factor 1) and
     * > 8192 for i = 15 (factor 8) */
    if (f) CHECK(((const float *)f->data)[0] == 1.0f && ((const float *)f->data)[15] == 8.0f);
    CHECK(sm_gguf_find(g, "llama.rope.scaling.type") == NULL);
    sm_gguf_close(g);
}

static void errors(void) {
    char *log = NULL;
    TMP(out, "err.gguf");
    /* no config.json */
    const char *d = make_model("noconfig", NULL, NULL);
    CHECK_FAILS_WITH(convert_to(d, out, NULL, NULL), "config.json");
    no_output(out);
    /* unknown architecture: the message lists the supported ones */
    char *cfg = kjv_config_with("LlamaForCausalLM", "GPTNeoXForCausalLM");
    d = make_model("unknown", cfg, NULL);
    free(cfg);
    CHECK_FAILS_WITH(convert_to(d, out, NULL, NULL), "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM");
    no_output(out);
    /* a tensor missing */
    cfg = tl_slurp(tl_asset(KJV "/config.json"), NULL);
    d = make_model("missing", cfg, "model.layers.2.mlp.up_proj.weight");
    free(cfg);
    CHECK_FAILS_WITH(convert_to(d, out, NULL, NULL), "missing tensor \"model.layers.2.mlp.up_proj.weight\"");
    no_output(out);
    /* shapes that do not match config.json */
    cfg = kjv_config_with("\"intermediate_size\": 768", "\"intermediate_size\": 512");
    d = make_model("shape", cfg, NULL);
    free(cfg);
    CHECK_FAILS_WITH(convert_to(d, out, NULL, NULL), "configuration implies [256, 512]");
    no_output(out);
    cfg = kjv_config_with("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 3");
    d = make_model("layers", cfg, NULL);
    free(cfg);
    CHECK_FAILS_WITH(convert_to(d, out, NULL, NULL), "3 layers");
    no_output(out);
    /* the output cannot be written: its directory does not exist, or is a file */
    TMP(bad, "no-such-dir/out.gguf");
    CHECK_FAILS_WITH(convert_to(tl_asset(KJV), bad, NULL, NULL), "no-such-dir");
    no_output(bad);
    CHECK(tl_write_file(tl_tmp("plainfile"), "x", 1) == 0);
    CHECK(convert_to(tl_asset(KJV), tl_tmp("plainfile/out.gguf"), NULL, NULL) != 0);
    /* bad outtype, missing paths, through the CLI: usage errors exit 2, failures exit 1 */
    char args[2048];
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype q4_0", tl_asset(KJV), out);
    CHECK(tl_run_smelt(args, &log) == 2 && strstr(log, "--outtype"));
    free(log);
    snprintf(args, sizeof args, "convert '%s'", tl_asset(KJV));
    CHECK(tl_run_smelt(args, &log) == 2);
    free(log);
    snprintf(args, sizeof args, "convert '%s' -o '%s'", tl_tmp("nothing-here"), out);
    CHECK(tl_run_smelt(args, &log) == 1 && strstr(log, "no such file"));
    free(log);
    no_output(out);
}

void run_tests(void) {
    TEST(variants_identical);
    TEST(metadata);
    TEST(permutation);
    TEST(q8_0);
    TEST(stories260k);
    TEST(tied_embeddings);
    TEST(qwen2);
    TEST(llama3_rope);
    TEST(errors);
}
