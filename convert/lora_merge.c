/* lora_merge.c - `smelt lora merge`: base HF checkpoint + adapters -> merged HF directory,
 * streamed tensor by tensor (one tensor in float at a time). */
#include "convert/convert.h"

#include <stdlib.h>
#include <string.h>

static const char *const AUX_FILES[] = {"config.json", "generation_config.json", "tokenizer.model", "tokenizer.json",
                                        "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"};

static int copy_file(const char *src, const char *dst, const char *torch_dtype) {
    char *buf;
    size_t n;
    if (sm_read_file(src, (size_t)64 << 20, &buf, &n)) return -1;
    char *out = buf;
    size_t out_n = n;
    if (torch_dtype) { /* config.json: record the merged dtype */
        cJSON *c = cJSON_ParseWithLength(buf, n);
        if (c && cJSON_IsObject(c)) {
            cJSON_DeleteItemFromObjectCaseSensitive(c, "torch_dtype");
            cJSON_AddStringToObject(c, "torch_dtype", torch_dtype);
            out = cJSON_Print(c);
            out_n = out ? strlen(out) : 0;
        }
        cJSON_Delete(c);
        if (!out) { free(buf); return sm_error("out of memory"); }
    }
    sm_outfile *o = sm_outfile_open(dst);
    int rc = o ? 0 : -1;
    if (o && sm_outfile_write(o, out, out_n)) { sm_outfile_abort(o); rc = -1; }
    else if (o) rc = sm_outfile_commit(o);
    if (out != buf) free(out);
    free(buf);
    return rc;
}

static const char *dtype_name(sm_type t) {
    return t == SM_TYPE_F32 ? "float32" : t == SM_TYPE_F16 ? "float16" : t == SM_TYPE_BF16 ? "bfloat16" : NULL;
}

/* NaN/Inf in a source tensor (x: NULL) or in its merged floats x: an error naming row and
 * column, unless --allow-nonfinite. */
static int check_finite(const sm_tensor *t, const float *x) {
    if (sm_allow_nonfinite()) return 0;
    sm_type ty = x ? SM_TYPE_F32 : t->type;
    const void *p = x ? (const void *)x : t->data;
    int64_t i = sm_first_nonfinite(ty, p, sm_tensor_nelements(t));
    if (i < 0) return 0;
    sm_nonfinite_error(ty, (const uint8_t *)p + (size_t)i * sm_type_get(ty)->block_bytes, i,
                       t->n_dims >= 2 ? sm_tensor_nelements(t) / t->shape[0] : 0);
    return x ? sm_error_ctx("the LoRA merge gives a non-finite weight") : -1;
}

/* A merged weight, finite as a float, can still overflow the output dtype (f16). */
static int check_output(const sm_tensor *t, sm_type ty, const void *p) {
    int64_t i = sm_allow_nonfinite() ? -1 : sm_first_nonfinite(ty, p, sm_tensor_nelements(t));
    if (i < 0) return 0;
    sm_nonfinite_error(ty, (const uint8_t *)p + (size_t)i * sm_type_get(ty)->block_bytes, i,
                       t->n_dims >= 2 ? sm_tensor_nelements(t) / t->shape[0] : 0);
    return sm_error_ctx("the LoRA merge gives a weight beyond the range of %s", sm_type_name(ty));
}

int sm_lora_merge_hf(const char *base_dir, sm_lora *const *ads, size_t n_ads, const char *out_dir, sm_type out_type,
                     bool quiet) {
    sm_ckpt *ck;
    if (sm_ckpt_open(base_dir, &ck)) return -1;
    sm_st_writer *w = NULL;
    float *f = NULL;
    void *obuf = NULL;
    char *path = NULL;
    sm_outdir *od = NULL;
    int rc = -1;
    if (sm_lora_check(ads, n_ads, ck)) goto done;
    if (!(od = sm_outdir_open(out_dir))) goto done;
    w = sm_st_writer_new();
    if (!w) { sm_error("out of memory"); goto done; }
    sm_type *types = calloc(ck->n_tensors ? ck->n_tensors : 1, sizeof *types);
    if (!types) { sm_error("out of memory"); goto done; }
    uint64_t total = 0;
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const sm_tensor *t = &ck->tensors[i];
        bool floaty = t->type == SM_TYPE_F32 || t->type == SM_TYPE_F16 || t->type == SM_TYPE_BF16;
        types[i] = out_type != SM_TYPE_INVALID && floaty ? out_type : t->type;
        if (!floaty && sm_lora_touches(ads, n_ads, t->name)) {
            sm_error("%s: tensor %s has dtype %s; merging needs F32/F16/BF16", base_dir, t->name, sm_type_name(t->type));
            free(types);
            goto done;
        }
        if (sm_st_writer_add(w, t->name, types[i], t->n_dims, t->shape)) { free(types); goto done; }
        total += t->nbytes;
    }
    path = sm_outdir_file(od, "model.safetensors");
    if (!path || sm_st_writer_set_metadata(w, "format", "pt") || sm_st_writer_begin(w, path)) { free(types); goto done; }
    sm_progress prog;
    sm_progress_begin(&prog, "merge", total, quiet);
    uint64_t done_bytes = 0;
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const sm_tensor *t = &ck->tensors[i];
        const sm_tensor *src = sm_lora_replacement(ads, n_ads, t->name);
        bool touched = src || sm_lora_touches(ads, n_ads, t->name);
        if (!src) src = t;
        int64_t n = sm_tensor_nelements(t);
        if (check_finite(src, NULL)) {
            sm_error_ctx("tensor %s%s", t->name, src == t ? "" : " (its modules_to_save replacement)");
            free(types);
            goto done;
        }
        if (!touched && types[i] == t->type) {
            if (sm_st_writer_write(w, t->data, t->nbytes)) { free(types); goto done; }
        } else {
            free(f);
            free(obuf);
            f = malloc((size_t)n * sizeof *f);
            uint64_t ob = sm_type_row_bytes(types[i], n);
            obuf = malloc(ob ? ob : 1);
            if (!f || !obuf) { sm_error("out of memory for %s", t->name); free(types); goto done; }
            if (sm_plain_to_f32(src->type, src->data, f, n) ||
                (touched && t->n_dims == 2 &&
                 sm_lora_apply(ads, n_ads, t->name, f, 0, t->shape[0], t->shape[0], t->shape[1])) ||
                (touched && check_finite(t, f)) || sm_f32_to_plain(types[i], f, obuf, n) ||
                (touched && check_output(t, types[i], obuf)) || sm_st_writer_write(w, obuf, ob)) {
                sm_error_ctx("tensor %s", t->name);
                free(types);
                goto done;
            }
        }
        sm_ckpt_release(ck, t->data, t->nbytes); /* memory: each base tensor is read once */
        done_bytes += t->nbytes;
        sm_progress_update(&prog, done_bytes);
    }
    sm_progress_end(&prog);
    free(types);
    rc = sm_st_writer_finish(w);
    w = NULL;
    for (size_t k = 0; !rc && k < sizeof AUX_FILES / sizeof AUX_FILES[0]; k++) {
        char *s = sm_path_join(base_dir, AUX_FILES[k]), *d = sm_is_file(s) ? sm_outdir_file(od, AUX_FILES[k]) : NULL;
        if (sm_is_file(s))
            rc = !d ? -1 : copy_file(s, d, k == 0 && out_type != SM_TYPE_INVALID ? dtype_name(out_type) : NULL);
        free(s);
        free(d);
    }
    if (!rc) {
        rc = sm_outdir_commit(od);
        od = NULL;
    }
done:
    if (w) sm_st_writer_abort(w);
    sm_outdir_abort(od);
    sm_ckpt_close(ck);
    free(f);
    free(obuf);
    free(path);
    return rc;
}
