/* lora_export.c - `smelt lora export`: a PEFT adapter as llama.cpp's GGUF LoRA adapter
 * (general.type = adapter, adapter.type = lora, adapter.lora.alpha; tensors
 * <gguf name>.lora_a [r, in] and .lora_b [out, r], F32). Per-module scales that llama.cpp
 * cannot express (rsLoRA, rank/alpha patterns, adapter weights) are folded into lora_b;
 * q/k rows of lora_b get the same rope permutation as the base weights. */
#include "convert/convert.h"
#include "convert/lora_internal.h"

#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


int sm_lora_export_gguf(const char *base_dir, const sm_lora *ad, const char *out_path, const sm_sink_opts *sink) {
    sm_hparams hp;
    char *cfg = sm_path_join(base_dir, "config.json");
    int rc = sm_hparams_from_hf_config(cfg, &hp);
    free(cfg);
    if (rc) return -1;
    sm_ckpt *ck;
    if (sm_ckpt_open(base_dir, &ck)) return -1;
    sm_lora *const ads[1] = {(sm_lora *)ad};
    sm_sink *w = NULL;
    rc = -1;
    if (sm_lora_check(ads, 1, ck)) goto done;
    double alpha = sm_lora_alpha(ad);
    if (!(alpha > 0)) { sm_error("%s: lora_alpha must be positive for a llama.cpp adapter", sm_lora_path(ad)); goto done; }
    if (!(w = sm_sink_open(out_path, sink))) goto done;
    sm_meta *meta = sm_sink_meta(w);
    sm_meta_set_str(meta, "general.architecture", hp.arch);
    sm_meta_set_str(meta, "general.type", "adapter");
    sm_meta_set_str(meta, "adapter.type", "lora");
    sm_meta_set_f32(meta, "adapter.lora.alpha", (float)alpha);
    int nm = sm_lora_module_count(ad);
    char name[512];
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && sm_sink_begin(w)) goto done;
        for (int i = 0; i < nm; i++) {
            const char *base;
            const sm_tensor *a, *b;
            double scale;
            bool extra;
            sm_lora_module_get(ad, i, &base, &a, &b, &scale, &extra);
            if (extra) { sm_error("%s: module %s uses DoRA, an embedding LoRA or modules_to_save, which llama.cpp adapters cannot express; merge it instead (smelt lora merge)", sm_lora_path(ad), base); goto done; }
            char gname[256];
            int flags = 0;
            int m = sm_map_hf_name(&hp, base, gname, sizeof gname, &flags);
            if (m != 1) { if (m == 0) sm_error("%s: module %s has no GGUF counterpart", sm_lora_path(ad), base); goto done; }
            int64_t r = a->shape[0], in = a->shape[1], out = b->shape[0];
            if (pass == 0) {
                int64_t sa[2] = {r, in}, sb[2] = {out, r};
                snprintf(name, sizeof name, "%s.lora_a", gname);
                if (sm_sink_add(w, name, SM_TYPE_F32, 2, sa)) goto done;
                snprintf(name, sizeof name, "%s.lora_b", gname);
                if (sm_sink_add(w, name, SM_TYPE_F32, 2, sb)) goto done;
                continue;
            }
            float *fa = malloc((size_t)(r * in) * sizeof *fa), *fb = malloc((size_t)(out * r) * sizeof *fb),
                  *pb = malloc((size_t)(out * r) * sizeof *pb);
            if (!fa || !fb || !pb || sm_plain_to_f32(a->type, a->data, fa, r * in) ||
                sm_plain_to_f32(b->type, b->data, fb, out * r)) {
                free(fa); free(fb); free(pb);
                sm_error_ctx("module %s", base);
                goto done;
            }
            /* llama.cpp applies alpha / r; fold the rest of our scale into B */
            float fold = (float)(scale / (alpha / (double)r));
            for (int64_t k = 0; k < out * r; k++) fb[k] *= fold;
            if (flags & (SM_MAP_PERMUTE_Q | SM_MAP_PERMUTE_K))
                sm_permute_rope_rows(fb, pb, out, r, flags & SM_MAP_PERMUTE_Q ? hp.n_head : hp.n_head_kv);
            else
                memcpy(pb, fb, (size_t)(out * r) * sizeof *pb);
            int wrc = sm_sink_write(w, fa, (uint64_t)(r * in) * 4) || sm_sink_write(w, pb, (uint64_t)(out * r) * 4);
            free(fa); free(fb); free(pb);
            if (wrc) goto done;
        }
    }
    rc = sm_sink_finish(w);
done:
    sm_sink_close(w);
    sm_ckpt_close(ck);
    return rc;
}
