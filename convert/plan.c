/* plan.c - decide every output tensor before a byte is written: its GGUF name, type, shape
 * and row permutation; and check the checkpoint against the configuration (every expected
 * tensor present once, with the shape config.json implies, nothing unexpected).
 *
 * Output types follow llama.cpp's convert_hf_to_gguf.py (ModelBase.prepare_tensors):
 * 1-D tensors, norms and anything not named *.weight stay F32; other tensors take the
 * output type; a q8_0 tensor whose rows are not whole 32-element blocks falls back to F16
 * (gguf-py's QuantError fallback). "auto" is the converter's heuristic: the dtype of the first
 * tensor with two or more dimensions, bf16 -> bf16, f16 -> f16, anything else -> f16. */
#include "convert_internal.h"

#include "calib/calib.h"
#include "quantize/quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct expected {
    char name[64];
    int n_dims;
    int64_t shape[SM_MAX_DIMS];
    const char *seen_as; /* source name that provided it */
} expected;

static int cmp_expected(const void *a, const void *b) {
    return strcmp(((const expected *)a)->name, ((const expected *)b)->name);
}

static const char *shape_of(int n_dims, const int64_t *shape, char *buf, size_t cap) {
    sm_tensor t = {.n_dims = n_dims};
    memcpy(t.shape, shape, sizeof t.shape);
    return sm_shape_str(&t, buf, cap);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !memcmp(s + a - b, suffix, b);
}

static sm_type resolve_outtype(const cv_source *s, const char *outtype) {
    if (outtype && strcmp(outtype, "auto") != 0) {
        sm_type t = sm_type_from_name(outtype);
        if (t == SM_TYPE_F32 || t == SM_TYPE_F16 || t == SM_TYPE_BF16 || t == SM_TYPE_Q8_0) return t;
        sm_error("--outtype %s: expected f32, f16, bf16, q8_0 or auto", outtype);
        return SM_TYPE_INVALID;
    }
    for (size_t i = 0; i < s->ckpt->n_tensors; i++) {
        const sm_tensor *t = &s->ckpt->tensors[i];
        if (t->n_dims < 2) continue;
        return t->type == SM_TYPE_BF16 ? SM_TYPE_BF16 : SM_TYPE_F16;
    }
    return SM_TYPE_F16;
}

static bool convertible(sm_type t) {
    switch (t) {
    case SM_TYPE_F32: case SM_TYPE_F16: case SM_TYPE_BF16: case SM_TYPE_F64: case SM_TYPE_F8_E4M3:
    case SM_TYPE_F8_E5M2:
        return true;
    default:
        return false;
    }
}

/* The type a tensor gets in the output. */
static sm_type item_type(const char *name, int n_dims, int64_t row_len, sm_type outtype, int map_flags) {
    if (n_dims <= 1 || (map_flags & SM_MAP_KEEP_F32) || ends_with(name, "_norm.weight") || !ends_with(name, ".weight"))
        return SM_TYPE_F32;
    if (outtype == SM_TYPE_Q8_0 && row_len % 32) return SM_TYPE_F16;
    return outtype;
}

static int finish_item(cv_plan *p, cv_item *it) {
    int64_t n = 1;
    for (int d = 0; d < it->n_dims; d++) n *= it->shape[d];
    int64_t row = it->n_dims ? it->shape[it->n_dims - 1] : 1;
    it->nbytes = sm_type_row_bytes(it->type, row) * (uint64_t)(row ? n / row : 0);
    p->n_params += n;
    return 0;
}

/* Re-type the planned tensors with a quantization recipe (llama.cpp's mixture rules, user
 * overrides, fallbacks) and attach importance weights. */
static int apply_recipe(const cv_source *s, const sm_quantize_opts *q, cv_plan *p) {
    const sm_recipe *r = sm_recipe_find(q->recipe ? q->recipe : "");
    if (!r) return sm_error("unknown quantization '%s' (one of: %s)", q->recipe ? q->recipe : "", sm_recipe_names());
    if (q->imatrix_path) {
        p->im = calloc(1, sizeof *p->im);
        if (!p->im) return sm_error("out of memory");
        if (sm_imatrix_load(q->imatrix_path, p->im)) {
            free(p->im);
            p->im = NULL;
            return -1;
        }
    }
    const char **names = calloc(p->n ? p->n : 1, sizeof *names);
    if (!names) return sm_error("out of memory");
    for (size_t i = 0; i < p->n; i++) names[i] = p->items[i].name;
    sm_recipe_plan rp;
    const sm_recipe_model rm = {s->hp.arch, s->hp.n_layer, s->hp.n_head, s->hp.n_head_kv, s->hp.n_expert};
    int rc = sm_recipe_plan_begin(&rp, r, names, p->n, &rm, p->im != NULL);
    free(names);
    if (rc) return -1;
    rc = cv_recipe_configure(&rp, q);
    for (size_t i = 0; !rc && i < p->n; i++) {
        cv_item *it = &p->items[i];
        if (!it->src && !it->n_experts) continue; /* generated tensors stay F32 */
        bool fb = false;
        sm_type t = sm_recipe_tensor_type(&rp, it->name, it->n_dims, it->shape, SM_TYPE_F32, &fb);
        p->n_fallback += fb;
        if (!sm_quantize_supported(t)) { rc = sm_error("tensor %s: type %s is not supported", it->name, sm_type_name(t)); break; }
        if (p->im && sm_type_get(t)->quantized &&
            sm_imatrix_for_tensor(p->im, q->imatrix_path, it->name, it->shape[it->n_dims - 1], &it->imatrix)) {
            rc = -1;
            break;
        }
        if (!it->imatrix && sm_recipe_requires_imatrix(&rp, it->name, t)) {
            rc = sm_error("tensor %s: %s in %s needs an importance matrix (--imatrix)", it->name, sm_type_name(t), r->name);
            break;
        }
        it->type = t;
        int64_t n = 1;
        for (int d = 0; d < it->n_dims; d++) n *= it->shape[d];
        int64_t row = it->shape[it->n_dims - 1];
        it->nbytes = sm_type_row_bytes(t, row) * (uint64_t)(n / row);
    }
    sm_recipe_plan_free(&rp);
    p->ftype = r->ftype;
    return rc;
}

/* ---- mixtures of experts: one GGUF tensor [n_expert, rows, cols] per layer and matrix, stacked from
 * the experts' own tensors. As llama.cpp's converters do (LlamaModel / Qwen2MoeModel.modify_tensors),
 * a layer's three stacks come out where the last of its expert tensors is in the checkpoint's order,
 * in the order of their HF names (w1, w2, w3; down_proj, gate_proj, up_proj). Only the sources are
 * recorded here: the writer streams them one after the other (bounded by its chunk buffers). */

typedef struct moe_plan {
    sm_moe_stack rows[3]; /* the model's stacks, in HF-name order */
    int64_t *seen;        /* per layer: expert tensors seen */
} moe_plan;

static int moe_begin(const sm_hparams *hp, cv_plan *p, moe_plan *mp) {
    if (!(hp->features & SM_FEAT_MOE)) return 0;
    if (sm_moe_stacks(hp, mp->rows)) return -1;
    mp->seen = calloc((size_t)hp->n_layer, sizeof *mp->seen);
    p->expert_src = calloc((size_t)(hp->n_layer * 3 * hp->n_expert), sizeof *p->expert_src);
    return mp->seen && p->expert_src ? 0 : sm_error("out of memory");
}

/* The HF name of expert e of stack row r in layer l. */
static void expert_hf_name(const sm_moe_stack *r, int64_t l, int64_t e, char *out, size_t cap) {
    const char *star = strchr(r->hf, '*');
    snprintf(out, cap, "model.layers.%lld.%.*s%lld%s.weight", (long long)l, (int)(star - r->hf), r->hf, (long long)e,
             star + 1);
}

/* Checkpoint tensor t is expert (flags >> SM_MAP_EXPERT_SHIFT) of the stack `gguf`: recorded; the
 * layer's last one emits its three stacks. */
static int moe_add(const cv_source *s, const sm_convert_opts *o, cv_plan *p, moe_plan *mp, const sm_tensor *t,
                   const char *gguf, int flags, expected *exp, size_t n_exp) {
    const sm_hparams *hp = &s->hp;
    const char *path = s->ckpt->path;
    const int64_t NE = hp->n_expert, e = flags >> SM_MAP_EXPERT_SHIFT;
    long long l = -1;
    int k = -1, off = 0;
    if (sscanf(gguf, "blk.%lld.%n", &l, &off) != 1 || l < 0 || l >= hp->n_layer) return sm_error("internal: %s", gguf);
    for (int i = 0; i < 3; i++)
        if (!strncmp(gguf + off, mp->rows[i].gguf, strlen(mp->rows[i].gguf)) &&
            !strcmp(gguf + off + strlen(mp->rows[i].gguf), ".weight"))
            k = i;
    if (k < 0) return sm_error("internal: %s is no expert stack", gguf);
    const sm_moe_stack *r = &mp->rows[k];
    const sm_tensor **slot = &p->expert_src[(l * 3 + k) * NE + e];
    if (*slot) return sm_error("%s: tensors \"%s\" and \"%s\" are both expert %lld of %s", path, (*slot)->name, t->name,
                               (long long)e, gguf);
    const int64_t rows = r->rows, cols = r->cols;
    char b1[96], b2[96];
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
        return sm_error("%s: tensor \"%s\" has shape %s, but the configuration implies %s", path, t->name,
                        sm_shape_str(t, b1, sizeof b1), shape_of(2, (const int64_t[SM_MAX_DIMS]){rows, cols}, b2, sizeof b2));
    if (!convertible(t->type))
        return sm_error("%s: tensor \"%s\" has dtype %s; only floating-point weights can be converted", path, t->name,
                        sm_type_name(t->type));
    if (t->nbytes != (uint64_t)sm_tensor_nelements(t) * sm_type_get(t->type)->block_bytes)
        return sm_error("%s: tensor \"%s\": %llu bytes of data for %s %s", path, t->name, (unsigned long long)t->nbytes,
                        sm_type_name(t->type), sm_shape_str(t, b1, sizeof b1));
    if (o->n_loras && sm_lora_touches(o->loras, o->n_loras, t->name))
        return sm_error("%s: tensor \"%s\": LoRA adapters on expert tensors are not supported", path, t->name);
    *slot = t;
    p->bytes_in += t->nbytes;
    if (++mp->seen[l] < 3 * NE) return 0;
    for (int i = 0; i < 3; i++) {
        cv_item *it = &p->items[p->n];
        snprintf(it->name, sizeof it->name, "blk.%lld.%s.weight", l, mp->rows[i].gguf);
        expected key;
        snprintf(key.name, sizeof key.name, "%s", it->name);
        expected *x = bsearch(&key, exp, n_exp, sizeof *exp, cmp_expected);
        if (!x) return sm_error("internal: %s is not expected", it->name);
        it->experts = &p->expert_src[(l * 3 + i) * NE];
        x->seen_as = it->experts[0]->name;
        it->n_experts = NE;
        it->n_dims = 3;
        it->shape[0] = NE;
        it->shape[1] = mp->rows[i].rows;
        it->shape[2] = mp->rows[i].cols;
        it->type = item_type(it->name, 3, it->shape[2], p->outtype, 0);
        finish_item(p, it);
        p->n++;
    }
    return 0;
}

/* Every expert of every layer present (the first missing one named). */
static int moe_check(const cv_source *s, const cv_plan *p, const moe_plan *mp) {
    const sm_hparams *hp = &s->hp;
    for (int64_t l = 0; mp->seen && l < hp->n_layer; l++)
        for (int k = 0; k < 3 && mp->seen[l] < 3 * hp->n_expert; k++)
            for (int64_t e = 0; e < hp->n_expert; e++)
                if (!p->expert_src[(l * 3 + k) * hp->n_expert + e]) {
                    char hf[160];
                    expert_hf_name(&mp->rows[k], l, e, hf, sizeof hf);
                    return sm_error("%s: missing tensor \"%s\" (expert %lld of blk.%lld.%s.weight)", s->ckpt->path, hf,
                                    (long long)e, (long long)l, mp->rows[k].gguf);
                }
    return 0;
}

int cv_plan_build(const cv_source *s, const sm_convert_opts *o, cv_plan *p) {
    memset(p, 0, sizeof *p);
    moe_plan mp;
    memset(&mp, 0, sizeof mp);
    const sm_hparams *hp = &s->hp;
    const sm_ckpt *c = s->ckpt;
    p->outtype = resolve_outtype(s, o->quant ? "f32" : o->outtype);
    if (p->outtype == SM_TYPE_INVALID) return -1;
    p->ftype = sm_ftype_for_type(p->outtype);
    if (o->n_loras) {
        if (s->llama2c) return sm_error("LoRA adapters apply to Hugging Face checkpoints, not llama2.c files");
        if (sm_lora_check(o->loras, o->n_loras, c)) return -1;
    }

    size_t n_vision = 0; /* a vision-language checkpoint's vision tower and projector, skipped */
    /* what the configuration implies */
    size_t n_exp = 0;
    for (;;) {
        char name[64];
        int nd;
        int64_t shape[SM_MAX_DIMS];
        int r = sm_arch_tensor(hp, n_exp, name, sizeof name, &nd, shape);
        if (r < 0) return -1;
        if (r == 0) break;
        n_exp++;
    }
    expected *exp = calloc(n_exp ? n_exp : 1, sizeof *exp);
    p->items = calloc(c->n_tensors + 3, sizeof *p->items);
    if (!exp || !p->items) {
        free(exp);
        return sm_error("out of memory");
    }
    for (size_t i = 0; i < n_exp; i++)
        sm_arch_tensor(hp, i, exp[i].name, sizeof exp[i].name, &exp[i].n_dims, exp[i].shape);
    qsort(exp, n_exp, sizeof *exp, cmp_expected);

    /* llama3 rope scaling: llama.cpp reads the frequency factors from a generated tensor,
     * which its converter emits before the checkpoint's tensors */
    if (!strcmp(hp->rope_scaling_type, "llama3")) {
        int64_t n = hp->head_dim / 2;
        p->rope_freqs = malloc((size_t)n * sizeof(float));
        if (!p->rope_freqs) goto oom;
        if (sm_rope_llama3_factors(hp, p->rope_freqs, n)) goto fail;
        cv_item *it = &p->items[p->n++];
        snprintf(it->name, sizeof it->name, "rope_freqs.weight");
        it->gen = p->rope_freqs;
        it->type = SM_TYPE_F32;
        it->n_dims = 1;
        it->shape[0] = n;
        finish_item(p, it);
    }
    /* longrope (Phi3MiniModel.generate_extra_tensors): the long, then the short factors */
    for (int i = 0; i < 2 && s->longrope[i]; i++) {
        cv_item *it = &p->items[p->n++];
        snprintf(it->name, sizeof it->name, i ? "rope_factors_short.weight" : "rope_factors_long.weight");
        it->gen = s->longrope[i];
        it->type = SM_TYPE_F32;
        it->n_dims = 1;
        it->shape[0] = (hp->n_rot ? hp->n_rot : hp->head_dim) / 2;
        finish_item(p, it);
    }

    if (moe_begin(hp, p, &mp)) goto fail;
    char b1[96], b2[96];
    for (size_t i = 0; i < c->n_tensors; i++) {
        const sm_tensor *t = &c->tensors[i];
        cv_item *it = &p->items[p->n];
        int flags = 0;
        const int gq = s->gptq ? cv_gptq_part(t->name) : 0;
        if (gq == 2) continue; /* written with its qweight */
        if (gq == 1) {
            if (o->quant || o->n_loras) {
                sm_error("%s: a GPTQ checkpoint can be converted, not requantized or merged with LoRA adapters",
                         c->path);
                goto fail;
            }
            if (cv_gptq_plan_item(s, t, p->outtype, o->gptq_dequantize, it, &flags)) goto fail;
            if (flags & SM_MAP_EXPERT) {
                sm_error("%s: tensor \"%s\": GPTQ-quantized experts are not supported", c->path, t->name);
                goto fail;
            }
        } else if (s->llama2c) {
            snprintf(it->name, sizeof it->name, "%s", t->name); /* already GGUF names and layout */
        } else {
            int r = sm_map_hf_name(hp, t->name, it->name, sizeof it->name, &flags);
            if (r < 0) {
                sm_error_ctx("%s", c->path);
                goto fail;
            }
            if (r == 0) {
                n_vision += sm_is_vision_tensor(hp, t->name);
                continue;
            }
            if (flags & SM_MAP_EXPERT) {
                char stack[64];
                snprintf(stack, sizeof stack, "%s", it->name);
                it->name[0] = 0; /* the slot takes the stacks (or the next tensor) */
                if (moe_add(s, o, p, &mp, t, stack, flags, exp, n_exp)) goto fail;
                continue;
            }
        }
        expected key;
        snprintf(key.name, sizeof key.name, "%s", it->name);
        expected *e = bsearch(&key, exp, n_exp, sizeof *exp, cmp_expected);
        if (!e) {
            sm_error("%s: tensor \"%s\" (%s) is not part of a %s model with this configuration", c->path, t->name,
                     it->name, hp->hf_arch[0] ? hp->hf_arch : hp->arch);
            goto fail;
        }
        if (e->seen_as) {
            sm_error("%s: tensors \"%s\" and \"%s\" both map to %s", c->path, e->seen_as, t->name, it->name);
            goto fail;
        }
        e->seen_as = t->name;
        const int n_dims = gq ? it->n_dims : t->n_dims;
        const int64_t *shape = gq ? it->shape : t->shape;
        bool same = n_dims == e->n_dims;
        for (int d = 0; same && d < n_dims; d++) same = shape[d] == e->shape[d];
        if (!same) {
            sm_tensor st = {.n_dims = n_dims};
            memcpy(st.shape, shape, sizeof st.shape);
            sm_error("%s: tensor \"%s\" has shape %s, but the configuration implies %s", c->path, t->name,
                     sm_shape_str(&st, b1, sizeof b1), shape_of(e->n_dims, e->shape, b2, sizeof b2));
            goto fail;
        }
        if (gq) { /* a GPTQ linear: planned by cv_gptq_plan_item */
            if (flags & SM_MAP_PERMUTE_Q) it->permute_heads = hp->n_head;
            if (flags & SM_MAP_PERMUTE_K) it->permute_heads = hp->n_head_kv;
            if (it->permute_heads && (shape[0] % (2 * it->permute_heads))) {
                sm_error("%s: tensor \"%s\": %lld rows do not split into %lld rope heads", c->path, t->name,
                         (long long)shape[0], (long long)it->permute_heads);
                goto fail;
            }
            for (int k = 0; k < 4; k++) p->bytes_in += it->gptq[k] ? it->gptq[k]->nbytes : 0;
            finish_item(p, it);
            p->n++;
            continue;
        }
        if (!convertible(t->type)) {
            sm_error("%s: tensor \"%s\" has dtype %s; only floating-point weights can be converted", c->path, t->name,
                     sm_type_name(t->type));
            goto fail;
        }
        const sm_type_info *ti = sm_type_get(t->type);
        if (t->nbytes != (uint64_t)sm_tensor_nelements(t) * ti->block_bytes) {
            sm_error("%s: tensor \"%s\": %llu bytes of data for %s %s", c->path, t->name,
                     (unsigned long long)t->nbytes, sm_type_name(t->type), sm_shape_str(t, b1, sizeof b1));
            goto fail;
        }
        it->src = t;
        if (o->n_loras) {
            const sm_tensor *rep = sm_lora_replacement(o->loras, o->n_loras, t->name);
            if (rep) it->src = rep; /* modules_to_save: the adapter's own copy */
            else if (sm_lora_touches(o->loras, o->n_loras, t->name)) {
                it->loras = o->loras;
                it->n_loras = o->n_loras;
            }
        }
        it->n_dims = t->n_dims;
        memcpy(it->shape, t->shape, sizeof it->shape);
        it->type = item_type(it->name, t->n_dims, sm_tensor_row_len(t), p->outtype, flags);
        if (flags & SM_MAP_PERMUTE_Q) it->permute_heads = hp->n_head;
        if (flags & SM_MAP_PERMUTE_K) it->permute_heads = hp->n_head_kv;
        if (it->permute_heads && (t->shape[0] % (2 * it->permute_heads))) {
            sm_error("%s: tensor \"%s\": %lld rows do not split into %lld rope heads", c->path, t->name,
                     (long long)t->shape[0], (long long)it->permute_heads);
            goto fail;
        }
        if ((flags & SM_MAP_NORM_SHIFT) && it->src == t) {
            /* w + 1 in the source dtype, as llama.cpp's Gemma converters compute it (torch), stored F32 */
            const int64_t ne = sm_tensor_nelements(t);
            if (!sm_allow_nonfinite()) {
                const int64_t bad = sm_first_nonfinite(t->type, t->data, ne);
                if (bad >= 0) {
                    sm_nonfinite_error(t->type, (const uint8_t *)t->data + (size_t)bad * ti->block_bytes, bad, 0);
                    sm_error_ctx("%s: tensor %s", c->path, t->name);
                    goto fail;
                }
            }
            it->owned_gen = malloc(sizeof(float) * (size_t)(ne ? ne : 1));
            if (!it->owned_gen) goto oom;
            if (sm_norm_shift_to_f32(t->type, t->data, it->owned_gen, ne)) {
                free(it->owned_gen);
                it->owned_gen = NULL;
                sm_error_ctx("%s: tensor %s", c->path, t->name);
                goto fail;
            }
            it->gen = it->owned_gen;
            it->src = NULL;
            it->type = SM_TYPE_F32;
        }
        p->bytes_in += t->nbytes;
        finish_item(p, it);
        p->n++;
    }
    if (moe_check(s, p, &mp)) goto fail;
    for (size_t i = 0; i < n_exp; i++)
        if (!exp[i].seen_as) {
            char hf[96];
            if (!s->llama2c && sm_map_gguf_name(hp, exp[i].name, hf, sizeof hf))
                sm_error("%s: missing tensor \"%s\" (%s)", c->path, hf, exp[i].name);
            else
                sm_error("%s: missing tensor %s", c->path, exp[i].name);
            goto fail;
        }
    /* GPTQ linears repacked into Q4_0 / Q8_0 / Q4_1 blocks: the file is "mostly" that type */
    sm_type gq_type = SM_TYPE_INVALID;
    bool uniform = true;
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i].gptq[0]) {
            if (gq_type == SM_TYPE_INVALID) gq_type = p->items[i].type;
            uniform &= p->items[i].type == gq_type;
        }
    if (uniform && gq_type == SM_TYPE_Q4_0) p->ftype = 2;
    if (uniform && gq_type == SM_TYPE_Q8_0) p->ftype = 7;
    if (uniform && gq_type == SM_TYPE_Q4_1) p->ftype = 3;
    if (n_vision && !o->quiet)
        fprintf(stderr, "note: %s: %zu vision-tower / projector tensors skipped: the GGUF holds the text model "
                        "(llama.cpp keeps the vision part in a separate mmproj file)\n", c->path, n_vision);
    free(exp);
    free(mp.seen);
    if (o->quant && apply_recipe(s, o->quant, p)) {
        cv_plan_free(p);
        return -1;
    }
    return 0;
oom:
    sm_error("out of memory");
fail:
    free(exp);
    free(mp.seen);
    cv_plan_free(p);
    return -1;
}

void cv_plan_free(cv_plan *p) {
    if (p->im) {
        sm_imatrix_free(p->im);
        free(p->im);
    }
    for (size_t i = 0; p->items && i < p->n; i++) free(p->items[i].owned_gen);
    free(p->items);
    free(p->rope_freqs);
    free(p->expert_src);
    memset(p, 0, sizeof *p);
}
