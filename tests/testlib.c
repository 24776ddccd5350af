/* testlib.c - the harness behind testlib.h. */
#include "testlib.h"

#include "formats/formats.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int tl_failures, tl_checks;
const char *tl_current = "";
static char g_tmpdir[512];

void tl_check_fails(int rc, const char *needle, const char *expr, const char *file, int line) {
    tl_checks++;
    if (rc == 0) {
        tl_failures++;
        fprintf(stderr, "%s:%d: [%s] expected failure from %s, got success\n", file, line, tl_current, expr);
    } else if (needle && !strstr(sm_last_error(), needle)) {
        tl_failures++;
        fprintf(stderr, "%s:%d: [%s] %s failed with \"%s\", expected it to mention \"%s\"\n", file, line,
                tl_current, expr, sm_last_error(), needle);
    }
}

static char *ring(void) {
    static char bufs[8][1024];
    static int k;
    return bufs[k++ & 7];
}

const char *tl_asset(const char *rel) {
    const char *root = getenv("SMELT_ASSETS");
    if (!root || !*root) root = getenv("SMELT_ASSETS_DEFAULT");
    if (!root || !*root) root = "../shared";
    char *b = ring();
    snprintf(b, 1024, "%s/%s", root, rel);
    if (access(b, R_OK) != 0) {
        tl_failures++;
        fprintf(stderr, "[%s] missing test asset: %s (set SMELT_ASSETS)\n", tl_current, b);
    }
    return b;
}

static void cleanup(void) {
    if (g_tmpdir[0] && !getenv("SMELT_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
        if (system(cmd)) {}
    }
}

const char *tl_tmpdir(void) {
    if (!g_tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_tmpdir, sizeof g_tmpdir, "%s/smelt-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(g_tmpdir)) { perror("mkdtemp"); exit(2); }
        atexit(cleanup);
    }
    return g_tmpdir;
}

const char *tl_tmp(const char *name) {
    char *b = ring();
    snprintf(b, 1024, "%s/%s", tl_tmpdir(), name);
    return b;
}

const char *tl_smelt_bin(void) {
    const char *b = getenv("SMELT_BIN");
    return b && *b ? b : "./smelt";
}

char *tl_slurp(const char *path, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    if (sm_read_file(path, (size_t)1 << 32, &buf, &n)) return NULL;
    if (len) *len = n;
    return buf;
}

bool tl_same_file(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = tl_slurp(a, &la), *y = tl_slurp(b, &lb);
    const bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

void tl_check_same_gguf_tensors(const char *a, const char *b) {
    sm_gguf *x = NULL, *y = NULL;
    CHECK_OK(sm_gguf_open(a, &x));
    CHECK_OK(sm_gguf_open(b, &y));
    if (x && y) {
        CHECK(sm_gguf_n_tensors(x) == sm_gguf_n_tensors(y));
        for (size_t i = 0; i < sm_gguf_n_tensors(x); i++) {
            const sm_tensor *t = sm_gguf_tensor(x, i), *u = sm_gguf_find_tensor(y, t->name);
            CHECK_MSG(u && u->type == t->type && u->nbytes == t->nbytes && !memcmp(u->data, t->data, t->nbytes),
                      "%s differs between %s and %s", t->name, a, b);
        }
    }
    if (x) sm_gguf_close(x);
    if (y) sm_gguf_close(y);
}

const char *const TL_ALL_RECIPES[TL_N_ALL_RECIPES] = {"Q2_K",   "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_0", "Q4_1",
                                                      "Q5_0",   "Q5_1",   "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M",
                                                      "Q6_K",   "Q8_0",   "IQ4_NL", "IQ4_XS"};

size_t tl_same_as_llama_quantize(const char *bin, const char *src, const char *const *recipes, size_t n) {
    char args[4096];
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(args, sizeof args, "%s/llama-quantize '%s' '%s' %s 2 > '%s' 2>&1", bin, src, tl_tmp("lq.gguf"),
                 recipes[i], tl_tmp("lq.log"));
        CHECK(system(args) == 0);
        snprintf(args, sizeof args, "quantize '%s' '%s' %s --quiet", src, tl_tmp("sq.gguf"), recipes[i]);
        CHECK(tl_run_smelt(args, NULL) == 0);
        const bool eq = tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf"));
        CHECK_MSG(eq, "%s: smelt quantize's file differs from llama-quantize's", recipes[i]);
        same += eq;
    }
    fprintf(stderr, "  %zu of %zu recipes byte-identical to llama-quantize\n", same, n);
    return same;
}

int tl_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    fclose(f);
    return w == len ? 0 : -1;
}

int tl_run_smelt(const char *args, char **out) { return tl_run_smelt_env("", args, out); }

int tl_run_smelt_env(const char *env, const char *args, char **out) {
    size_t n = strlen(env) + strlen(args) + 1024;
    char *cmd = malloc(n);
    const char *log = tl_tmp("last-run.log");
    snprintf(cmd, n, "SMELT_NO_PROGRESS=1 %s '%s' %s > '%s' 2>&1", env, tl_smelt_bin(), args, log);
    int st = system(cmd);
    free(cmd);
    if (out) *out = tl_slurp(log, NULL);
    if (out && !*out) *out = strdup("");
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* ---- the tiny HF fixtures (see testlib.h) ---- */

/* The integer weight recipe of scripts/fixture_common.py: tensor i seeded with 1000 + i; norms
 * 1 + v / 1024 (v / 1024 where the model multiplies by 1 + w), biases v / 256, others v / 512. */
static void fixture_tensor(int i, const char *name, int64_t n, bool norm_shift, float *out) {
    uint64_t st = 1000 + (uint64_t)i;
    const size_t len = strlen(name);
    const bool norm = strstr(name, "norm") != NULL, bias = len > 5 && !strcmp(name + len - 5, ".bias");
    for (int64_t e = 0; e < n; e++) {
        st = (st * 1103515245u + 12345u) % (1u << 31);
        const float v = (float)((int)((st >> 8) % 255) - 127);
        out[e] = norm ? (norm_shift ? 0.0f : 1.0f) + v / 1024 : bias ? v / 256 : v / 512;
    }
}

/* One tensor: its name (a layer's after "model.layers.N."), rows and columns (0: a vector). */
typedef struct tl_tdesc { const char *name; int64_t rows, cols; } tl_tdesc;

/* A fixture: directory tl_tmp(name) with the files `copy` (NULL-terminated paths), config.json,
 * tokenizer_config.json (if given) and model.safetensors holding `head`, n_layers (0: QW_LAYERS)
 * x `layer` and `tail`, their names after `prefix` (if given), then `extra` (each list ended by a
 * NULL name), in that order. */
typedef struct tl_fixture {
    const char *name, *config, *tokenizer_config;
    const char *const *copy;
    const tl_tdesc *head, *layer, *tail;
    bool norm_shift;
    int n_layers;
    const char *prefix;
    const tl_tdesc *extra;
} tl_fixture;

static const char *write_fixture(const tl_fixture *f, char *dir, size_t cap) {
    snprintf(dir, cap, "%s", tl_tmp(f->name));
    char cmd[4200], path[1100];
    int k = snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    for (const char *const *c = f->copy; c && *c; c++) k += snprintf(cmd + k, sizeof cmd - (size_t)k, " && cp '%s' '%s'/", *c, dir);
    if (system(cmd)) return NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (tl_write_file(path, f->config, strlen(f->config))) return NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (f->tokenizer_config && tl_write_file(path, f->tokenizer_config, strlen(f->tokenizer_config))) return NULL;
    struct { char name[128]; int64_t shape[2]; int nd; } t[128];
    int n = 0;
    const tl_tdesc *parts[4] = {f->head, f->layer, f->tail, f->extra};
    const char *pre = f->prefix ? f->prefix : "";
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < (p == 1 ? (f->n_layers ? f->n_layers : QW_LAYERS) : 1); l++)
            for (const tl_tdesc *d = parts[p]; d && d->name && n < 128; d++, n++) {
                if (p == 1) snprintf(t[n].name, sizeof t[n].name, "%smodel.layers.%d.%s", pre, l, d->name);
                else snprintf(t[n].name, sizeof t[n].name, "%s%s", p < 3 ? pre : "", d->name);
                t[n].shape[0] = d->rows, t[n].shape[1] = d->cols, t[n].nd = d->cols ? 2 : 1;
            }
    sm_st_writer *w = sm_st_writer_new();
    for (int i = 0; i < n; i++) sm_st_writer_add(w, t[i].name, SM_TYPE_F32, t[i].nd, t[i].shape);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = sm_st_writer_begin(w, path);
    for (int i = 0; i < n && rc == 0; i++) {
        const int64_t cnt = t[i].shape[0] * (t[i].nd == 2 ? t[i].shape[1] : 1);
        float *buf = malloc(sizeof(float) * (size_t)cnt);
        fixture_tensor(i, t[i].name, cnt, f->norm_shift, buf);
        rc = buf ? sm_st_writer_write(w, buf, sizeof(float) * (size_t)cnt) : -1;
        free(buf);
    }
    if (rc || sm_st_writer_finish(w)) return NULL;
    return dir;
}

/* The tensors of a Llama-style layer with head size HD (q/k/v/o, gate/up/down, two norms). */
#define TL_ATTN(HD)                                                                                      \
    {"self_attn.q_proj.weight", QW_HEADS * (HD), QW_HIDDEN}, {"self_attn.k_proj.weight", QW_KV * (HD), QW_HIDDEN}, \
        {"self_attn.v_proj.weight", QW_KV * (HD), QW_HIDDEN}, {"self_attn.o_proj.weight", QW_HIDDEN, QW_HEADS * (HD)}
#define TL_MLP {"mlp.gate_proj.weight", QW_FF, QW_HIDDEN}, {"mlp.up_proj.weight", QW_FF, QW_HIDDEN}, {"mlp.down_proj.weight", QW_HIDDEN, QW_FF}
#define TL_NORM(s) {s, QW_HIDDEN, 0}

/* the SentencePiece tokenizer files of tiny-llama-kjv, copied into the SPM fixtures */
#define KJV_SPM_TOKENIZER                                                                                          \
    {tl_asset("models/tiny-llama-kjv/tokenizer.model"), tl_asset("models/tiny-llama-kjv/tokenizer_config.json"), \
     tl_asset("models/tiny-llama-kjv/special_tokens_map.json"), NULL}

const char *tl_make_qwen2_tiny(void) {
    static char dir[1024];
    const char *const copy[] = KJV_SPM_TOKENIZER;
    const char *cfg = "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 64, "
                      "\"intermediate_size\": 96, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                      "\"num_key_value_heads\": 2, \"vocab_size\": 2048, \"max_position_embeddings\": 256, "
                      "\"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"tie_word_embeddings\": true, "
                      "\"torch_dtype\": \"float32\"}\n";
    static const tl_tdesc head[] = {{"model.embed_tokens.weight", QW_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc layer[] = {
        TL_NORM("input_layernorm.weight"),
        {"self_attn.q_proj.weight", QW_HEADS * QW_HD, QW_HIDDEN}, {"self_attn.q_proj.bias", QW_HEADS * QW_HD, 0},
        {"self_attn.k_proj.weight", QW_KV * QW_HD, QW_HIDDEN}, {"self_attn.k_proj.bias", QW_KV * QW_HD, 0},
        {"self_attn.v_proj.weight", QW_KV * QW_HD, QW_HIDDEN}, {"self_attn.v_proj.bias", QW_KV * QW_HD, 0},
        {"self_attn.o_proj.weight", QW_HIDDEN, QW_HEADS * QW_HD}, TL_NORM("post_attention_layernorm.weight"),
        TL_MLP, {0}};
    static const tl_tdesc tail[] = {TL_NORM("model.norm.weight"), {0}};
    const tl_fixture f = {"qwen2", cfg, NULL, copy, head, layer, tail, false, 0, NULL, NULL};
    return write_fixture(&f, dir, sizeof dir);
}

const char *tl_make_qwen3_tiny(bool tied) {
    static char dirs[2][1024];
    const char *src = getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..";
    char tok[1024];
    snprintf(tok, sizeof tok, "%s/tests/data/bpe-qwen2/tokenizer.json", src);
    const char *const copy[] = {tok, NULL};
    const char *tcfg =
        "{\"add_bos_token\": false, \"add_prefix_space\": false, \"bos_token\": null, "
        "\"chat_template\": \"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\\n' }}{% endif %}\", \"eos_token\": \"<|im_end|>\", "
        "\"errors\": \"replace\", \"model_max_length\": 131072, \"pad_token\": \"<|endoftext|>\", "
        "\"split_special_tokens\": false, \"tokenizer_class\": \"Qwen2Tokenizer\", \"unk_token\": null}\n";
    /* Qwen3-0.6B's config.json keys, sizes shrunk */
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"Qwen3ForCausalLM\"],\n  \"attention_bias\": false,\n"
             "  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 676,\n  \"eos_token_id\": 678,\n"
             "  \"head_dim\": %d,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n"
             "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n  \"max_position_embeddings\": 256,\n"
             "  \"max_window_layers\": %d,\n  \"model_type\": \"qwen3\",\n  \"num_attention_heads\": %d,\n"
             "  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": %d,\n  \"rms_norm_eps\": 1e-06,\n"
             "  \"rope_scaling\": null,\n  \"rope_theta\": 1000000,\n  \"sliding_window\": null,\n"
             "  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"float32\",\n"
             "  \"transformers_version\": \"4.51.0\",\n  \"use_cache\": true,\n  \"use_sliding_window\": false,\n"
             "  \"vocab_size\": %d\n}\n",
             QW3_HD, QW_HIDDEN, QW_FF, QW_LAYERS, QW_HEADS, QW_LAYERS, QW_KV, tied ? "true" : "false", QW3_VOCAB);
    static const tl_tdesc head[] = {{"model.embed_tokens.weight", QW3_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc layer[] = {TL_NORM("input_layernorm.weight"), TL_ATTN(QW3_HD),
                                     {"self_attn.q_norm.weight", QW3_HD, 0}, {"self_attn.k_norm.weight", QW3_HD, 0},
                                     TL_NORM("post_attention_layernorm.weight"), TL_MLP, {0}};
    static const tl_tdesc tail[] = {TL_NORM("model.norm.weight"), {"lm_head.weight", QW3_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc tail_tied[] = {TL_NORM("model.norm.weight"), {0}};
    const tl_fixture f = {tied ? "qwen3-tied" : "qwen3-untied", cfg, tcfg, copy, head, layer, tied ? tail_tied : tail,
                          false, 0, NULL, NULL};
    return write_fixture(&f, dirs[tied], sizeof dirs[0]);
}

const char *tl_make_phi3_tiny(void) {
    static char dir[1024];
    const char *const copy[] = {tl_asset("models/tiny-llama-kjv/tokenizer.model"), NULL};
    const char *tcfg =
        "{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": \"<s>\", "
        "\"clean_up_tokenization_spaces\": false, \"chat_template\": \"{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
        "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}"
        "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}"
        "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}"
        "{% endif %}\", \"eos_token\": \"</s>\", \"legacy\": false, \"model_max_length\": 4096, "
        "\"pad_token\": \"<unk>\", \"padding_side\": \"left\", \"sp_model_kwargs\": {}, "
        "\"tokenizer_class\": \"LlamaTokenizer\", \"unk_token\": \"<unk>\", \"use_default_system_prompt\": false}\n";
    /* Phi-3-mini-4k-instruct's config.json keys, sizes shrunk */
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"Phi3ForCausalLM\"],\n"
             "  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 1,\n  \"embd_pdrop\": 0.0,\n"
             "  \"eos_token_id\": 2,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"initializer_range\": 0.02,\n"
             "  \"intermediate_size\": %d,\n  \"max_position_embeddings\": 4096,\n  \"model_type\": \"phi3\",\n"
             "  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n  \"num_key_value_heads\": %d,\n"
             "  \"original_max_position_embeddings\": 4096,\n  \"pad_token_id\": 0,\n  \"resid_pdrop\": 0.0,\n"
             "  \"rms_norm_eps\": 1e-05,\n  \"rope_scaling\": null,\n  \"rope_theta\": 10000.0,\n"
             "  \"sliding_window\": 2047,\n  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"float32\",\n"
             "  \"transformers_version\": \"4.40.2\",\n  \"use_cache\": true,\n  \"vocab_size\": %d\n}\n",
             QW_HIDDEN, QW_FF, QW_HEADS, QW_LAYERS, QW_KV, QW_VOCAB);
    static const tl_tdesc head[] = {{"model.embed_tokens.weight", QW_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc layer[] = {TL_NORM("input_layernorm.weight"),
                                     {"self_attn.qkv_proj.weight", (QW_HEADS + 2 * QW_KV) * QW_HD, QW_HIDDEN},
                                     {"self_attn.o_proj.weight", QW_HIDDEN, QW_HEADS * QW_HD},
                                     TL_NORM("post_attention_layernorm.weight"),
                                     {"mlp.gate_up_proj.weight", 2 * QW_FF, QW_HIDDEN},
                                     {"mlp.down_proj.weight", QW_HIDDEN, QW_FF}, {0}};
    static const tl_tdesc tail[] = {TL_NORM("model.norm.weight"), {"lm_head.weight", QW_VOCAB, QW_HIDDEN}, {0}};
    const tl_fixture f = {"phi3-tiny", cfg, tcfg, copy, head, layer, tail, false, 0, NULL, NULL};
    return write_fixture(&f, dir, sizeof dir);
}

const char *tl_make_gemma2_tiny(void) {
    static char dir[1024];
    const char *const copy[] = KJV_SPM_TOKENIZER;
    /* gemma-2-2b's config.json keys, sizes shrunk */
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"Gemma2ForCausalLM\"],\n  \"attention_bias\": false,\n"
             "  \"attention_dropout\": 0.0,\n  \"attn_logit_softcapping\": 2.0,\n  \"bos_token_id\": 1,\n"
             "  \"cache_implementation\": \"hybrid\",\n  \"eos_token_id\": 2,\n"
             "  \"final_logit_softcapping\": 3.0,\n  \"head_dim\": %d,\n  \"hidden_act\": \"gelu_pytorch_tanh\",\n"
             "  \"hidden_activation\": \"gelu_pytorch_tanh\",\n  \"hidden_size\": %d,\n"
             "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n  \"max_position_embeddings\": 256,\n"
             "  \"model_type\": \"gemma2\",\n  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n"
             "  \"num_key_value_heads\": %d,\n  \"pad_token_id\": 0,\n  \"query_pre_attn_scalar\": %d,\n"
             "  \"rms_norm_eps\": 1e-06,\n  \"rope_theta\": 10000.0,\n  \"sliding_window\": %d,\n"
             "  \"torch_dtype\": \"float32\",\n  \"transformers_version\": \"4.42.4\",\n  \"use_cache\": true,\n"
             "  \"vocab_size\": %d\n}\n",
             GM2_HD, QW_HIDDEN, QW_FF, QW_HEADS, QW_LAYERS, QW_KV, GM2_HD, GM2_WINDOW, GM2_VOCAB);
    static const tl_tdesc head[] = {{"model.embed_tokens.weight", GM2_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc layer[] = {TL_NORM("input_layernorm.weight"), TL_ATTN(GM2_HD),
                                     TL_NORM("post_attention_layernorm.weight"),
                                     TL_NORM("pre_feedforward_layernorm.weight"), TL_MLP,
                                     TL_NORM("post_feedforward_layernorm.weight"), {0}};
    static const tl_tdesc tail[] = {TL_NORM("model.norm.weight"), {0}};
    /* the same recipe, but a Gemma norm stores w of (1 + w): v / 1024, exactly */
    const tl_fixture f = {"gemma2", cfg, NULL, copy, head, layer, tail, true, 0, NULL, NULL};
    return write_fixture(&f, dir, sizeof dir);
}

const char *tl_make_gemma3_tiny(bool vlm) {
    static char dirs[2][1024];
    const char *const copy[] = KJV_SPM_TOKENIZER;
    /* Gemma3TextConfig's keys (gemma-3-4b's linear rope scaling), sizes shrunk: as
     * scripts/make_gemma3_reference.py writes them */
    char text[2048], cfg[4096];
    snprintf(text, sizeof text,
             "\"attention_bias\": false, \"attention_dropout\": 0.0, \"attn_logit_softcapping\": null, "
             "\"bos_token_id\": 1, \"cache_implementation\": \"hybrid\", \"eos_token_id\": 2, "
             "\"final_logit_softcapping\": null, \"head_dim\": %d, \"hidden_activation\": \"gelu_pytorch_tanh\", "
             "\"hidden_size\": %d, \"initializer_range\": 0.02, \"intermediate_size\": %d, "
             "\"max_position_embeddings\": 256, \"model_type\": \"gemma3_text\", \"num_attention_heads\": %d, "
             "\"num_hidden_layers\": %d, \"num_key_value_heads\": %d, \"pad_token_id\": 0, "
             "\"query_pre_attn_scalar\": %d, \"rms_norm_eps\": 1e-06, \"rope_local_base_freq\": 10000.0, "
             "\"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"}, \"rope_theta\": 1000000.0, "
             "\"sliding_window\": %d, \"sliding_window_pattern\": 6, \"torch_dtype\": \"float32\", "
             "\"transformers_version\": \"4.50.0\", \"use_cache\": true, \"vocab_size\": %d",
             GM2_HD, QW_HIDDEN, QW_FF, QW_HEADS, GM3_LAYERS, QW_KV, GM2_HD, GM2_WINDOW, GM2_VOCAB);
    if (vlm)
        snprintf(cfg, sizeof cfg,
                 "{\"architectures\": [\"Gemma3ForConditionalGeneration\"], \"boi_token_index\": 3, "
                 "\"eoi_token_index\": 4, \"eos_token_id\": 2, \"image_token_index\": 5, \"initializer_range\": 0.02, "
                 "\"mm_tokens_per_image\": 4, \"model_type\": \"gemma3\", \"text_config\": {%s}, "
                 "\"torch_dtype\": \"float32\", \"transformers_version\": \"4.50.0\", \"vision_config\": "
                 "{\"hidden_size\": 32, \"image_size\": 28, \"intermediate_size\": 64, \"model_type\": "
                 "\"siglip_vision_model\", \"num_attention_heads\": 2, \"num_hidden_layers\": 1, \"patch_size\": 14, "
                 "\"vision_use_head\": false}}\n",
                 text);
    else
        snprintf(cfg, sizeof cfg, "{\"architectures\": [\"Gemma3ForCausalLM\"], %s}\n", text);
    static const tl_tdesc head[] = {{"model.embed_tokens.weight", GM2_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc layer[] = {TL_NORM("input_layernorm.weight"), TL_ATTN(GM2_HD),
                                     {"self_attn.q_norm.weight", GM2_HD, 0}, {"self_attn.k_norm.weight", GM2_HD, 0},
                                     TL_NORM("post_attention_layernorm.weight"),
                                     TL_NORM("pre_feedforward_layernorm.weight"), TL_MLP,
                                     TL_NORM("post_feedforward_layernorm.weight"), {0}};
    static const tl_tdesc tail[] = {TL_NORM("model.norm.weight"), {0}};
    static const tl_tdesc vision[] = {{"vision_tower.vision_model.embeddings.position_embedding.weight", 4, 32},
                                      {"vision_tower.vision_model.post_layernorm.weight", 32, 0},
                                      {"multi_modal_projector.mm_input_projection_weight", 32, QW_HIDDEN},
                                      {"multi_modal_projector.mm_soft_emb_norm.weight", 32, 0}, {0}};
    const tl_fixture f = {vlm ? "gemma3-vlm" : "gemma3", cfg, NULL, copy, head, layer, tail, true, GM3_LAYERS,
                          vlm ? "language_model." : NULL, vlm ? vision : NULL};
    return write_fixture(&f, dirs[vlm], sizeof dirs[0]);
}

/* The expert tensors of one layer: E experts, each its gate, down and up (Mixtral's w1, w2, w3) or
 * gate_proj, up_proj, down_proj (Qwen3-MoE), in scripts/make_moe_reference.py's order. */
#define TL_EXP_BSM(E, FF) {"block_sparse_moe.experts." #E ".w1.weight", FF, QW_HIDDEN}, \
    {"block_sparse_moe.experts." #E ".w2.weight", QW_HIDDEN, FF}, {"block_sparse_moe.experts." #E ".w3.weight", FF, QW_HIDDEN}
#define TL_EXP_QWEN(E, FF) {"mlp.experts." #E ".gate_proj.weight", FF, QW_HIDDEN}, \
    {"mlp.experts." #E ".up_proj.weight", FF, QW_HIDDEN}, {"mlp.experts." #E ".down_proj.weight", QW_HIDDEN, FF}

const char *tl_make_mixtral_tiny(void) {
    static char dir[1024];
    const char *const copy[] = KJV_SPM_TOKENIZER;
    /* Mixtral-8x7B-v0.1's config.json keys, sizes shrunk (scripts/make_moe_reference.py) */
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"MixtralForCausalLM\"],\n  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 1,\n"
             "  \"eos_token_id\": 2,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"initializer_range\": 0.02,\n"
             "  \"intermediate_size\": %d,\n  \"max_position_embeddings\": 256,\n  \"model_type\": \"mixtral\",\n"
             "  \"num_attention_heads\": %d,\n  \"num_experts_per_tok\": %d,\n  \"num_hidden_layers\": %d,\n"
             "  \"num_key_value_heads\": %d,\n  \"num_local_experts\": %d,\n  \"output_router_logits\": false,\n"
             "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 1000000.0,\n  \"router_aux_loss_coef\": 0.02,\n"
             "  \"sliding_window\": null,\n  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"float32\",\n"
             "  \"transformers_version\": \"4.36.0.dev0\",\n  \"use_cache\": true,\n  \"vocab_size\": %d\n}\n",
             QW_HIDDEN, QW_FF, QW_HEADS, MX_USED, QW_LAYERS, QW_KV, MX_EXPERTS, QW_VOCAB);
    static const tl_tdesc head[] = {{"model.embed_tokens.weight", QW_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc layer[] = {TL_NORM("input_layernorm.weight"), TL_ATTN(QW_HD),
                                     TL_NORM("post_attention_layernorm.weight"),
                                     {"block_sparse_moe.gate.weight", MX_EXPERTS, QW_HIDDEN},
                                     TL_EXP_BSM(0, QW_FF), TL_EXP_BSM(1, QW_FF), TL_EXP_BSM(2, QW_FF),
                                     TL_EXP_BSM(3, QW_FF), {0}};
    static const tl_tdesc tail[] = {TL_NORM("model.norm.weight"), {"lm_head.weight", QW_VOCAB, QW_HIDDEN}, {0}};
    const tl_fixture f = {"mixtral", cfg, NULL, copy, head, layer, tail, false, 0, NULL, NULL};
    return write_fixture(&f, dir, sizeof dir);
}

const char *tl_make_qwen3moe_tiny(void) {
    static char dir[1024];
    const char *src = getenv("SMELT_SOURCE_DIR") ? getenv("SMELT_SOURCE_DIR") : "..";
    char tok[1024];
    snprintf(tok, sizeof tok, "%s/tests/data/bpe-qwen2/tokenizer.json", src);
    const char *const copy[] = {tok, NULL};
    const char *tcfg = "{\"add_bos_token\": false, \"bos_token\": null, \"eos_token\": \"<|im_end|>\", "
                       "\"errors\": \"replace\", \"model_max_length\": 131072, \"pad_token\": \"<|endoftext|>\", "
                       "\"split_special_tokens\": false, \"tokenizer_class\": \"Qwen2Tokenizer\", \"unk_token\": null}\n";
    /* Qwen3-30B-A3B's config.json keys, sizes shrunk (scripts/make_moe_reference.py) */
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "{\n  \"architectures\": [\"Qwen3MoeForCausalLM\"],\n  \"attention_bias\": false,\n"
             "  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 676,\n  \"decoder_sparse_step\": 1,\n"
             "  \"eos_token_id\": 678,\n  \"head_dim\": %d,\n  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n"
             "  \"initializer_range\": 0.02,\n  \"intermediate_size\": %d,\n  \"max_position_embeddings\": 256,\n"
             "  \"max_window_layers\": %d,\n  \"mlp_only_layers\": [],\n  \"model_type\": \"qwen3_moe\",\n"
             "  \"moe_intermediate_size\": %d,\n  \"norm_topk_prob\": true,\n  \"num_attention_heads\": %d,\n"
             "  \"num_experts\": %d,\n  \"num_experts_per_tok\": %d,\n  \"num_hidden_layers\": %d,\n"
             "  \"num_key_value_heads\": %d,\n  \"output_router_logits\": false,\n  \"rms_norm_eps\": 1e-06,\n"
             "  \"rope_scaling\": null,\n  \"rope_theta\": 1000000.0,\n  \"router_aux_loss_coef\": 0.001,\n"
             "  \"sliding_window\": null,\n  \"tie_word_embeddings\": false,\n  \"torch_dtype\": \"float32\",\n"
             "  \"transformers_version\": \"4.51.0\",\n  \"use_cache\": true,\n  \"use_sliding_window\": false,\n"
             "  \"vocab_size\": %d\n}\n",
             QW3_HD, QW_HIDDEN, QW_FF, QW_LAYERS, Q3M_FF_EXP, QW_HEADS, Q3M_EXPERTS, MX_USED, QW_LAYERS, QW_KV,
             QW3_VOCAB);
    static const tl_tdesc head[] = {{"model.embed_tokens.weight", QW3_VOCAB, QW_HIDDEN}, {0}};
    static const tl_tdesc layer[] = {
        TL_NORM("input_layernorm.weight"), TL_ATTN(QW3_HD), {"self_attn.q_norm.weight", QW3_HD, 0},
        {"self_attn.k_norm.weight", QW3_HD, 0}, TL_NORM("post_attention_layernorm.weight"),
        {"mlp.gate.weight", Q3M_EXPERTS, QW_HIDDEN}, TL_EXP_QWEN(0, Q3M_FF_EXP), TL_EXP_QWEN(1, Q3M_FF_EXP),
        TL_EXP_QWEN(2, Q3M_FF_EXP), TL_EXP_QWEN(3, Q3M_FF_EXP), TL_EXP_QWEN(4, Q3M_FF_EXP), TL_EXP_QWEN(5, Q3M_FF_EXP),
        TL_EXP_QWEN(6, Q3M_FF_EXP), TL_EXP_QWEN(7, Q3M_FF_EXP), {0}};
    static const tl_tdesc tail[] = {TL_NORM("model.norm.weight"), {"lm_head.weight", QW3_VOCAB, QW_HIDDEN}, {0}};
    const tl_fixture f = {"qwen3moe", cfg, tcfg, copy, head, layer, tail, false, 0, NULL, NULL};
    return write_fixture(&f, dir, sizeof dir);
}

static bool g_llama_mode;

const char *tl_llama_cpp_bin(const char *what) {
    const char *bin = getenv("LLAMA_CPP_BIN");
    if (!g_llama_mode) {
        fprintf(stderr, "  (%s: runs with --llama-cpp, ctest entry *_llamacpp)\n", what);
        return NULL;
    }
    return bin; /* set: main checked */
}

double tl_llama_ppl(const char *bin, const char *model, const char *text, int ctx, int chunks) {
    char args[4096], logp[1024];
    snprintf(logp, sizeof logp, "%s", tl_tmp("llama-ppl.log"));
    const char *extra = getenv("LLAMA_PPL_ARGS");
    snprintf(args, sizeof args, "'%s/llama-perplexity' -m '%s' -f '%s' -c %d --chunks %d -t 2 %s > '%s' 2>&1", bin, model,
             text, ctx, chunks, extra ? extra : "", logp);
    double v = 0;
    char *log = NULL;
    for (int attempt = 0; attempt < 8 && !(v > 0); attempt++) {
        const int rc = system(args);
        free(log);
        log = tl_slurp(logp, NULL);
        CHECK_MSG(rc == 0, "llama-perplexity -m %s exited with status %d", model, rc);
        if (rc) break;
        const char *p = log ? strstr(log, "Final estimate: PPL = ") : NULL;
        v = p ? strtod(p + strlen("Final estimate: PPL = "), NULL) : 0;
    }
    if (!(v > 0)) fprintf(stderr, "  llama-perplexity printed no final estimate:\n%s\n", log ? log : "(no log)");
    free(log);
    return v;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--llama-cpp")) {
        g_llama_mode = true;
        const char *bin = getenv("LLAMA_CPP_BIN");
        if (!bin || !*bin) {
            fprintf(stderr, "SKIPPED: LLAMA_CPP_BIN is not set (llama.cpp's build/bin directory)\n");
            return 77;
        }
    } else if (argc > 1) {
        fprintf(stderr, "usage: %s [--llama-cpp]\n", argv[0]);
        return 2;
    }
    run_tests();
    fprintf(stderr, "%d checks, %d failed\n", tl_checks, tl_failures);
    return tl_failures ? 1 : 0;
}
