/* convert.c - sm_convert: HF model directory or llama2.c checkpoint -> GGUF.
 *
 * open the source -> plan every tensor -> metadata (general.*, the architecture's keys,
 * tokenizer) -> declare tensors -> begin -> stream tensor by tensor -> atomic finish.
 * Metadata keys and their order follow llama.cpp's convert_hf_to_gguf.py: general.architecture,
 * general.type, general.name, general.version, .organization, .finetune, .basename (model_name.c),
 * general.size_label, the <arch>.* keys, general.file_type,
 * general.quantization_version, tokenizer.ggml.*. */
#include "convert_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GGML_QUANT_VERSION 2

void cv_set_metadata(const cv_source *s, const cv_plan *p, const sm_convert_opts *o, sm_meta *w) {
    char label[48];
    sm_meta_set_str(w, "general.architecture", s->hp.arch);
    if (s->longrope[0]) { /* Phi3MiniModel writes it while preparing the tensors, before general.type */
        char k[64];
        snprintf(k, sizeof k, "%s.rope.scaling.attn_factor", s->hp.arch);
        sm_meta_set_f32(w, k, s->hp.rope_attn_factor);
    }
    sm_meta_set_str(w, "general.type", "model");
    sm_meta_set_str(w, "general.name", s->name);
    /* gguf-py's size_label: with expert stacks (*_exps.), "<experts>x<shared + one expert's params>" */
    int64_t shared = 0, per_expert = 0, expert_sum = 0, n_stacks = 0, total = 0;
    for (size_t i = 0; i < p->n; i++) {
        int64_t n = 1;
        for (int d = 0; d < p->items[i].n_dims; d++) n *= p->items[i].shape[d];
        total += n;
        if (strstr(p->items[i].name, "_exps.") && p->items[i].n_dims >= 3) {
            per_expert += n / p->items[i].shape[0];
            expert_sum += p->items[i].shape[0];
            n_stacks++;
        } else {
            shared += n;
        }
    }
    /* general.version, .organization, .finetune, .basename, then .size_label, in Metadata.set_gguf_meta_model's
     * order, from _name_or_path and the directory's name (model_name.c; out of memory: none of them) */
    cv_model_id m = {0};
    if (!s->llama2c && !cv_model_meta(s->name_or_path, s->dir_name, total, &m)) {
        if (m.version) sm_meta_set_str(w, "general.version", m.version);
        if (m.organization) sm_meta_set_str(w, "general.organization", m.organization);
        if (m.finetune) sm_meta_set_str(w, "general.finetune", m.finetune);
        if (m.basename) sm_meta_set_str(w, "general.basename", m.basename);
    }
    if (n_stacks) {
        char sz[24];
        cv_size_label(shared + per_expert, sz, sizeof sz);
        snprintf(label, sizeof label, "%lldx%s", (long long)(expert_sum / n_stacks), sz);
    } else {
        cv_size_label(p->n_params, label, sizeof label);
    }
    sm_meta_set_str(w, "general.size_label", m.size_label ? m.size_label : label);
    cv_model_id_free(&m);
    sm_hparams_to_meta_ftype(&s->hp, p->ftype, w);
    sm_meta_set_u32(w, "general.quantization_version", GGML_QUANT_VERSION);
    sm_vocab_to_meta(&s->vocab, w);
    if (o->quant) { /* what llama-quantize makes of the converted file: these two keys move last */
        sm_meta_set_quantization_keys(w, (uint32_t)p->ftype);
    }
    if (p->im) cv_set_imatrix_keys(w, o->quant->imatrix_path, p->im);
}

static int by_llama_quantize_order(const void *a, const void *b) {
    return cv_llama_quantize_order(((const cv_item *)a)->name, ((const cv_item *)b)->name);
}

static int write_all(const cv_source *s, const cv_plan *p, const char *out_path, const sm_convert_opts *o,
                     sm_convert_report *rep) {
    sm_sink *w = sm_sink_open(out_path, &o->sink);
    if (!w) return -1;
    cv_set_metadata(s, p, o, sm_sink_meta(w));
    int rc = 0;
    for (size_t i = 0; !rc && i < p->n; i++)
        rc = sm_sink_add(w, p->items[i].name, p->items[i].type, p->items[i].n_dims, p->items[i].shape);
    if (rc || sm_sink_begin(w)) {
        sm_sink_close(w);
        return -1;
    }
    sm_progress prog;
    sm_progress_begin(&prog, "convert", p->bytes_in, o->quiet);
    cv_io *io = cv_io_new(w, &prog);
    rc = io ? 0 : -1;
    for (size_t i = 0; !rc && i < p->n; i++)
        if ((rc = cv_write_item(io, &p->items[i]))) sm_error_ctx("%s: writing tensor %s", out_path, p->items[i].name);
    if (io) {
        char *first = rc ? strdup(sm_last_error()) : NULL;
        int frc = cv_io_finish(io); /* the writer's own failure, if any, is the one to report */
        if (rc && !frc && first) sm_error("%s", first);
        free(first);
        rc = rc || frc ? -1 : 0;
    }
    sm_progress_end(&prog);
    if (!rc) rc = sm_sink_finish(w);
    if (!rc && rep) {
        rep->bytes_out = 0;
        struct stat st;
        for (size_t i = 0; i < sm_sink_n_files(w); i++)
            if (stat(sm_sink_file(w, i), &st) == 0) rep->bytes_out += (uint64_t)st.st_size;
    }
    sm_sink_close(w);
    return rc;
}

int sm_convert(const char *model_path, const char *out_path, const sm_convert_opts *opts, sm_convert_report *rep) {
    double t0 = sm_now();
    if (rep) memset(rep, 0, sizeof *rep);
    sm_convert_opts def = {0};
    const sm_convert_opts *o = opts ? opts : &def;
    cv_source s;
    if (cv_source_open(model_path, o, &s)) {
        cv_source_close(&s);
        return -1;
    }
    cv_plan p;
    if (cv_plan_build(&s, o, &p)) {
        cv_source_close(&s);
        return -1;
    }
    /* quantizing in one pass: the tensors in llama-quantize's order, as after convert + quantize */
    if (o->quant) qsort(p.items, p.n, sizeof *p.items, by_llama_quantize_order);
    int rc = write_all(&s, &p, out_path, o, rep);
    if (!rc && rep) {
        rep->n_tensors = (int64_t)p.n;
        rep->n_params = p.n_params;
        rep->bytes_in = p.bytes_in;
        rep->outtype = p.outtype;
        rep->n_fallback = p.n_fallback;
        for (size_t i = 0; i < p.n; i++) {
            const sm_type t = p.items[i].type;
            rep->n_quantized += sm_type_get(t)->quantized;
            rep->tensor_bytes += p.items[i].nbytes;
            if ((int)t >= 0 && t < SM_TYPE_GGML_COUNT) rep->n_by_type[t]++;
            if (!p.items[i].gptq[0]) continue;
            rep->n_gptq++;
            rep->n_gptq_transcoded += p.items[i].gptq_transcoded;
            rep->n_gptq_dequantized += !p.items[i].gptq_transcoded;
            if (p.items[i].gptq_err > rep->gptq_max_err) rep->gptq_max_err = p.items[i].gptq_err;
        }
        rep->seconds = sm_now() - t0;
    }
    cv_plan_free(&p);
    cv_source_close(&s);
    return rc;
}
