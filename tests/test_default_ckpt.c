/* test_default_ckpt.c - the bundled model (models/default) reads as the checkpoint its model
 * card describes: config.json gives the documented hyperparameters, the safetensors header
 * parses, and every tensor is BF16 with the shape the Llama architecture table expects for those
 * hyperparameters, with finite, trained (non-constant) values.
 *
 * Reference: models/default/README.md (vocab 512, hidden 256, intermediate 512, 3 layers,
 * 4 heads, 2 KV heads, untied lm_head, 30 tensors, 2,033,408 parameters). The file checksums
 * are checked by test_default_model.sh. */
#include "formats/formats.h"
#include "model/model.h"
#include "testlib.h"

#include <stdlib.h>
#include <string.h>

#define N_TENSORS 30
#define N_PARAMS 2033408

static char dir[4096];

static void hparams(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    sm_hparams hp;
    CHECK_OK(sm_hparams_from_hf_config(path, &hp));
    CHECK(!strcmp(hp.hf_arch, "LlamaForCausalLM") && !strcmp(hp.arch, "llama"));
    CHECK(hp.n_vocab == 512 && hp.n_embd == 256 && hp.n_ff == 512 && hp.n_layer == 3);
    CHECK(hp.n_head == 4 && hp.n_head_kv == 2 && hp.head_dim == 64 && hp.n_ctx_train == 256);
    CHECK_NEAR(hp.rope_theta, 10000.0, 0);
    CHECK_NEAR(hp.rms_eps, 1e-5, 1e-12);
    CHECK(!hp.tied_embeddings && !hp.qkv_bias && !hp.attn_out_bias && !hp.mlp_bias);
    CHECK(hp.rope_hf_layout);
}

/* Every tensor of the checkpoint maps to the architecture's expected GGUF tensor with the same
 * shape, and every expected tensor is there. */
static void tensors(void) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    sm_hparams hp;
    sm_ckpt *c = NULL;
    CHECK_OK(sm_hparams_from_hf_config(path, &hp));
    CHECK_OK(sm_ckpt_open(dir, &c));
    if (!c) return;
    CHECK(c->kind == SM_CKPT_SAFETENSORS);
    CHECK_MSG(c->n_tensors == N_TENSORS, "%zu tensors", c->n_tensors);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(c->metadata, "format");
    CHECK(cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "pt"));

    int64_t params = 0;
    size_t n_expected = 0, matched = 0;
    char gname[128], ename[128];
    int nd, flags;
    int64_t shape[SM_MAX_DIMS];
    while (sm_arch_tensor(&hp, n_expected, ename, sizeof ename, &nd, shape)) n_expected++;
    CHECK_MSG(n_expected == N_TENSORS, "architecture expects %zu tensors", n_expected);

    for (size_t i = 0; i < c->n_tensors; i++) {
        const sm_tensor *t = &c->tensors[i];
        CHECK_MSG(t->type == SM_TYPE_BF16, "%s is %s", t->name, sm_type_name(t->type));
        CHECK_MSG(sm_map_hf_name(&hp, t->name, gname, sizeof gname, &flags) == 1, "%s unmapped", t->name);
        for (size_t k = 0; k < n_expected; k++) {
            sm_arch_tensor(&hp, k, ename, sizeof ename, &nd, shape);
            if (strcmp(ename, gname)) continue;
            matched++;
            CHECK_MSG(nd == t->n_dims && !memcmp(shape, t->shape, (size_t)nd * sizeof shape[0]),
                      "%s shape", t->name);
        }
        int64_t n = sm_tensor_nelements(t);
        params += n;
        if (t->type != SM_TYPE_BF16 || t->nbytes != (uint64_t)n * 2) continue;
        /* trained values: all finite, not all equal (norm weights start at 1, matrices random) */
        const uint8_t *p = t->data;
        int64_t bad = 0, differ = 0;
        uint16_t first;
        memcpy(&first, p, 2);
        for (int64_t k = 0; k < n; k++) {
            uint16_t h;
            memcpy(&h, p + 2 * k, 2);
            bad += !isfinite(sm_bf16_to_f32(h));
            differ += h != first;
        }
        CHECK_MSG(bad == 0 && differ > n / 2, "%s: %lld non-finite, %lld differ from the first", t->name,
                  (long long)bad, (long long)differ);
    }
    CHECK_MSG(matched == N_TENSORS, "%zu tensors matched the architecture", matched);
    CHECK_MSG(params == N_PARAMS, "%lld parameters", (long long)params);
    sm_ckpt_close(c);
}

void run_tests(void) {
    const char *src = getenv("SMELT_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/models/default", src ? src : "..");
    TEST(hparams);
    TEST(tensors);
}
