/* quantize_gguf.c - GGUF -> quantized GGUF: pick each tensor's type with the recipe, convert
 * its rows to float in bounded chunks, quantize, validate, write. Memory: one chunk of rows
 * in float plus its quantized bytes, whatever the model size: the input is mapped, and the
 * pages of each chunk are released once it is written (sm_gguf_release), so mapped pages do
 * not pile up either (they count against a container's memory limit). */
#include "convert/convert_internal.h"

#include "calib/calib.h"
#include "formats/formats.h"
#include "quantize/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


static int parse_type(const char *name, const char *what, sm_type *out);


/* {arch}.expert_count, 0 when absent (a dense model) */
static int64_t expert_count(const sm_gguf *g, const char *arch) {
    char key[128];
    uint64_t n = 0;
    snprintf(key, sizeof key, "%s.expert_count", arch);
    if (!sm_gguf_find(g, key) || sm_gguf_get_u64(g, key, &n)) n = 0;
    sm_clear_error();
    return n > INT32_MAX ? 0 : (int64_t)n;
}

int cv_recipe_configure(sm_recipe_plan *plan, const sm_quantize_opts *o) {
    plan->pure = o->pure;
    if (parse_type(o->output_type, "--output-tensor-type", &plan->output_type) ||
        parse_type(o->token_embd_type, "--token-embedding-type", &plan->token_embd_type))
        return -1;
    for (size_t i = 0; i < o->n_keep; i++)
        if (sm_recipe_add_rule(plan, o->keep[i], NULL)) return -1;
    for (size_t i = 0; i < o->n_tensor_types; i++) {
        const char *eq = strrchr(o->tensor_types[i], '=');
        if (!eq || eq == o->tensor_types[i] || !eq[1])
            return sm_error("--tensor-type expects REGEX=TYPE, got '%s'", o->tensor_types[i]);
        char *re = strndup(o->tensor_types[i], (size_t)(eq - o->tensor_types[i]));
        int rc = sm_recipe_add_rule(plan, re, eq + 1);
        free(re);
        if (rc) return -1;
    }
    return 0;
}

static int parse_type(const char *name, const char *what, sm_type *out) {
    *out = SM_TYPE_INVALID;
    if (!name) return 0;
    *out = sm_type_from_name(name);
    if (*out == SM_TYPE_INVALID || !sm_quantize_supported(*out))
        return sm_error("%s: unknown or unsupported type '%s'", what, name);
    return 0;
}

void cv_set_imatrix_keys(sm_meta *w, const char *path, const sm_imatrix *im) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    sm_meta_set_str(w, "quantize.imatrix.file", buf);
    if (im->n_datasets > 0) {
        snprintf(buf, sizeof buf, "%s", im->datasets[0]);
        sm_meta_set_str(w, "quantize.imatrix.dataset", buf);
    }
    sm_meta_set_u32(w, "quantize.imatrix.entries_count", (uint32_t)im->n_entries);
    if (im->chunk_count > 0) sm_meta_set_u32(w, "quantize.imatrix.chunks_count", (uint32_t)im->chunk_count);
}

int cv_llama_quantize_order(const char *x, const char *y) {
    int lx = -1, ly = -1;
    if (sscanf(x, "blk.%d.", &lx) != 1) lx = -1;
    if (sscanf(y, "blk.%d.", &ly) != 1) ly = -1;
    if (lx != ly) return lx < ly ? -1 : 1;
    return strcmp(x, y);
}

static const char *const *g_sort_names;
static int by_block_then_name(const void *a, const void *b) {
    return cv_llama_quantize_order(g_sort_names[*(const size_t *)a], g_sort_names[*(const size_t *)b]);
}

int sm_quantize_gguf(const char *in_path, const char *out_path, const sm_quantize_opts *o, sm_quantize_report *rep) {
    double t0 = sm_now();
    memset(rep, 0, sizeof *rep);
    const sm_recipe *recipe = sm_recipe_find(o->recipe ? o->recipe : "");
    if (!recipe) return sm_error("unknown quantization '%s' (one of: %s)", o->recipe ? o->recipe : "", sm_recipe_names());
    sm_imatrix im = {0};
    bool have_im = false;
    if (o->imatrix_path) {
        if (sm_imatrix_load(o->imatrix_path, &im)) return -1;
        have_im = true;
    }
    sm_gguf *g = NULL;
    sm_sink *w = NULL;
    sm_recipe_plan plan = {0};
    sm_type *types = NULL;
    const float **imws = NULL;
    const char **names = NULL;
    size_t *order = NULL;
    int rc = -1;
    if (sm_gguf_open(in_path, &g)) goto done;

    size_t nt = sm_gguf_n_tensors(g);
    names = calloc(nt ? nt : 1, sizeof *names);
    types = calloc(nt ? nt : 1, sizeof *types);
    imws = calloc(nt ? nt : 1, sizeof *imws); /* each tensor's importance rows, found once while planning */
    if (!names || !types || !imws) { sm_error("out of memory"); goto done; }
    for (size_t i = 0; i < nt; i++) names[i] = sm_gguf_tensor(g, i)->name;

    const char *arch = sm_gguf_get_str(g, "general.architecture");
    if (!arch) { sm_error("%s: general.architecture missing: not a model GGUF", in_path); goto done; }
    char key[128];
    uint64_t n_layer = 0, n_head = 0, n_head_kv = 0;
    snprintf(key, sizeof key, "%s.block_count", arch);
    if (sm_gguf_get_u64(g, key, &n_layer)) goto done;
    snprintf(key, sizeof key, "%s.attention.head_count", arch);
    if (sm_gguf_get_u64(g, key, &n_head)) goto done;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", arch);
    if (sm_gguf_get_u64(g, key, &n_head_kv)) n_head_kv = n_head;
    sm_clear_error();

    const sm_recipe_model rm = {arch, (int64_t)n_layer, (int64_t)n_head, (int64_t)n_head_kv, expert_count(g, arch)};
    if (sm_recipe_plan_begin(&plan, recipe, names, nt, &rm, have_im)) goto done;
    if (cv_recipe_configure(&plan, o)) goto done;

    /* plan every tensor; refuse what cannot be done before writing anything */
    uint64_t total = 0;
    for (size_t i = 0; i < nt; i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        bool fb = false;
        types[i] = sm_quantize_plan_type(&plan, t, o->plan_names, o->plan_types, o->n_plan, &fb);
        if (types[i] == SM_TYPE_INVALID) { sm_error_ctx("%s", in_path); goto done; }
        if (fb) rep->n_fallback++;
        const sm_type_info *src = sm_type_get(t->type);
        if (types[i] != t->type) {
            if (src->quantized && !o->allow_requantize) {
                sm_error("%s: tensor %s is already quantized (%s); requantizing loses accuracy, pass --allow-requantize",
                         in_path, t->name, src->name);
                goto done;
            }
            if (!src->quantized && t->type != SM_TYPE_F32 && t->type != SM_TYPE_F16 && t->type != SM_TYPE_BF16) {
                sm_error("%s: tensor %s has type %s, which cannot be quantized", in_path, t->name, src->name);
                goto done;
            }
            if (!sm_quantize_supported(types[i])) {
                sm_error("tensor %s: type %s is not supported by this build", t->name, sm_type_name(types[i]));
                goto done;
            }
            const float *imw = NULL;
            if (have_im && sm_type_get(types[i])->quantized &&
                sm_imatrix_for_experts(&im, o->imatrix_path, t->name, sm_tensor_row_len(t), sm_quantize_n_matrices(t), &imw))
                goto done;
            imws[i] = imw;
            if (sm_recipe_requires_imatrix(&plan, t->name, types[i]) && !imw) {
                sm_error("tensor %s: %s in %s needs an importance matrix (%s)", t->name, sm_type_name(types[i]),
                         recipe->name, have_im ? "the one given has no entry for it" : "--imatrix");
                goto done;
            }
        }
        total += t->nbytes;
        rep->n_params += sm_tensor_nelements(t);
    }

    order = malloc(sizeof *order * (nt ? nt : 1));
    if (!order) { sm_error("out of memory"); goto done; }
    if (!(w = sm_sink_open(out_path, &o->sink))) goto done;
    for (size_t k = 0; k < nt; k++) order[k] = k;
    g_sort_names = names; /* names are unique: the order is total, and qsort's instability moot */
    qsort(order, nt, sizeof *order, by_block_then_name);
    sm_meta_set_quantized(sm_sink_meta(w), g, (uint32_t)recipe->ftype);
    if (have_im) cv_set_imatrix_keys(sm_sink_meta(w), o->imatrix_path, &im);
    if (o->add_metadata) o->add_metadata(o->add_metadata_user, sm_sink_meta(w));
    for (size_t k = 0; k < nt; k++) {
        const size_t i = order[k];
        const sm_tensor *t = sm_gguf_tensor(g, i);
        if (sm_sink_add(w, t->name, types[i], t->n_dims, t->shape)) goto done;
    }
    if (sm_sink_begin(w)) goto done;

    sm_progress prog;
    sm_progress_begin(&prog, "quantize", total, o->quiet);
    uint64_t done_bytes = 0;
    for (size_t k = 0; k < nt; k++) {
        const size_t i = order[k];
        const sm_tensor *t = sm_gguf_tensor(g, i);
        sm_type to = types[i];
        rep->n_tensors++;
        rep->bytes_in += t->nbytes;
        /* an expert tensor's importance holds one row per expert (llama-imatrix's per-expert
         * counts); sm_quantize_write_tensor quantizes it one expert at a time */
        if (sm_quantize_write_tensor(w, g, t, to, imws[i], &prog, done_bytes)) goto done;
        rep->bytes_out += to == t->type ? t->nbytes : sm_type_row_bytes(to, sm_tensor_row_len(t)) * (uint64_t)sm_tensor_nrows(t);
        if (to != t->type) rep->n_quantized++;
        if ((int)to >= 0 && to < SM_TYPE_GGML_COUNT) rep->n_by_type[to]++;
        done_bytes += t->nbytes;
        sm_progress_update(&prog, done_bytes);
    }
    sm_progress_end(&prog);
    rc = sm_sink_finish(w);
done:
    sm_sink_close(w);
    if (g) sm_gguf_close(g);
    sm_recipe_plan_free(&plan);
    if (have_im) sm_imatrix_free(&im);
    free(names);
    free(types);
    free(imws);
    free(order);
    rep->seconds = sm_now() - t0;
    return rc;
}
