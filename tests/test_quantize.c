/* test_quantize.c - `smelt quantize` end to end on a synthetic Llama-shaped GGUF: the
 * mixture's types, tensor bytes equal to the codecs' (which the golden vectors tie to ggml),
 * metadata, thread-count independence, imatrix use, overrides, refusals, atomic output. */
#include "testlib.h"

#include "calib/calib.h"
#include "formats/formats.h"
#include "quantize/quantize.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_LAYER 2
#define EMBD 256
#define FF 512
#define VOCAB 64

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct { const char *name; sm_type type; int n_dims; int64_t shape[2]; } spec;
static spec specs[64];
static int n_specs;

static void add(const char *name, sm_type t, int n_dims, int64_t a, int64_t b) {
    spec *s = &specs[n_specs++];
    s->name = strdup(name);
    s->type = t;
    s->n_dims = n_dims;
    s->shape[0] = a;
    s->shape[1] = b;
}

static void make_model(const char *path) {
    n_specs = 0;
    add("token_embd.weight", SM_TYPE_F16, 2, VOCAB, EMBD);
    for (int l = 0; l < N_LAYER; l++) {
        char b[64];
#define L(n, t, d, x, y) snprintf(b, sizeof b, "blk.%d." n, l), add(b, t, d, x, y)
        L("attn_norm.weight", SM_TYPE_F32, 1, EMBD, 0);
        L("attn_q.weight", SM_TYPE_F32, 2, EMBD, EMBD);
        L("attn_k.weight", SM_TYPE_F32, 2, EMBD / 2, EMBD);
        L("attn_v.weight", SM_TYPE_F32, 2, EMBD / 2, EMBD);
        L("attn_output.weight", SM_TYPE_F32, 2, EMBD, EMBD);
        L("ffn_norm.weight", SM_TYPE_F32, 1, EMBD, 0);
        L("ffn_gate.weight", SM_TYPE_BF16, 2, FF, EMBD);
        L("ffn_up.weight", SM_TYPE_BF16, 2, FF, EMBD);
        L("ffn_down.weight", SM_TYPE_F32, 2, EMBD, FF);
#undef L
    }
    add("output_norm.weight", SM_TYPE_F32, 1, EMBD, 0);
    add("output.weight", SM_TYPE_F16, 2, VOCAB, EMBD);
    sm_gguf_writer *w = sm_gguf_writer_new();
    sm_meta_set_str(sm_gguf_writer_meta(w), "general.architecture", "llama");
    sm_meta_set_str(sm_gguf_writer_meta(w), "general.name", "synthetic");
    sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.block_count", N_LAYER);
    sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.attention.head_count", 8);
    sm_meta_set_u32(sm_gguf_writer_meta(w), "llama.attention.head_count_kv", 4);
    sm_meta_set_u32(sm_gguf_writer_meta(w), "general.file_type", 0);
    for (int i = 0; i < n_specs; i++) sm_gguf_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims, specs[i].shape);
    CHECK_OK(sm_gguf_writer_begin(w, path));
    for (int i = 0; i < n_specs; i++) {
        int64_t n = specs[i].shape[0] * (specs[i].n_dims == 2 ? specs[i].shape[1] : 1);
        float *f = malloc((size_t)n * 4);
        for (int64_t k = 0; k < n; k++) f[k] = frand() * (k % 97 == 0 ? 4.0f : 0.05f);
        void *buf = malloc((size_t)n * 4);
        sm_f32_to_plain(specs[i].type, f, buf, n);
        CHECK_OK(sm_gguf_writer_write(w, buf, sm_type_row_bytes(specs[i].type, n)));
        free(f);
        free(buf);
    }
    CHECK_OK(sm_gguf_writer_finish(w));
}

/* out tensor bytes == our codec on the source floats (with imatrix weights if given) */
static void check_bytes(const sm_gguf *in, const sm_gguf *out, const char *name, sm_type want, const float *imw) {
    const sm_tensor *s = sm_gguf_find_tensor(in, name), *t = sm_gguf_find_tensor(out, name);
    CHECK_MSG(s && t, "%s missing", name);
    if (!s || !t) return;
    CHECK_MSG(t->type == want, "%s: type %s, expected %s", name, sm_type_name(t->type), sm_type_name(want));
    if (t->type != want) return;
    int64_t n = sm_tensor_nelements(s), row = sm_tensor_row_len(s);
    float *f = malloc((size_t)n * 4);
    sm_plain_to_f32(s->type, s->data, f, n);
    uint64_t nb = sm_type_row_bytes(want, n);
    void *q = malloc(nb);
    if (want == SM_TYPE_F32 || want == SM_TYPE_F16 || want == SM_TYPE_BF16) sm_f32_to_plain(want, f, q, n);
    else sm_quantize_rows(want, f, q, n / row, row, imw);
    CHECK_MSG(t->nbytes == nb && memcmp(t->data, q, nb) == 0, "%s: bytes differ from the codec's", name);
    free(f);
    free(q);
}

static const char *model(void) {
    static char p[512];
    if (!p[0]) {
        snprintf(p, sizeof p, "%s", tl_tmp("synthetic-f32.gguf"));
        make_model(p);
    }
    return p;
}

static void q4_k_m(void) {
    char args[2048];
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --json", model(), tl_tmp("q4km.gguf"));
    char *out;
    CHECK(tl_run_smelt(args, &out) == 0);
    cJSON *j = cJSON_Parse(out);
    CHECK_MSG(j && cJSON_GetObjectItem(j, "n_tensors") && cJSON_GetObjectItem(j, "n_tensors")->valueint == n_specs,
              "json: %s", out);
    cJSON_Delete(j);
    free(out);
    sm_gguf *in, *o;
    CHECK_OK(sm_gguf_open(model(), &in));
    CHECK_OK(sm_gguf_open(tl_tmp("q4km.gguf"), &o));
    if (!in || !o) return;
    uint64_t ft = 0, qv = 0;
    CHECK_OK(sm_gguf_get_u64(o, "general.file_type", &ft));
    CHECK_OK(sm_gguf_get_u64(o, "general.quantization_version", &qv));
    CHECK(ft == 15 && qv == 2);
    CHECK(!strcmp(sm_gguf_get_str(o, "general.name"), "synthetic"));
    /* llama.cpp's Q4_K_M: with 2 layers use_more_bits is true for layer 1 only */
    check_bytes(in, o, "token_embd.weight", SM_TYPE_Q4_K, NULL);
    check_bytes(in, o, "output.weight", SM_TYPE_Q6_K, NULL);
    check_bytes(in, o, "blk.0.attn_norm.weight", SM_TYPE_F32, NULL);
    check_bytes(in, o, "blk.0.attn_q.weight", SM_TYPE_Q4_K, NULL);
    check_bytes(in, o, "blk.0.attn_v.weight", SM_TYPE_Q4_K, NULL);
    check_bytes(in, o, "blk.1.attn_v.weight", SM_TYPE_Q6_K, NULL);
    check_bytes(in, o, "blk.0.ffn_down.weight", SM_TYPE_Q4_K, NULL);
    check_bytes(in, o, "blk.1.ffn_down.weight", SM_TYPE_Q6_K, NULL);
    check_bytes(in, o, "blk.1.ffn_up.weight", SM_TYPE_Q4_K, NULL);
    sm_gguf_close(in);
    sm_gguf_close(o);
}

static void threads_do_not_matter(void) {
    char args[2048];
    snprintf(args, sizeof args, "quantize '%s' '%s' Q5_K_M --threads 1 --quiet", model(), tl_tmp("t1.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q5_K_M --threads 3 --quiet", model(), tl_tmp("t3.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    size_t n1, n3;
    char *a = tl_slurp(tl_tmp("t1.gguf"), &n1), *b = tl_slurp(tl_tmp("t3.gguf"), &n3);
    CHECK(a && b && n1 == n3 && memcmp(a, b, n1) == 0);
    free(a);
    free(b);
}

static void imatrix_and_overrides(void) {
    /* an importance matrix for every linear, written in llama.cpp's GGUF format */
    sm_imatrix m = {0};
    float *sums = malloc(FF * sizeof(float));
    int64_t cnt = 10;
    for (int i = 0; i < FF; i++) sums[i] = 10.0f * (1.0f + frand() * frand());
    for (int i = 0; i < n_specs; i++)
        if (specs[i].n_dims == 2 && strncmp(specs[i].name, "blk.", 4) == 0)
            CHECK_OK(sm_imatrix_add(&m, specs[i].name, 1, specs[i].shape[1], sums, &cnt));
    sm_imatrix_add_dataset(&m, "synthetic");
    m.chunk_count = 1;
    m.chunk_size = 512;
    CHECK_OK(sm_imatrix_save_gguf(&m, tl_tmp("im.gguf")));
    char args[2048];
    snprintf(args, sizeof args,
             "quantize '%s' '%s' Q4_0 --imatrix '%s' --keep 'attn_k' --tensor-type 'ffn_(gate|up)=q8_0' --quiet",
             model(), tl_tmp("q40im.gguf"), tl_tmp("im.gguf"));
    char *out;
    CHECK_MSG(tl_run_smelt(args, &out) == 0, "%s", out);
    free(out);
    sm_gguf *in, *o;
    CHECK_OK(sm_gguf_open(model(), &in));
    CHECK_OK(sm_gguf_open(tl_tmp("q40im.gguf"), &o));
    if (in && o) {
        const float *w = sm_imatrix_find(&m, "blk.0.attn_q.weight", EMBD, 0);
        check_bytes(in, o, "blk.0.attn_q.weight", SM_TYPE_Q4_0, w);
        check_bytes(in, o, "blk.0.attn_k.weight", SM_TYPE_F32, NULL); /* --keep */
        check_bytes(in, o, "blk.1.ffn_up.weight", SM_TYPE_Q8_0, NULL); /* --tensor-type, Q8_0 ignores weights */
        /* llama.cpp: Q4_0 with an imatrix puts ffn_down of the first n_layer/8 layers in Q4_1 (none here) */
        w = sm_imatrix_find(&m, "blk.0.ffn_down.weight", FF, 0);
        check_bytes(in, o, "blk.0.ffn_down.weight", SM_TYPE_Q4_0, w);
    }
    if (in) sm_gguf_close(in);
    if (o) sm_gguf_close(o);
    sm_imatrix_free(&m);
    free(sums);
}

static void refusals(void) {
    char args[2048], *out;
    /* requantizing is refused without --allow-requantize, and leaves nothing behind */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0 --quiet", tl_tmp("q4km.gguf"), tl_tmp("re.gguf"));
    CHECK(tl_run_smelt(args, &out) == 1);
    CHECK_MSG(strstr(out, "--allow-requantize") != NULL, "%s", out);
    free(out);
    CHECK(access(tl_tmp("re.gguf"), F_OK) != 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0 --allow-requantize --quiet", tl_tmp("q4km.gguf"), tl_tmp("re.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    /* unknown recipe: usage error */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q9_9", model(), tl_tmp("x.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 2);
    /* not a GGUF */
    tl_write_file(tl_tmp("junk.gguf"), "GGUF\x03\0\0\0junk", 12);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0", tl_tmp("junk.gguf"), tl_tmp("x.gguf"));
    CHECK(tl_run_smelt(args, &out) == 1);
    CHECK_MSG(strstr(out, "junk.gguf") != NULL, "%s", out);
    free(out);
    CHECK(access(tl_tmp("x.gguf"), F_OK) != 0);
    /* bad override */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q8_0 --tensor-type 'attn=q9'", model(), tl_tmp("x.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 1);
    CHECK(access(tl_tmp("x.gguf"), F_OK) != 0);
}

/* An HF directory quantized in one pass gives the file of convert-then-quantize, byte for byte. */
static void hf_input(void) {
    char args[4096];
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype f32 --quiet", tl_asset("models/tiny-llama-kjv"),
             tl_tmp("kjv-f32.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    char *j2 = NULL, *j1 = NULL;
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --quiet --json", tl_tmp("kjv-f32.gguf"),
             tl_tmp("two-step.gguf"));
    CHECK(tl_run_smelt(args, &j2) == 0);
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --quiet --json", tl_asset("models/tiny-llama-kjv"),
             tl_tmp("one-pass.gguf"));
    CHECK(tl_run_smelt(args, &j1) == 0);
    /* and the same report: tensor types and output bytes */
    cJSON *r2 = j2 ? cJSON_Parse(j2) : NULL, *r1 = j1 ? cJSON_Parse(j1) : NULL;
    CHECK(r1 && r2);
    if (r1 && r2) {
        CHECK(cJSON_Compare(cJSON_GetObjectItem(r1, "tensor_types"), cJSON_GetObjectItem(r2, "tensor_types"), true));
        CHECK(cJSON_GetObjectItem(r1, "bytes_out")->valuedouble == cJSON_GetObjectItem(r2, "bytes_out")->valuedouble);
    }
    cJSON_Delete(r1);
    cJSON_Delete(r2);
    free(j1);
    free(j2);
    tl_check_same_gguf_tensors(tl_tmp("two-step.gguf"), tl_tmp("one-pass.gguf"));
    CHECK(tl_same_file(tl_tmp("two-step.gguf"), tl_tmp("one-pass.gguf")));
    sm_gguf *y;
    CHECK_OK(sm_gguf_open(tl_tmp("one-pass.gguf"), &y));
    if (!y) return;
    uint64_t ft = 0;
    CHECK_OK(sm_gguf_get_u64(y, "general.file_type", &ft));
    CHECK(ft == 15 && sm_gguf_n_tensors(y) == 39);
    sm_gguf_close(y);
}

/* llama-quantize's file layout (llama.cpp's behaviour): the source's keys, then
 * general.quantization_version and general.file_type moved last; tensors by block number
 * (-1 first: the model-wide ones), then by name. With LLAMA_CPP_BIN, every recipe's file is
 * byte-for-byte llama-quantize's. */
static void same_file_as_llama_quantize(void) {
    char src[1024], args[4096];
    snprintf(src, sizeof src, "%s", tl_tmp("kjv-f32.gguf")); /* from hf_input */
    snprintf(args, sizeof args, "quantize '%s' '%s' Q4_K_M --quiet", src, tl_tmp("layout.gguf"));
    CHECK(tl_run_smelt(args, NULL) == 0);
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(tl_tmp("layout.gguf"), &g));
    if (g) {
        const size_t nk = sm_gguf_n_kv(g), nt = sm_gguf_n_tensors(g);
        CHECK(nk >= 2 && !strcmp(sm_gguf_key(g, nk - 2), "general.quantization_version") &&
              !strcmp(sm_gguf_key(g, nk - 1), "general.file_type"));
        CHECK(nt == 39 && !strcmp(sm_gguf_tensor(g, 0)->name, "output.weight") &&
              !strcmp(sm_gguf_tensor(g, 1)->name, "output_norm.weight") &&
              !strcmp(sm_gguf_tensor(g, 2)->name, "token_embd.weight") &&
              !strcmp(sm_gguf_tensor(g, 3)->name, "blk.0.attn_k.weight") &&
              !strcmp(sm_gguf_tensor(g, nt - 1)->name, "blk.3.ffn_up.weight"));
        sm_gguf_close(g);
    }
    const char *bin = tl_llama_cpp_bin("byte comparison with llama-quantize");
    if (!bin) return;
    static const char *const recipes[] = {"Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                                          "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "IQ4_NL", "IQ4_XS"};
    int same = 0;
    for (size_t i = 0; i < sizeof recipes / sizeof *recipes; i++) {
        snprintf(args, sizeof args, "%s/llama-quantize '%s' '%s' %s 2 > '%s' 2>&1", bin, src, tl_tmp("lq.gguf"),
                 recipes[i], tl_tmp("lq.log"));
        CHECK(system(args) == 0);
        snprintf(args, sizeof args, "quantize '%s' '%s' %s --quiet", src, tl_tmp("sq.gguf"), recipes[i]);
        CHECK(tl_run_smelt(args, NULL) == 0);
        const bool eq = tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf"));
        CHECK_MSG(eq, "%s: smelt quantize's file differs from llama-quantize's", recipes[i]);
        same += eq;
    }
    fprintf(stderr, "  %d of 16 recipes byte-identical to llama-quantize\n", same);
}

void run_tests(void) {
    TEST(hf_input);
    TEST(same_file_as_llama_quantize);
    TEST(q4_k_m);
    TEST(threads_do_not_matter);
    TEST(imatrix_and_overrides);
    TEST(refusals);
}
