/* gptq_gguf.c - GPTQ into an ordinary GGUF: the recipe (quantize.h recipes, llama.cpp's
 * rules) picks every tensor's type exactly as `smelt quantize` would; the block linears are
 * quantized by layer-by-layer GPTQ on that type's grid (round-to-nearest with diag H as
 * importance where GPTQ has no grid), every other tensor (embedding, output head, norms) is
 * converted as `smelt quantize` converts it (no importance weights). Metadata: the source's,
 * plus general.file_type of the recipe and general.quantization_version.
 *
 * Tensor order: the model-wide tensors first (in the source's order), then block 0's tensors,
 * block 1's, ... (each block's in the source's order), so that each block is written as soon
 * as it is quantized and nothing else has to wait in memory.
 *
 * The source: a GGUF, or a Hugging Face directory read as the GGUF `smelt convert` would write
 * of it (sm_hf_source: same tensors, order, metadata and bytes, without writing that file). */
#include "calib/calib.h"
#include "calib/calib_internal.h"

#include "convert/convert.h"
#include "formats/formats.h"
#include "quantize/quantize.h"

#include <stdlib.h>
#include <string.h>

#define NOT_SEEN ((sm_type)-2) /* a block linear the file lacks */

typedef struct gguf_job {
    sm_gguf *g;          /* the source: a GGUF ... */
    sm_hf_source *hf;    /* ... or an HF directory */
    sm_sink *w;
    size_t nt;
    sm_type *types;      /* per source tensor */
    int64_t *layer;      /* per source tensor: its block, -1 for model-wide tensors */
    int *linear;         /* per source tensor: its sm_linear, -1 if not a block linear (a fused
                            tensor: its first linear; the others follow in it, sm_model_linear_tensor) */
    const sm_model *m;
} gguf_job;

/* The stored tensor holding linear l (sm_model_linear_tensor; a mixture of experts' ffn_gate,
 * ffn_up, ffn_down: its stacks ffn_{gate,up,down}_exps, each expert's rows after the last's). */
static const char *stem_of(const sm_model *m, sm_linear l, int64_t *row0) {
    static const char *const STACKS[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
    if ((sm_model_hparams(m)->features & SM_FEAT_MOE) && l >= SM_LIN_GATE) {
        *row0 = 0;
        return STACKS[l - SM_LIN_GATE];
    }
    return sm_model_linear_tensor(m, l, row0);
}

static const sm_tensor *tensor(const gguf_job *j, size_t i) {
    return j->hf ? sm_hf_source_tensor(j->hf, i) : sm_gguf_tensor(j->g, i);
}

static int write_tensor(gguf_job *j, size_t i) {
    return j->hf ? sm_hf_source_write(j->hf, j->w, i, j->types[i])
                 : sm_quantize_write_tensor(j->w, j->g, tensor(j, i), j->types[i], NULL, NULL, 0);
}

/* The tensor's values as the model uses them, divided by s, in its output type. */
static int write_folded(gguf_job *j, size_t i, int64_t layer, const float *s) {
    const sm_tensor *t = tensor(j, i);
    const char *stem = strchr(t->name + 4, '.') + 1;
    int64_t n = 0;
    const float *v = sm_model_block_vector(j->m, layer, stem, &n);
    if (!v || n != sm_tensor_nelements(t) || sm_type_get(j->types[i])->quantized)
        return sm_error("awq: cannot fold the scales into tensor %s", t->name);
    float *f = malloc(sizeof(float) * (size_t)n);
    void *q = malloc((size_t)sm_type_row_bytes(j->types[i], n));
    int rc = !f || !q ? sm_error("out of memory") : 0;
    for (int64_t k = 0; k < n && !rc; k++) f[k] = v[k] / s[k];
    if (!rc) rc = sm_f32_to_plain(j->types[i], f, q, n);
    if (!rc) rc = sm_sink_write(j->w, q, sm_type_row_bytes(j->types[i], n));
    free(f);
    free(q);
    return rc;
}

static int sink(void *user, int64_t layer, sm_gptq_linear *lin) {
    gguf_job *j = user;
    for (size_t i = 0; i < j->nt; i++) {
        if (j->layer[i] != layer) continue;
        int rc;
        if (j->linear[i] >= 0) {
            /* the linears stored in this tensor, in row order (q, k, v of a fused attn_qkv): each
             * row is quantized on its own, so their packed rows concatenate */
            int64_t r0;
            const char *stem = stem_of(j->m, (sm_linear)j->linear[i], &r0);
            rc = 0;
            for (int k = 0; k < SM_LIN_COUNT && !rc; k++)
                if (!strcmp(stem_of(j->m, (sm_linear)k, &r0), stem)) {
                    const sm_gptq_result *r = &lin[k].res;
                    if (!lin[k].experts) rc = sm_sink_write(j->w, r->packed, r->packed_bytes);
                    for (int64_t e = 0; lin[k].experts && e < sm_model_hparams(j->m)->n_expert && !rc; e++)
                        rc = sm_sink_write(j->w, lin[k].experts[e].packed, lin[k].experts[e].packed_bytes);
                }
        } else {
            const float *s = sm_awq_fold_scale(tensor(j, i)->name, lin);
            rc = s ? write_folded(j, i, layer, s) : write_tensor(j, i);
        }
        if (rc) return -1;
    }
    return 0;
}

/* "blk.N.NAME.weight": N and the linear NAME is (-1 if none); -1 for a model-wide tensor. */
static int64_t block_of(const sm_model *m, const char *name, int *linear) {
    *linear = -1;
    if (strncmp(name, "blk.", 4)) return -1;
    char *end;
    const long long l = strtoll(name + 4, &end, 10);
    if (end == name + 4 || *end != '.' || l < 0) return -1;
    for (int i = 0; i < SM_LIN_COUNT; i++) {
        int64_t r0;
        const char *ln = stem_of(m, (sm_linear)i, &r0);
        if (r0) continue; /* a later part of a fused tensor */
        const size_t n = strlen(ln);
        if (!strncmp(end + 1, ln, n) && !strcmp(end + 1 + n, ".weight")) *linear = i;
    }
    return l;
}

int sm_gptq_write_gguf(const sm_model *m, const char *src_path, const sm_calib_set *cs, const char *recipe_name,
                       const char *out_path, const sm_gptq_run_opts *ro, sm_gptq_run_report *rep) {
    memset(rep, 0, sizeof *rep);
    const sm_recipe *recipe = sm_recipe_find(recipe_name ? recipe_name : "");
    if (!recipe) return sm_error("unknown quantization '%s' (one of: %s)", recipe_name ? recipe_name : "", sm_recipe_names());
    const sm_hparams *hp = sm_model_hparams(m);
    gguf_job j = {.m = m};
    sm_recipe_plan plan = {0};
    const char **names = NULL;
    sm_type *lin_types = NULL;
    int rc = -1;
    if (sm_is_dir(src_path) ? sm_hf_source_open(src_path, &j.hf) : sm_gguf_open(src_path, &j.g)) return -1;
    j.nt = j.hf ? sm_hf_source_n_tensors(j.hf) : sm_gguf_n_tensors(j.g);
    const size_t nt = j.nt ? j.nt : 1;
    names = calloc(nt, sizeof *names);
    j.types = calloc(nt, sizeof *j.types);
    j.layer = calloc(nt, sizeof *j.layer);
    j.linear = calloc(nt, sizeof *j.linear);
    lin_types = calloc((size_t)(hp->n_layer * SM_LIN_COUNT), sizeof *lin_types);
    if (!names || !j.types || !j.layer || !j.linear || !lin_types) {
        sm_error("out of memory");
        goto done;
    }
    for (size_t i = 0; i < j.nt; i++) names[i] = tensor(&j, i)->name;
    for (int64_t i = 0; i < hp->n_layer * SM_LIN_COUNT; i++) lin_types[i] = NOT_SEEN;
    const sm_recipe_model rm = {hp->arch, hp->n_layer, hp->n_head, hp->n_head_kv, hp->n_expert};
    if (sm_recipe_plan_begin(&plan, recipe, names, j.nt, &rm, true)) goto done;

    /* plan every tensor in file order (the recipe's counters follow it), as smelt quantize */
    for (size_t i = 0; i < j.nt; i++) {
        const sm_tensor *t = tensor(&j, i);
        j.types[i] = sm_quantize_plan_type(&plan, t, ro->plan_names, ro->plan_types, ro->n_plan, NULL);
        if (j.types[i] == SM_TYPE_INVALID) { sm_error_ctx("%s", src_path); goto done; }
        j.layer[i] = block_of(m, t->name, &j.linear[i]);
        if (j.layer[i] >= hp->n_layer) {
            sm_error("%s: tensor %s: the model has %lld blocks", src_path, t->name, (long long)hp->n_layer);
            goto done;
        }
        const sm_type_info *ti = sm_type_get(t->type);
        if ((j.types[i] != t->type || j.linear[i] >= 0) && ti->quantized) {
            sm_error("%s: tensor %s is already quantized (%s); GPTQ needs F32, F16 or BF16 weights", src_path, t->name,
                     ti->name);
            goto done;
        }
        if (j.types[i] != t->type && !sm_quantize_supported(j.types[i])) {
            sm_error("tensor %s: type %s is not supported by this build", t->name, sm_type_name(j.types[i]));
            goto done;
        }
        if (j.linear[i] >= 0) { /* every linear the tensor holds (fused: q, k, v or gate, up) */
            int64_t r0;
            const char *stem = stem_of(m, (sm_linear)j.linear[i], &r0);
            for (int k = 0; k < SM_LIN_COUNT; k++)
                if (!strcmp(stem_of(m, (sm_linear)k, &r0), stem))
                    lin_types[j.layer[i] * SM_LIN_COUNT + k] = j.types[i];
        }
    }
    for (int64_t l = 0; l < hp->n_layer; l++)
        for (int i = 0; i < SM_LIN_COUNT; i++)
            if (lin_types[l * SM_LIN_COUNT + i] == NOT_SEEN) {
                int64_t r0;
                sm_error("%s: tensor blk.%lld.%s.weight is missing", src_path, (long long)l, stem_of(m, (sm_linear)i, &r0));
                goto done;
            }

    if (!(j.w = sm_sink_open(out_path, ro->output))) goto done;
    sm_meta *meta = sm_sink_meta(j.w);
    if (j.hf) sm_hf_source_set_quantized_metadata(j.hf, meta, (uint32_t)recipe->ftype);
    else sm_meta_set_quantized(meta, j.g, (uint32_t)recipe->ftype);
    if (ro->add_metadata) ro->add_metadata(ro->add_metadata_user, meta);
    if (ro->provenance.calib_file) { /* how it was made */
        sm_meta_set_str(meta, "quantize.method", !ro->awq.enabled ? "gptq" : ro->awq.then_gptq ? "awq+gptq" : "awq");
        sm_meta_set_str(meta, "quantize.smelt_version", SM_VERSION);
        sm_meta_set_str(meta, "quantize.gptq.calib_file", ro->provenance.calib_file);
        if (ro->provenance.calib_xxh64) sm_meta_set_str(meta, "quantize.gptq.calib_xxh64", ro->provenance.calib_xxh64);
        sm_meta_set_u32(meta, "quantize.gptq.samples", (uint32_t)ro->provenance.samples);
        sm_meta_set_u32(meta, "quantize.gptq.seqlen", (uint32_t)ro->provenance.seqlen);
        sm_meta_set_str(meta, "quantize.gptq.sampling", ro->provenance.in_order ? "in_order" : "random");
        sm_meta_set_u64(meta, "quantize.gptq.seed", ro->provenance.seed);
        sm_meta_set_f32(meta, "quantize.gptq.damp", (float)ro->q.damp);
        sm_meta_set_bool(meta, "quantize.gptq.act_order", ro->q.act_order);
        sm_meta_set_i32(meta, "quantize.gptq.group_size", ro->q.group_size);
        sm_meta_set_u32(meta, "quantize.gptq.block_size", (uint32_t)ro->q.block_size);
        sm_meta_set_bool(meta, "quantize.gptq.true_sequential", !ro->no_true_sequential);
        sm_meta_set_bool(meta, "quantize.gptq.importance", ro->q.use_importance);
        if (ro->awq.enabled) {
            sm_meta_set_u32(meta, "quantize.awq.n_grid", (uint32_t)ro->awq.n_grid);
            sm_meta_set_u32(meta, "quantize.awq.clip_points", ro->awq.no_clip ? 0u : (uint32_t)ro->awq.clip_points);
        }
    }
    for (int64_t l = -1; l < hp->n_layer; l++)
        for (size_t i = 0; i < j.nt; i++) {
            if (j.layer[i] != l) continue;
            const sm_tensor *t = tensor(&j, i);
            if (sm_sink_add(j.w, t->name, j.types[i], t->n_dims, t->shape)) goto done;
        }
    if (sm_sink_begin(j.w)) goto done;
    for (size_t i = 0; i < j.nt; i++)
        if (j.layer[i] == -1 && write_tensor(&j, i)) goto done;
    sm_gptq_run_opts o = *ro;
    o.types = lin_types;
    o.sink = sink;
    o.sink_user = &j;
    if (sm_gptq_run(m, cs, &o, rep)) goto done;
    rc = sm_sink_finish(j.w);
done:
    sm_sink_close(j.w);
    sm_gguf_close(j.g);
    sm_hf_source_close(j.hf);
    sm_recipe_plan_free(&plan);
    free(names);
    free(j.types);
    free(j.layer);
    free(j.linear);
    free(lin_types);
    return rc;
}
