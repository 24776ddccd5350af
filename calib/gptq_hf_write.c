/* gptq_hf_write.c - GPTQ into a Hugging Face GPTQ checkpoint directory: model.safetensors
 * with qweight / qzeros / scales / g_idx for every block linear (formats/gptq_hf.c packs them,
 * checkpoint_format "gptq") and every other tensor in F16, config.json with the
 * quantization_config, and the tokenizer files copied. The non-linear tensors are declared
 * first, then each block's linears, so that each block is written as soon as it is quantized.
 *
 * AWQ (ro->awq.enabled) writes an AutoAWQ "gemm" checkpoint the same way: qweight / qzeros /
 * scales in AutoAWQ's layout (no g_idx), quantization_config quant_method "awq"; each block's
 * other tensors (its norms, biases) follow its linears, because the norms before q/k/v and
 * gate/up (and v's and up's biases) are divided by the AWQ scales found for that block. */
#include "calib/calib.h"
#include "calib/calib_internal.h"

#include "formats/formats.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_BYTES ((size_t)16 << 20)
#define MAX_TOKENIZER_BYTES ((size_t)1 << 30)

typedef struct hf_job {
    sm_st_writer *w;
    sm_gptq_hf_config cfg;
    char (*prefix)[256];      /* [n_layer * SM_LIN_COUNT] HF name of each linear without ".weight" */
    const sm_model *m;
    const sm_ckpt *ck;
    int64_t *block;           /* AWQ: per checkpoint tensor, the block whose linears it follows; -1: none */
    char (*gname)[128];       /* per checkpoint tensor, its GGUF name ("" if it has none) */
} hf_job;

static int write_f16(sm_st_writer *w, const sm_ckpt *ck, const sm_tensor *t) {
    const int64_t n = sm_tensor_nelements(t), chunk = (int64_t)1 << 20;
    float *f = malloc(sizeof(float) * (size_t)chunk);
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)chunk);
    const size_t esz = sm_type_get(t->type)->block_bytes;
    int rc = (!f || !h) ? sm_error("out of memory") : 0;
    for (int64_t i = 0; i < n && !rc; i += chunk) {
        const int64_t k = n - i < chunk ? n - i : chunk;
        rc = sm_plain_to_f32(t->type, (const char *)t->data + (size_t)i * esz, f, k);
        if (!rc) rc = sm_f32_to_plain(SM_TYPE_F16, f, h, k);
        if (!rc) rc = sm_st_writer_write(w, h, sizeof(uint16_t) * (size_t)k);
        sm_ckpt_release(ck, (const char *)t->data + (size_t)i * esz, (uint64_t)k * esz); /* memory: read once */
    }
    free(f);
    free(h);
    return rc ? sm_error_ctx("tensor %s", t->name) : 0;
}

/* Declare a float tensor, written in F16. */
static int declare_f16(sm_st_writer *w, const char *src_dir, const sm_tensor *t) {
    if (t->type != SM_TYPE_F32 && t->type != SM_TYPE_F16 && t->type != SM_TYPE_BF16)
        return sm_error("%s: tensor %s has type %s (expected F32, F16 or BF16)", src_dir, t->name, sm_type_name(t->type));
    return sm_st_writer_add(w, t->name, SM_TYPE_F16, t->n_dims, t->shape);
}

/* AWQ: tensor t (a block vector the model reads as v) divided by s, in F16. The checkpoint may
 * store v itself or v - 1 (Gemma's norms, which the model uses as 1 + w): the same offset is
 * kept. */
static int write_folded(hf_job *j, const sm_tensor *t, int64_t layer, const char *gname, const float *s) {
    int64_t n = 0;
    const float *v = sm_model_block_vector(j->m, layer, strchr(gname + 4, '.') + 1, &n);
    if (!v || n != sm_tensor_nelements(t)) return sm_error("awq: cannot fold the scales into tensor %s", t->name);
    float *f = malloc(sizeof(float) * (size_t)n);
    uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n);
    int rc = !f || !h ? sm_error("out of memory") : 0;
    if (!rc) rc = sm_plain_to_f32(t->type, t->data, f, n);
    bool same = true, plus_one = true;
    for (int64_t k = 0; k < n && !rc; k++) {
        same &= f[k] == v[k];
        plus_one &= f[k] + 1.0f == v[k];
    }
    if (!rc && !same && !plus_one) rc = sm_error("awq: tensor %s does not hold the values the model uses", t->name);
    for (int64_t k = 0; k < n && !rc; k++) f[k] = v[k] / s[k] - (same ? 0.0f : 1.0f);
    if (!rc) rc = sm_f32_to_plain(SM_TYPE_F16, f, h, n);
    if (!rc) rc = sm_st_writer_write(j->w, h, sizeof(uint16_t) * (size_t)n);
    free(f);
    free(h);
    return rc ? sm_error_ctx("tensor %s", t->name) : 0;
}

static int sink(void *user, int64_t layer, sm_gptq_linear *lin) {
    hf_job *j = user;
    for (int i = 0; i < SM_LIN_COUNT; i++) {
        const sm_gptq_result *r = &lin[i].res;
        int64_t ng, qws[2], qzs[2];
        if (sm_gptq_hf_shapes(&j->cfg, r->rows, r->cols, &ng, qws, qzs)) return -1;
        int32_t *qw = malloc(sizeof(int32_t) * (size_t)(qws[0] * qws[1]));
        int32_t *qz = malloc(sizeof(int32_t) * (size_t)(qzs[0] * qzs[1]));
        int rc = (!qw || !qz) ? sm_error("out of memory") : 0;
        if (!rc) rc = sm_gptq_hf_pack(&j->cfg, r->rows, r->cols, r->codes, r->zeros, qw, qz);
        /* declaration order: g_idx (not in AWQ), qweight, qzeros, scales */
        if (!rc && !j->cfg.awq) rc = sm_st_writer_write(j->w, r->g_idx, sizeof(int32_t) * (size_t)r->cols);
        if (!rc) rc = sm_st_writer_write(j->w, qw, sizeof(int32_t) * (size_t)(qws[0] * qws[1]));
        if (!rc) rc = sm_st_writer_write(j->w, qz, sizeof(int32_t) * (size_t)(qzs[0] * qzs[1]));
        if (!rc) rc = sm_st_writer_write(j->w, r->scales, sizeof(uint16_t) * (size_t)(ng * r->rows));
        free(qw);
        free(qz);
        if (rc) return sm_error_ctx("%s", j->prefix[layer * SM_LIN_COUNT + i]);
    }
    for (size_t i = 0; j->block && i < j->ck->n_tensors; i++) {
        if (j->block[i] != layer) continue;
        const sm_tensor *t = &j->ck->tensors[i];
        const float *s = sm_awq_fold_scale(j->gname[i], lin);
        if (s ? write_folded(j, t, layer, j->gname[i], s) : write_f16(j->w, j->ck, t)) return -1;
    }
    return 0;
}

/* How the checkpoint was made: the facts a gptq GGUF records as quantize.method /
 * quantize.gptq.* keys, as quantization_config's "smelt" object (transformers and GPTQModel
 * ignore keys they do not know; the standard keys stay as they are). NULL: out of memory. */
static cJSON *provenance_json(const sm_gptq_run_opts *ro) {
    cJSON *p = cJSON_CreateObject();
    if (!p) return NULL;
    bool ok = cJSON_AddStringToObject(p, "method", ro->awq.enabled ? "awq" : "gptq") && cJSON_AddStringToObject(p, "smelt_version", SM_VERSION) &&
              cJSON_AddStringToObject(p, "calib_file", ro->provenance.calib_file) &&
              (!ro->provenance.calib_xxh64 || cJSON_AddStringToObject(p, "calib_xxh64", ro->provenance.calib_xxh64)) &&
              cJSON_AddNumberToObject(p, "samples", (double)ro->provenance.samples) &&
              cJSON_AddNumberToObject(p, "seqlen", (double)ro->provenance.seqlen) &&
              cJSON_AddStringToObject(p, "sampling", ro->provenance.in_order ? "in_order" : "random");
    /* a JSON number is exact up to 2^53; a larger seed goes as its decimal string */
    if (ok && ro->provenance.seed <= ((uint64_t)1 << 53)) {
        ok = cJSON_AddNumberToObject(p, "seed", (double)ro->provenance.seed) != NULL;
    } else if (ok) {
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)ro->provenance.seed);
        ok = cJSON_AddStringToObject(p, "seed", buf) != NULL;
    }
    ok = ok && cJSON_AddNumberToObject(p, "damp", ro->q.damp) && cJSON_AddBoolToObject(p, "act_order", ro->q.act_order) &&
         cJSON_AddNumberToObject(p, "group_size", ro->q.group_size) &&
         cJSON_AddNumberToObject(p, "block_size", (double)ro->q.block_size) &&
         cJSON_AddBoolToObject(p, "true_sequential", !ro->no_true_sequential) &&
         cJSON_AddBoolToObject(p, "importance", ro->q.use_importance);
    if (ok && ro->awq.enabled)
        ok = cJSON_AddNumberToObject(p, "awq_grid", ro->awq.n_grid) &&
             cJSON_AddNumberToObject(p, "awq_clip_points", ro->awq.no_clip ? 0 : ro->awq.clip_points);
    if (!ok) {
        cJSON_Delete(p);
        return NULL;
    }
    return p;
}

/* config.json of the source with torch_dtype float16 and the quantization_config (with the
 * "smelt" provenance object where ro says how it was made). */
static int write_config(const char *src_dir, sm_outdir *od, const sm_gptq_hf_config *cfg, const sm_gptq_run_opts *ro) {
    char *src = sm_path_join(src_dir, "config.json"), *dst = sm_outdir_file(od, "config.json");
    char *text = NULL, *out = NULL;
    size_t len = 0;
    cJSON *root = NULL, *qc = NULL;
    int rc = -1;
    if (!src || !dst) {
        sm_error("out of memory");
        goto done;
    }
    if (sm_read_file(src, MAX_JSON_BYTES, &text, &len)) goto done;
    root = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(root)) {
        sm_error("%s: expected a JSON object", src);
        goto done;
    }
    qc = sm_gptq_hf_config_to_json(cfg);
    if (qc && ro->provenance.calib_file) {
        cJSON *p = provenance_json(ro);
        if (!p || !cJSON_AddItemToObject(qc, "smelt", p)) {
            cJSON_Delete(p);
            cJSON_Delete(qc);
            qc = NULL;
        }
    }
    if (!qc) {
        sm_error("out of memory");
        goto done;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
    cJSON_DeleteItemFromObjectCaseSensitive(root, "torch_dtype");
    cJSON_AddItemToObject(root, "quantization_config", qc);
    cJSON_AddStringToObject(root, "torch_dtype", "float16");
    out = cJSON_Print(root);
    if (!out) {
        sm_error("out of memory");
        goto done;
    }
    sm_outfile *o = sm_outfile_open(dst);
    if (!o) goto done;
    if (sm_outfile_write(o, out, strlen(out)) || sm_outfile_write(o, "\n", 1)) {
        sm_outfile_abort(o);
        goto done;
    }
    rc = sm_outfile_commit(o);
done:
    cJSON_Delete(root);
    free(out);
    free(text);
    free(src);
    free(dst);
    return rc;
}

/* Copy the tokenizer and generation files that exist in src_dir. */
static int copy_side_files(const char *src_dir, sm_outdir *od) {
    static const char *const FILES[] = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "added_tokens.json", "generation_config.json"};
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        char *src = sm_path_join(src_dir, FILES[i]), *dst = NULL;
        char *data = NULL;
        size_t len = 0;
        int rc = !src ? sm_error("out of memory") : 0;
        if (!rc && sm_is_file(src) && !(dst = sm_outdir_file(od, FILES[i]))) rc = -1;
        if (!rc && dst) {
            rc = sm_read_file(src, MAX_TOKENIZER_BYTES, &data, &len);
            sm_outfile *o = rc ? NULL : sm_outfile_open(dst);
            if (!rc && !o) rc = -1;
            if (o && sm_outfile_write(o, data, len)) {
                sm_outfile_abort(o);
                rc = -1;
            } else if (o) {
                rc = sm_outfile_commit(o);
            }
        }
        free(data);
        free(src);
        free(dst);
        if (rc) return -1;
    }
    return 0;
}

int sm_gptq_write_hf(const sm_model *m, const char *src_dir, const sm_calib_set *cs, const char *out_dir,
                     const sm_gptq_run_opts *ro, sm_gptq_run_report *rep) {
    memset(rep, 0, sizeof *rep);
    const sm_hparams *hp = sm_model_hparams(m);
    hf_job j = {0};
    j.cfg = (sm_gptq_hf_config){.bits = ro->q.bits, .group_size = ro->q.group_size, .desc_act = ro->q.act_order,
                                .sym = ro->q.sym, .static_groups = ro->q.static_groups,
                                .true_sequential = !ro->no_true_sequential, .damp_percent = ro->q.damp};
    const bool awq = ro->awq.enabled;
    if (awq) { /* AutoAWQ's gemm checkpoint: 4 bits, zero points, consecutive groups */
        j.cfg = (sm_gptq_hf_config){.bits = ro->q.bits, .group_size = ro->q.group_size, .awq = true, .true_sequential = true};
        if (ro->q.bits != 4) return sm_error("awq --to hf: AutoAWQ's gemm checkpoints hold 4-bit codes, not %d", ro->q.bits);
        if (ro->q.act_order) return sm_error("awq --to hf: AWQ checkpoints have no act-order");
    }
    j.m = m;
    sm_ckpt *ck = NULL;
    bool *is_linear = NULL;
    char *st_path = NULL;
    int rc = -1;
    sm_outdir *od = NULL;
    if (hp->features & SM_FEAT_FUSED) /* before any output exists */
        return sm_error("gptq --to hf: the %s block stores q/k/v and gate/up as fused linears (qkv_proj, gate_up_proj); "
                        "writing them as GPTQ tensors is not supported yet (--to gguf:TYPE is)", hp->arch);
    if (sm_ckpt_open(src_dir, &ck)) return -1;
    if (!(od = sm_outdir_open(out_dir))) {
        sm_ckpt_close(ck);
        return -1;
    }
    j.ck = ck;
    j.prefix = calloc((size_t)(hp->n_layer * SM_LIN_COUNT), sizeof *j.prefix);
    is_linear = calloc(ck->n_tensors ? ck->n_tensors : 1, sizeof *is_linear);
    j.gname = calloc(ck->n_tensors ? ck->n_tensors : 1, sizeof *j.gname);
    j.block = awq ? malloc(sizeof(int64_t) * (ck->n_tensors ? ck->n_tensors : 1)) : NULL;
    if (!j.gname || (awq && !j.block)) {
        sm_error("out of memory");
        goto done;
    }
    for (size_t i = 0; awq && i < ck->n_tensors; i++) j.block[i] = -1;
    st_path = sm_outdir_file(od, "model.safetensors");
    j.w = sm_st_writer_new();
    if (!j.prefix || !is_linear || !st_path || !j.w) {
        sm_error("out of memory");
        goto done;
    }
    /* find the block linears by their GGUF names */
    char gname[128];
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const char *name = ck->tensors[i].name;
        int flags = 0;
        if (sm_map_hf_name(hp, name, gname, sizeof gname, &flags) != 1) {
            sm_clear_error();
            continue;
        }
        int lin = -1;
        char *end;
        if (strncmp(gname, "blk.", 4)) continue;
        const long long l = strtoll(gname + 4, &end, 10);
        snprintf(j.gname[i], sizeof j.gname[i], "%s", gname);
        if (awq && l >= 0 && l < hp->n_layer && *end == '.') j.block[i] = l;
        for (int k = 0; k < SM_LIN_COUNT && *end == '.'; k++) {
            const size_t n = strlen(sm_linear_gguf_name((sm_linear)k));
            if (!strncmp(end + 1, sm_linear_gguf_name((sm_linear)k), n) && !strcmp(end + 1 + n, ".weight")) lin = k;
        }
        if (lin < 0 || l < 0 || l >= hp->n_layer) continue;
        const size_t len = strlen(name) - strlen(".weight");
        if (len >= sizeof j.prefix[0]) {
            sm_error("tensor name %s is too long", name);
            goto done;
        }
        memcpy(j.prefix[l * SM_LIN_COUNT + lin], name, len);
        is_linear[i] = true;
        if (awq) j.block[i] = -1;
    }
    for (int64_t k = 0; k < hp->n_layer * SM_LIN_COUNT; k++)
        if (!j.prefix[k][0]) {
            sm_error("%s: no weight for blk.%lld.%s", src_dir, (long long)(k / SM_LIN_COUNT),
                     sm_linear_gguf_name((sm_linear)(k % SM_LIN_COUNT)));
            goto done;
        }
    /* declare: the other tensors (F16), then per block and linear g_idx, qweight, qzeros, scales */
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const sm_tensor *t = &ck->tensors[i];
        if (is_linear[i] || (awq && j.block[i] >= 0)) continue; /* AWQ: declared after its block's linears */
        if (declare_f16(j.w, src_dir, t)) goto done;
    }
    char name[300];
    for (int64_t k = 0; k < hp->n_layer * SM_LIN_COUNT; k++) {
        int64_t rows, cols, ng, qws[2], qzs[2];
        if (sm_model_linear_shape(m, k / SM_LIN_COUNT, (sm_linear)(k % SM_LIN_COUNT), &rows, &cols) ||
            sm_gptq_hf_shapes(&j.cfg, rows, cols, &ng, qws, qzs))
            goto done;
        const int64_t gidx_shape[1] = {cols}, sc_shape[2] = {ng, rows};
        snprintf(name, sizeof name, "%s.g_idx", j.prefix[k]);
        if (!awq && sm_st_writer_add(j.w, name, SM_TYPE_I32, 1, gidx_shape)) goto done;
        snprintf(name, sizeof name, "%s.qweight", j.prefix[k]);
        if (sm_st_writer_add(j.w, name, SM_TYPE_I32, 2, qws)) goto done;
        snprintf(name, sizeof name, "%s.qzeros", j.prefix[k]);
        if (sm_st_writer_add(j.w, name, SM_TYPE_I32, 2, qzs)) goto done;
        snprintf(name, sizeof name, "%s.scales", j.prefix[k]);
        if (sm_st_writer_add(j.w, name, SM_TYPE_F16, 2, sc_shape)) goto done;
        for (size_t i = 0; awq && k % SM_LIN_COUNT == SM_LIN_COUNT - 1 && i < ck->n_tensors; i++) {
            const sm_tensor *t = &ck->tensors[i];
            if (j.block[i] != k / SM_LIN_COUNT) continue;
            if (declare_f16(j.w, src_dir, t)) goto done;
        }
    }
    if (sm_st_writer_set_metadata(j.w, "format", "pt") || sm_st_writer_begin(j.w, st_path)) goto done;
    for (size_t i = 0; i < ck->n_tensors; i++)
        if (!is_linear[i] && !(awq && j.block[i] >= 0) && write_f16(j.w, ck, &ck->tensors[i])) goto done;
    sm_gptq_run_opts o = *ro;
    o.types = NULL;
    o.q.v1_zero = !o.q.sym && !awq; /* the "gptq" (v1) format stores zero - 1 */
    o.sink = sink;
    o.sink_user = &j;
    if (sm_gptq_run(m, cs, &o, rep)) goto done;
    rc = sm_st_writer_finish(j.w);
    j.w = NULL;
    if (!rc) rc = write_config(src_dir, od, &j.cfg, ro);
    if (!rc) rc = copy_side_files(src_dir, od);
    if (!rc) {
        rc = sm_outdir_commit(od);
        od = NULL;
    }
done:
    if (j.w) sm_st_writer_abort(j.w);
    sm_outdir_abort(od);
    sm_ckpt_close(ck);
    free(j.prefix);
    free(j.gname);
    free(j.block);
    free(is_linear);
    free(st_path);
    return rc;
}
