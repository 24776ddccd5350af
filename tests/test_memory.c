/* test_memory.c - the streaming commands' peak resident memory is bounded by their working
 * set, not by the model: a synthetic Llama-shaped F16 model of ~220 MB (48 narrow blocks) is
 * converted, quantized, GPTQ-quantized (to GGUF and to an HF GPTQ checkpoint) and LoRA-merged
 * by the smelt binary, and each run's peak RSS (wait4's ru_maxrss: the pages of mapped input
 * files count, as they do against a container's memory limit) must stay under a third of
 * the input's size. Before the input's pages were released as they were used, `smelt
 * quantize` peaked at the whole file (every mapped page stayed resident).
 *
 * Not timing-based; runs a few seconds (the model is written once into the test's tmpdir). */
#include "testlib.h"

#include "formats/formats.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum { HEADS = 8, KV_HEADS = 2, VOCAB = 2048 };
/* the big model (convert, quantize): 48 blocks of 4.5 MiB */
enum { HIDDEN = 512, FF = 1024, LAYERS = 48 };
/* GPTQ's pair: narrow blocks (GPTQ's cost grows with the width), 2 and 18 of them */
enum { G_HIDDEN = 256, G_FF = 512, G_SMALL = 2, G_LARGE = 18 };

#define POOL ((size_t)1 << 22) /* F16 values reused across tensors (content does not matter) */

static uint16_t *pool(void) {
    static uint16_t *p;
    if (!p && (p = malloc(POOL * 2))) {
        uint64_t s = 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < POOL; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            p[i] = sm_f32_to_f16(((float)(s >> 40) / (float)(1 << 24) - 0.5f) * 0.1f);
        }
    }
    return p;
}

/* An HF directory `name` in the tmpdir (config, F16 safetensors, the KJV tokenizer) of
 * `layers` blocks: static buffer (up to 4 live), NULL on failure. */
static const char *make_model(const char *name, int hidden, int ff, int layers) {
    static char dirs[4][1024];
    static int k;
    char *dir = dirs[k++ & 3];
    snprintf(dir, 1024, "%s", tl_tmp(name));
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s' '%s' '%s'/", dir,
             tl_asset("models/tiny-llama-kjv/tokenizer.model"), tl_asset("models/tiny-llama-kjv/tokenizer_config.json"),
             tl_asset("models/tiny-llama-kjv/special_tokens_map.json"), dir);
    if (system(cmd)) return NULL;
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": %d, "
             "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
             "\"num_key_value_heads\": %d, \"vocab_size\": %d, \"max_position_embeddings\": 256, "
             "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false, "
             "\"torch_dtype\": \"float16\"}\n",
             hidden, ff, layers, HEADS, KV_HEADS, VOCAB);
    if (tl_write_file(path, cfg, strlen(cfg))) return NULL;
    const int64_t kv = hidden / HEADS * KV_HEADS;
    const struct { const char *fmt; int64_t r, c; } per[] = {
        {"model.layers.%d.input_layernorm.weight", hidden, 0},
        {"model.layers.%d.self_attn.q_proj.weight", hidden, hidden},
        {"model.layers.%d.self_attn.k_proj.weight", kv, hidden},
        {"model.layers.%d.self_attn.v_proj.weight", kv, hidden},
        {"model.layers.%d.self_attn.o_proj.weight", hidden, hidden},
        {"model.layers.%d.post_attention_layernorm.weight", hidden, 0},
        {"model.layers.%d.mlp.gate_proj.weight", ff, hidden},
        {"model.layers.%d.mlp.up_proj.weight", ff, hidden},
        {"model.layers.%d.mlp.down_proj.weight", hidden, ff},
    };
    const int n_per = (int)(sizeof per / sizeof per[0]);
    sm_st_writer *w = sm_st_writer_new();
    const int64_t emb[2] = {VOCAB, hidden}, norm[1] = {hidden};
    int rc = sm_st_writer_add(w, "model.embed_tokens.weight", SM_TYPE_F16, 2, emb);
    for (int l = 0; l < layers; l++)
        for (int j = 0; j < n_per && !rc; j++) {
            char tname[128];
            snprintf(tname, sizeof tname, per[j].fmt, l);
            const int64_t shape[2] = {per[j].r, per[j].c};
            rc = sm_st_writer_add(w, tname, SM_TYPE_F16, per[j].c ? 2 : 1, shape);
        }
    if (!rc) rc = sm_st_writer_add(w, "model.norm.weight", SM_TYPE_F16, 1, norm);
    if (!rc) rc = sm_st_writer_add(w, "lm_head.weight", SM_TYPE_F16, 2, emb);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = sm_st_writer_set_metadata(w, "format", "pt");
    if (rc || sm_st_writer_begin(w, path)) {
        sm_st_writer_abort(w);
        return NULL;
    }
    const uint16_t *p = pool();
    size_t at = 0;
    /* n values from the pool (norms near 1 would not matter either: the data are never judged) */
#define EMIT(n)                                                                                \
    for (size_t left = (size_t)(n); left && !rc;) {                                            \
        const size_t m_ = left < POOL - at ? left : POOL - at;                                 \
        rc = sm_st_writer_write(w, p + at, (uint64_t)m_ * 2);                                  \
        left -= m_, at = (at + m_) % POOL;                                                      \
    }
    if (!p) rc = -1;
    EMIT((size_t)VOCAB * hidden);
    for (int l = 0; l < layers; l++)
        for (int j = 0; j < n_per; j++) EMIT((size_t)per[j].r * (size_t)(per[j].c ? per[j].c : 1));
    EMIT((size_t)hidden);
    EMIT((size_t)VOCAB * hidden);
#undef EMIT
    if (rc) {
        sm_st_writer_abort(w);
        return NULL;
    }
    return sm_st_writer_finish(w) ? NULL : dir;
}

/* Run smelt with argv (NULL-terminated, argv[0] ignored), output to a log; its exit status,
 * and its peak RSS in KiB in *maxrss_kb. */
static int run_measured(const char *const *argv, long *maxrss_kb) {
    *maxrss_kb = -1;
    const char *log = tl_tmp("measured.log");
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        const int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("SMELT_NO_PROGRESS", "1", 1);
        /* sanitizer builds: freed memory must not sit in ASan's quarantine (it would count) */
        setenv("ASAN_OPTIONS", "quarantine_size_mb=0:detect_leaks=0", 1);
        execv(tl_smelt_bin(), (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) != pid) return -1;
    *maxrss_kb = ru.ru_maxrss;
    const int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    if (rc) {
        char *out = tl_slurp(log, NULL);
        fprintf(stderr, "[%s] smelt %s ... exited %d:\n%s\n", tl_current, argv[1], rc, out ? out : "");
        free(out);
    }
    return rc;
}

static long long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static const char *g_model, *g_f16;
static long long g_f16_bytes;

/* The command ran, and its peak RSS stayed under a third of the input size. */
static void check_bounded(const char *what, const char *const *argv, long long input_bytes) {
    long kb = 0;
    const int rc = run_measured(argv, &kb);
    CHECK_MSG(rc == 0, "smelt %s failed", what);
    const double mb = (double)kb / 1024, limit = (double)input_bytes / 3 / 1048576;
    fprintf(stderr, "  %-22s peak RSS %7.1f MiB (input %.1f MiB, limit %.1f MiB)\n", what, mb,
            (double)input_bytes / 1048576, limit);
    CHECK_MSG(kb > 1024, "%s: implausible peak RSS %ld KiB (is wait4 measuring?)", what, kb);
    CHECK_MSG(mb < limit, "%s: peak RSS %.1f MiB, more than a third of its %.1f MiB input", what, mb,
              (double)input_bytes / 1048576);
}

static void setup(void) {
    g_model = make_model("model", HIDDEN, FF, LAYERS);
    CHECK_MSG(g_model != NULL, "cannot write the synthetic model: %s", sm_last_error());
    if (!g_model) return;
    static char f16[1100];
    snprintf(f16, sizeof f16, "%s", tl_tmp("model-f16.gguf"));
    const char *argv[] = {"smelt", "convert", g_model, "-o", f16, "--outtype", "f16", "--quiet", "--no-sync", NULL};
    char st[1100];
    snprintf(st, sizeof st, "%s/model.safetensors", g_model);
    check_bounded("convert (f16)", argv, file_size(st));
    g_f16_bytes = file_size(f16);
    if (g_f16_bytes > 0) g_f16 = f16;
    CHECK_MSG(g_f16_bytes > 200ll << 20, "the F16 GGUF has %lld bytes, expected over 200 MiB", g_f16_bytes);
}

static void quantize_bounded(void) {
    if (!g_f16) return;
    const char *out = tl_tmp("q8.gguf");
    const char *argv[] = {"smelt", "quantize", g_f16, out, "Q8_0", "--quiet", "--no-sync", NULL};
    check_bounded("quantize Q8_0", argv, g_f16_bytes);
    sm_gguf *g = NULL;
    CHECK_OK(sm_gguf_open(out, &g));
    if (g) {
        CHECK(sm_gguf_n_tensors(g) == 3 + 9 * LAYERS);
        const sm_tensor *t = sm_gguf_find_tensor(g, "blk.47.ffn_down.weight");
        CHECK(t && t->type == SM_TYPE_Q8_0);
        sm_gguf_close(g);
    }
    unlink(out);
    /* the block tensors kept in F16 (written from the mapping, not through the codec) */
    const char *argv2[] = {"smelt", "quantize", g_f16, out, "Q8_0", "--quiet", "--no-sync", "--keep", "blk\\..*", NULL};
    check_bounded("quantize (F16 kept)", argv2, g_f16_bytes);
    unlink(out);
    /* the same from a compressed .smelt of the GGUF: decoded tensor by tensor in memory (no
     * temporary file: TMPDIR is a plain file, where none can be made), peak RSS bounded, output
     * byte-identical. Before, the .smelt was decoded whole into an unlinked file under TMPDIR. */
    char packed[1100], ref[1100], notdir[1100];
    snprintf(packed, sizeof packed, "%s", tl_tmp("model-f16.smelt"));
    snprintf(ref, sizeof ref, "%s", tl_tmp("q8-ref.gguf"));
    snprintf(notdir, sizeof notdir, "%s", tl_tmp("not-a-dir"));
    const char *pk[] = {"smelt", "pack", g_f16, "-o", packed, "--quiet", "--no-sync", NULL};
    const char *q0[] = {"smelt", "quantize", g_f16, ref, "Q8_0", "--quiet", "--no-sync", "--keep", "output.weight", NULL};
    const char *q1[] = {"smelt", "quantize", packed, out, "Q8_0", "--quiet", "--no-sync", "--keep", "output.weight", NULL};
    long kb;
    CHECK(run_measured(pk, &kb) == 0 && run_measured(q0, &kb) == 0);
    FILE *nd = fopen(notdir, "w");
    if (nd) fclose(nd);
    const char *tmpdir = getenv("TMPDIR");
    char *saved = tmpdir ? strdup(tmpdir) : NULL;
    setenv("TMPDIR", notdir, 1);
    check_bounded("quantize (.smelt)", q1, g_f16_bytes);
    if (saved) setenv("TMPDIR", saved, 1);
    else unsetenv("TMPDIR");
    free(saved);
    CHECK_MSG(tl_same_file(ref, out), "quantize of the .smelt differs from quantize of the GGUF");
    unlink(out), unlink(ref), unlink(packed), unlink(notdir);
    /* the large model is no longer needed: keep the test's disk use down */
    unlink(g_f16);
    g_f16 = NULL;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_model);
    if (system(cmd)) {}
    g_model = NULL;
}

/* GPTQ works a block at a time: its peak RSS on a model of G_LARGE blocks may exceed the one
 * on G_SMALL blocks (same widths) by a third of the extra bytes at most (every mapped block
 * stayed resident before: the whole difference). Both targets: GGUF (from an F16 GGUF, and
 * from the HF directory read in place) and HF GPTQ (from the HF directory). Runs the
 * small/large pair of each. */
static void gptq_grows_not_with_depth(void) {
    char calib[1100]; /* tl_asset's buffers are reused by make_model */
    snprintf(calib, sizeof calib, "%s", tl_asset("text/kjv-calib.txt"));
    const int depth[2] = {G_SMALL, G_LARGE};
    long kb_gguf[2] = {0, 0}, kb_hf[2] = {0, 0}, kb_dir[2] = {0, 0};
    long long bytes_gguf[2] = {0, 0}, bytes_hf[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        char name[32], gguf[1100], out[1100], st[1100];
        snprintf(name, sizeof name, "g%d", depth[k]);
        const char *dir = make_model(name, G_HIDDEN, G_FF, depth[k]);
        CHECK_MSG(dir != NULL, "cannot write the synthetic model: %s", sm_last_error());
        if (!dir) return;
        snprintf(st, sizeof st, "%s/model.safetensors", dir);
        snprintf(gguf, sizeof gguf, "%s.gguf", dir);
        const char *cv[] = {"smelt", "convert", dir, "-o", gguf, "--outtype", "f16", "--quiet", "--no-sync", NULL};
        long kb;
        CHECK(run_measured(cv, &kb) == 0);
        snprintf(out, sizeof out, "%s-q.gguf", dir);
        const char *a[] = {"smelt", "gptq", gguf, "--calib", calib, "--samples", "1", "--seqlen", "16", "--to", "gguf:Q8_0",
                           "-o", out, "--quiet", "--no-loss", NULL};
        CHECK_MSG(run_measured(a, &kb_gguf[k]) == 0, "gptq --to gguf:Q8_0 on %d blocks failed", depth[k]);
        bytes_gguf[k] = file_size(gguf);
        snprintf(out, sizeof out, "%s-hf", dir);
        const char *b[] = {"smelt", "gptq", dir, "--calib", calib, "--samples", "1", "--seqlen", "16", "--to", "hf",
                           "-o", out, "--quiet", "--no-loss", NULL};
        CHECK_MSG(run_measured(b, &kb_hf[k]) == 0, "gptq --to hf on %d blocks failed", depth[k]);
        bytes_hf[k] = file_size(st);
        snprintf(out, sizeof out, "%s-dq.gguf", dir);
        const char *c[] = {"smelt", "gptq", dir, "--calib", calib, "--samples", "1", "--seqlen", "16", "--to", "gguf:Q8_0",
                           "-o", out, "--quiet", "--no-loss", NULL};
        CHECK_MSG(run_measured(c, &kb_dir[k]) == 0, "gptq DIR --to gguf:Q8_0 on %d blocks failed", depth[k]);
        unlink(out);
    }
    const struct { const char *what; const long *kb; const long long *bytes; } r[3] = {
        {"gptq --to gguf:Q8_0", kb_gguf, bytes_gguf}, {"gptq --to hf", kb_hf, bytes_hf},
        {"gptq DIR --to gguf:Q8_0", kb_dir, bytes_hf}};
    for (int i = 0; i < 3; i++) {
        const double grow = (double)(r[i].kb[1] - r[i].kb[0]) / 1024, extra = (double)(r[i].bytes[1] - r[i].bytes[0]) / 1048576;
        fprintf(stderr, "  %-24s peak RSS %.1f -> %.1f MiB for %d -> %d blocks (%.1f MiB more input)\n", r[i].what,
                (double)r[i].kb[0] / 1024, (double)r[i].kb[1] / 1024, G_SMALL, G_LARGE, extra);
        CHECK_MSG(r[i].kb[0] > 1024 && extra > 10, "%s: implausible measurement", r[i].what);
        CHECK_MSG(grow < extra / 3, "%s: peak RSS grew by %.1f MiB with %.1f MiB more blocks", r[i].what, grow, extra);
    }
}

void run_tests(void) {
    TEST(setup);
    TEST(quantize_bounded);
    TEST(gptq_grows_not_with_depth);
}
