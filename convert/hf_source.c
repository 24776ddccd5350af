/* hf_source.c - a Hugging Face model directory read as the GGUF `smelt convert` would write of
 * it (weights in their own precision), without writing that GGUF: its tensors (names, types,
 * shapes, order), its metadata, and any tensor's bytes converted on demand in bounded chunks.
 * `smelt gptq DIR --to gguf:*` reads the directory through it. The bytes are those the
 * converted file holds, taken through the same type change as from that file. */
#include "convert_internal.h"

#include "quantize/quantize.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_FLOATS ((int64_t)4 << 20)

struct sm_hf_source {
    cv_source s;
    cv_plan p;
    sm_convert_opts o;
    sm_tensor *views; /* per item: name, type, shape; data NULL */
};

/* The next source tensor after tensor e of item *i (an expert stack has n_experts): its index in the
 * item, *i moved on past a finished item. */
static size_t it_next(const cv_item *it, size_t e, size_t *i) {
    if (it->n_experts && (int64_t)e + 1 < it->n_experts) return e + 1;
    ++*i;
    return 0;
}

/* smelt convert refuses NaN/Inf weights (unless --allow-nonfinite) before it writes anything:
 * the same check here, over every tensor before any work, in bounded pieces whose pages are
 * handed back as they are checked. */
static int check_finite(const sm_hf_source *h, const char *dir) {
    if (sm_allow_nonfinite()) return 0;
    for (size_t i = 0, e = 0; i < h->p.n; e = it_next(&h->p.items[i], e, &i)) {
        const cv_item *it = &h->p.items[i];
        const sm_tensor *t = it->n_experts ? it->experts[e] : it->src;
        if (!t || it->gptq[0] || sm_type_get(t->type)->quantized || !t->data) continue;
        const size_t es = sm_type_get(t->type)->block_bytes;
        const int64_t n = (int64_t)(t->nbytes / es), piece = (int64_t)(((uint64_t)16 << 20) / es);
        for (int64_t e0 = 0; e0 < n; e0 += piece) {
            const int64_t k = n - e0 < piece ? n - e0 : piece;
            const uint8_t *p = (const uint8_t *)t->data + (size_t)e0 * es;
            const int64_t bad = sm_first_nonfinite(t->type, p, k);
            sm_ckpt_release(h->s.ckpt, p, (uint64_t)k * es);
            if (bad >= 0) {
                sm_nonfinite_error(t->type, p + (size_t)bad * es, e0 + bad, t->n_dims < 2 ? 0 : sm_tensor_row_len(t));
                return sm_error_ctx("%s: tensor %s", dir, t->name);
            }
        }
    }
    return 0;
}

int sm_hf_source_open(const char *dir, sm_hf_source **out) {
    *out = NULL;
    sm_hf_source *h = calloc(1, sizeof *h);
    if (!h) return sm_error("out of memory");
    h->o.quiet = true;
    if (cv_source_open(dir, &h->o, &h->s)) {
        cv_source_close(&h->s);
        free(h);
        return -1;
    }
    /* the weights' own precision: F32 stays F32, BF16 stays BF16, F16 stays F16 (the first matrix's) */
    h->o.outtype = "f32";
    for (size_t i = 0; i < h->s.ckpt->n_tensors; i++)
        if (h->s.ckpt->tensors[i].n_dims >= 2) {
            if (h->s.ckpt->tensors[i].type == SM_TYPE_BF16) h->o.outtype = "bf16";
            else if (h->s.ckpt->tensors[i].type == SM_TYPE_F16) h->o.outtype = "f16";
            break;
        }
    if (cv_plan_build(&h->s, &h->o, &h->p)) {
        cv_source_close(&h->s);
        free(h);
        return -1;
    }
    h->views = calloc(h->p.n ? h->p.n : 1, sizeof *h->views);
    if (!h->views) {
        sm_hf_source_close(h);
        return sm_error("out of memory");
    }
    for (size_t i = 0; i < h->p.n; i++) {
        const cv_item *it = &h->p.items[i];
        sm_tensor *v = &h->views[i];
        v->name = it->name;
        v->type = it->type;
        v->n_dims = it->n_dims;
        memcpy(v->shape, it->shape, sizeof v->shape);
        v->nbytes = it->nbytes;
    }
    if (check_finite(h, dir)) {
        sm_hf_source_close(h);
        return -1;
    }
    *out = h;
    return 0;
}

void sm_hf_source_close(sm_hf_source *h) {
    if (!h) return;
    cv_plan_free(&h->p);
    cv_source_close(&h->s);
    free(h->views);
    free(h);
}

size_t sm_hf_source_n_tensors(const sm_hf_source *h) { return h->p.n; }
const sm_tensor *sm_hf_source_tensor(const sm_hf_source *h, size_t i) { return i < h->p.n ? &h->views[i] : NULL; }
const char *sm_hf_source_outtype(const sm_hf_source *h) { return h->o.outtype; }

void sm_hf_source_set_quantized_metadata(const sm_hf_source *h, sm_meta *w, uint32_t file_type) {
    cv_set_metadata(&h->s, &h->p, &h->o, w);
    sm_meta_set_quantization_keys(w, file_type); /* as sm_meta_set_quantized of the converted file */
}

/* Rows [r0, r0+n) of item `it` as the converted file holds them (its type, rope rows permuted). */
static int converted_rows(const sm_hf_source *h, const cv_item *it, int64_t r0, int64_t n, int64_t n_rows, int64_t elems,
                          uint8_t *dst) {
    const uint64_t out_row = sm_type_row_bytes(it->type, elems);
    if (it->n_experts) { /* a stack: row r is expert r's whole matrix */
        for (int64_t r = 0; r < n; r++) {
            cv_item one = *it;
            one.n_experts = 0;
            one.src = it->experts[r0 + r];
            if (converted_rows(h, &one, 0, 1, 1, elems, dst + (uint64_t)r * out_row)) return -1;
        }
        return 0;
    }
    if (!it->src) { /* generated (F32) */
        memcpy(dst, (const uint8_t *)it->gen + (uint64_t)r0 * out_row, (size_t)(out_row * (uint64_t)n));
        return 0;
    }
    const sm_tensor *t = it->src;
    const uint64_t in_row = (uint64_t)elems * sm_type_get(t->type)->block_bytes;
    for (int64_t r = 0; r < n; r++) {
        int64_t sr = r0 + r;
        if (it->permute_heads) {
            const int64_t d = n_rows / it->permute_heads, hh = sr / d, k = sr % d;
            sr = hh * d + (k & 1) * (d / 2) + k / 2;
        }
        const uint8_t *sp = (const uint8_t *)t->data + (uint64_t)sr * in_row;
        if (!sm_allow_nonfinite()) { /* smelt convert refuses them */
            const int64_t bad = sm_first_nonfinite(t->type, sp, elems);
            if (bad >= 0)
                return sm_nonfinite_error(t->type, sp + (size_t)bad * sm_type_get(t->type)->block_bytes, sr * elems + bad,
                                          t->n_dims < 2 ? 0 : elems);
        }
        if (t->type == it->type) memcpy(dst + (uint64_t)r * out_row, sp, (size_t)out_row);
        else if (cv_cast_row(t->type, sp, it->type, dst + (uint64_t)r * out_row, elems)) return -1;
    }
    sm_ckpt_release(h->s.ckpt, (const uint8_t *)t->data + (uint64_t)r0 * in_row, in_row * (uint64_t)n);
    return 0;
}

int sm_hf_source_write(sm_hf_source *h, sm_sink *w, size_t i, sm_type to) {
    if (i >= h->p.n) return sm_error("no tensor %zu", i);
    const cv_item *it = &h->p.items[i];
    if (it->gptq[0]) { /* an HF GPTQ linear: only as the converted file holds it */
        if (to != it->type)
            return sm_error("tensor %s is already quantized (%s)", it->name, sm_type_name(it->type));
        void *b = malloc((size_t)it->nbytes);
        int rc = !b ? sm_error("out of memory") : cv_gptq_fill(it, b);
        if (!rc) rc = sm_sink_write(w, b, it->nbytes);
        free(b);
        return rc ? sm_error_ctx("tensor %s", it->name) : 0;
    }
    const int64_t n_rows = it->n_dims ? it->shape[0] : 1;
    int64_t nel = 1;
    for (int d = 0; d < it->n_dims; d++) nel *= it->shape[d];
    const int64_t elems = n_rows ? nel / n_rows : 0;
    if (!n_rows || !elems) return 0;
    /* whole rope heads per chunk when permuting; the same rows as the converted file, then the
     * same type change as gptq makes from it (dequantize, then quantize without importance) */
    const int64_t unit = it->permute_heads ? n_rows / it->permute_heads : 1;
    int64_t chunk = CHUNK_FLOATS / (elems * unit);
    if (chunk < 1) chunk = 1;
    chunk *= unit;
    if (chunk > n_rows) chunk = n_rows;
    const uint64_t conv_row = sm_type_row_bytes(it->type, elems), out_row = sm_type_row_bytes(to, elems);
    uint8_t *conv = malloc((size_t)(conv_row * (uint64_t)chunk));
    float *f = to == it->type ? NULL : malloc(sizeof(float) * (size_t)(chunk * elems));
    uint8_t *q = to == it->type ? NULL : malloc((size_t)(out_row * (uint64_t)chunk));
    int rc = !conv || (to != it->type && (!f || !q)) ? sm_error("out of memory for tensor %s", it->name) : 0;
    const int64_t row_len = it->n_dims >= 2 ? it->shape[it->n_dims - 1] : elems, per_row = elems / row_len;
    for (int64_t r0 = 0; r0 < n_rows && !rc; r0 += chunk) {
        const int64_t n = n_rows - r0 < chunk ? n_rows - r0 : chunk;
        rc = converted_rows(h, it, r0, n, n_rows, elems, conv);
        if (!rc && to == it->type) {
            rc = sm_sink_write(w, conv, conv_row * (uint64_t)n);
            continue;
        }
        for (int64_t r = 0; r < n * per_row && !rc; r++)
            rc = sm_dequantize_row(it->type, conv + (uint64_t)r * sm_type_row_bytes(it->type, row_len), f + r * row_len,
                                   row_len);
        if (!rc) {
            if (!sm_type_get(to)->quantized) rc = sm_f32_to_plain(to, f, q, n * elems);
            else if (sm_quantize_rows(to, f, q, n * per_row, row_len, NULL) == 0) rc = -1;
        }
        if (!rc) rc = sm_sink_write(w, q, out_row * (uint64_t)n);
    }
    free(conv);
    free(f);
    free(q);
    return rc ? sm_error_ctx("tensor %s", it->name) : 0;
}
