/* bench_gen_checkpoint.c - writes a synthetic Llama-shaped BF16 Hugging Face checkpoint
 * (config.json + model.safetensors) for scripts/bench_convert.sh. Weights are deterministic
 * pseudo-random values in [-0.05, 0.05); vocab 2048 so that a 2048-piece tokenizer fits.
 *
 * usage: bench_gen_checkpoint OUT_DIR N_LAYERS [HIDDEN FF HEADS KV_HEADS]
 *   default hidden 2048, intermediate 5632, 32 heads, 4 KV heads: TinyLlama-1.1B's layer shape
 *   (24 layers = 2.1 GB); "4096 11008 32 32" gives Llama-2-7B's (scripts/bench_gptq.sh). */
#include "formats/formats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VOCAB 2048
static int g_hidden = 2048, g_ff = 5632, g_heads = 32, g_kv_heads = 4;

static uint64_t g_state = 0x9e3779b97f4a7c15ull;

static void fill_bf16(uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        g_state ^= g_state << 13, g_state ^= g_state >> 7, g_state ^= g_state << 17;
        float f = ((float)(g_state >> 40) / (float)(1 << 24) - 0.5f) * 0.1f;
        dst[i] = sm_f32_to_bf16(f);
    }
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 7) {
        fprintf(stderr, "usage: %s OUT_DIR N_LAYERS [HIDDEN FF HEADS KV_HEADS]\n", argv[0]);
        return 2;
    }
    if (argc == 7) {
        g_hidden = atoi(argv[3]), g_ff = atoi(argv[4]), g_heads = atoi(argv[5]), g_kv_heads = atoi(argv[6]);
        if (g_hidden < 64 || g_hidden > 65536 || g_ff < 64 || g_ff > 262144 || g_heads < 1 || g_kv_heads < 1 ||
            g_hidden % g_heads || g_heads % g_kv_heads)
            return fprintf(stderr, "bad shape\n"), 2;
    }
    const char *dir = argv[1];
    int layers = atoi(argv[2]);
    if (layers < 1 || layers > 1000) return 2;
    mkdir(dir, 0755);
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 1;
    fprintf(f,
            "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": %d, \"intermediate_size\": %d, "
            "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d, "
            "\"vocab_size\": %d, \"max_position_embeddings\": 2048, \"rms_norm_eps\": 1e-05, "
            "\"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\"}\n",
            g_hidden, g_ff, layers, g_heads, g_kv_heads, VOCAB);
    fclose(f);

    const int kv = g_hidden / g_heads * g_kv_heads;
    struct { const char *fmt; int64_t r, c; } per[] = {
        {"model.layers.%d.input_layernorm.weight", g_hidden, 0},
        {"model.layers.%d.self_attn.q_proj.weight", g_hidden, g_hidden},
        {"model.layers.%d.self_attn.k_proj.weight", kv, g_hidden},
        {"model.layers.%d.self_attn.v_proj.weight", kv, g_hidden},
        {"model.layers.%d.self_attn.o_proj.weight", g_hidden, g_hidden},
        {"model.layers.%d.post_attention_layernorm.weight", g_hidden, 0},
        {"model.layers.%d.mlp.gate_proj.weight", g_ff, g_hidden},
        {"model.layers.%d.mlp.up_proj.weight", g_ff, g_hidden},
        {"model.layers.%d.mlp.down_proj.weight", g_hidden, g_ff},
    };
    const int n_per = (int)(sizeof per / sizeof per[0]);
    sm_st_writer *w = sm_st_writer_new();
    int64_t emb[2] = {VOCAB, g_hidden}, norm[1] = {g_hidden};
    sm_st_writer_add(w, "model.embed_tokens.weight", SM_TYPE_BF16, 2, emb);
    for (int l = 0; l < layers; l++)
        for (int k = 0; k < n_per; k++) {
            char name[128];
            snprintf(name, sizeof name, per[k].fmt, l);
            int64_t shape[2] = {per[k].r, per[k].c};
            if (sm_st_writer_add(w, name, SM_TYPE_BF16, per[k].c ? 2 : 1, shape)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
        }
    sm_st_writer_add(w, "model.norm.weight", SM_TYPE_BF16, 1, norm);
    sm_st_writer_add(w, "lm_head.weight", SM_TYPE_BF16, 2, emb);
    sm_st_writer_set_metadata(w, "format", "pt");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (sm_st_writer_begin(w, path)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
    size_t cap = (size_t)g_ff * g_hidden;
    uint16_t *buf = malloc(cap * 2);
    if (!buf) return 1;
    int rc = 0;
#define EMIT(n) (fill_bf16(buf, (n)), rc = rc ? rc : sm_st_writer_write(w, buf, (uint64_t)(n) * 2))
    EMIT((size_t)VOCAB * g_hidden);
    for (int l = 0; l < layers; l++)
        for (int k = 0; k < n_per; k++) EMIT((size_t)per[k].r * (size_t)(per[k].c ? per[k].c : 1));
    EMIT((size_t)g_hidden);
    EMIT((size_t)VOCAB * g_hidden);
    free(buf);
    if (rc || sm_st_writer_finish(w)) return fprintf(stderr, "%s\n", sm_last_error()), 1;
    return 0;
}
