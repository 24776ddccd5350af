/* cmd_gptq.c - `smelt gptq MODEL --calib F --to TARGET -o OUT`: GPTQ quantization, one decoder
 * block at a time over a calibration set, into a GGUF (a recipe's types on GPTQ grids) or a
 * Hugging Face GPTQ checkpoint. */
#include "cli.h"

#include "release/release.h"

#include "calib/calib.h"
#include "convert/convert.h"
#include "formats/formats.h"
#include "mixture.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "quantize/quantize.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static const char USAGE[] =
    "usage: smelt gptq MODEL --calib FILE --to TARGET -o OUT [options]\n"
    "\n"
    "GPTQ (Frantar et al.) over a whole model, one decoder block at a time: the calibration\n"
    "samples' activations go through block 0, its linears are quantized in true-sequential\n"
    "order (q,k,v -> o -> gate,up -> down, each group against the Hessian of its inputs as the\n"
    "already-quantized linears before it produce them), and the quantized block's outputs feed\n"
    "block 1, and so on. Memory: samples x seqlen x hidden floats plus one block.\n"
    "\n"
    "MODEL: a Hugging Face directory or (targets gguf:* only) an F32/F16/BF16 GGUF. For a GGUF\n"
    "target a directory is read as the GGUF smelt convert writes of it (weights in their own\n"
    "precision), with the same result, but without writing that copy.\n"
    "OUT must not be MODEL or the calibration file, nor lie inside MODEL. --to hf: an existing\n"
    "OUT directory is replaced (atomically) only if it holds nothing but files smelt writes there.\n"
    "\n"
    "targets (--to):\n"
    "  gguf:RECIPE         an ordinary GGUF; RECIPE as in smelt quantize (Q4_K_M, Q4_0, Q8_0...)\n"
    "                      gives every tensor its type by llama.cpp's rules; block linears of\n"
    "                      type Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q2_K/Q3_K/Q4_K/Q5_K/Q6_K/IQ4_NL/IQ4_XS are\n"
    "                      GPTQ-quantized on that type's grid, others rounded to nearest with\n"
    "                      diag(H) as importance;\n"
    "                      (the i-quants IQ1_S..IQ3_S, TQ1_0/TQ2_0 and MXFP4 have no GPTQ grid: their\n"
    "                      tensors fall back to that importance-weighted rounding; --json: \"method\")\n"
    "                      embedding and output head as smelt quantize does them\n"
    "  gguf                with --target-bpw / --target-size: a size-targeted mixture, each\n"
    "                      tensor's type chosen as smelt quantize --target-bpw chooses it (per-tensor\n"
    "                      KLD sensitivities on the calibration text; the table is printed and\n"
    "                      kept in smelt.mixture.*), then GPTQ on those types' grids\n"
    "  hf                  a Hugging Face GPTQ checkpoint directory (qweight/qzeros/scales/g_idx,\n"
    "                      format \"gptq\"; other tensors F16; config.json quantization_config,\n"
    "                      with how it was made in its \"smelt\" object: calibration file and\n"
    "                      its xxHash64, samples, seqlen, seed, damp, ...; loaders ignore it)\n"
    "\n"
    "calibration:\n"
    "  --calib FILE, -f    calibration text (tokenized whole, BOS first when the vocabulary adds\n"
    "                      one); every sample starts with BOS, as llama-imatrix's chunks do\n"
    "  --samples N         samples (default 128)\n"
    "  --seqlen N          tokens per sample (default 2048, at most the model's context length)\n"
    "  --in-order          consecutive chunks of the text (llama-imatrix's cut) instead of random\n"
    "                      windows (GPTQ's sampling; may overlap)\n"
    "  --seed N            random windows' seed (default 0)\n"
    "\n"
    "GPTQ:\n"
    "  --bits N            hf: 2, 3, 4 or 8 (default 4)\n"
    "  --group N           hf: columns per group (default 128; -1: one group per row; also\n"
    "                      --group-size)\n"
    "  --act-order         hf: columns in order of decreasing diag(H) (desc_act)\n"
    "  --sym | --asym      hf: symmetric (default) or asymmetric grid\n"
    "  --static-groups     hf: group parameters fitted before GPTQ updates the weights\n"
    "  --damp X            dampening, X * mean(diag H) added to the diagonal (default 0.01)\n"
    "  --block N           lazy-batch width in columns (default 128)\n"
    "  --target-bpw B      gguf: a mixture of B bits per weight (see gguf above)\n"
    "  --target-size S     gguf: a mixture for a file of S bytes (4.2G binary, 4.2GB decimal)\n"
    "  --sensitivity kld|imatrix, --probe-ctx N, --probe-chunks N  as in smelt quantize\n"
    "  --no-importance     gguf: fit block scales with ggml's plain rule, not weighted by diag(H)\n"
    "  --sweeps N          gguf: column sweeps per linear (default 2 on Q2_K and Q3_K, else 1):\n"
    "                      each after the first refits the block scales on the values the one\n"
    "                      before quantized; each row keeps its sweep of least tr(E H E^T)\n"
    "  --no-true-sequential  all Hessians of a block from the unquantized block\n"
    "  --no-loss           skip the loss report (saves a round-to-nearest pass per linear)\n"
    "  --moe-min-tokens N  mixtures of experts (Mixtral, Qwen3-MoE; gguf targets, CPU, not with\n"
    "                      --awq): each expert's gate/up and down get their own Hessians from the\n"
    "                      calibration tokens routed to it; an expert routed fewer than N tokens\n"
    "                      (default 128) is starved: its matrices are rounded to nearest with\n"
    "                      diag(H) as importance (no token at all: without importance, as\n"
    "                      llama-quantize without an imatrix). --json: \"moe\" names them. The\n"
    "                      router (ffn_gate_inp) stays F32, as llama-quantize keeps it\n"
    "  --awq               AWQ scaling and clipping first (see smelt help awq; gguf targets),\n"
    "                      then GPTQ on the scaled weights; --awq-grid, --awq-alpha, --no-clip\n"
    "                      as in smelt awq\n"
    "\n"
    "  --device cpu|cuda   where the work runs (default cpu): cuda runs each block's forward\n"
    "                      passes over the samples, accumulates the Hessians, factors H^-1 and\n"
    "                      applies the lazy-batch updates on the GPU (the grids stay on the CPU);\n"
    "                      needs a build with CUDA and a device. Equal to the CPU's up to rounding.\n"
    "  -o, --outfile PATH  the output (--output is accepted too)\n"
    "  -t, --threads N     threads (default: all cores, or SMELT_THREADS)\n"
    "  --json              one JSON report on stdout (time per layer, per-linear proxy loss\n"
    "                      tr(E H E^T) of round-to-nearest and of GPTQ; fields: docs/json.md)\n"
    "  --quiet, -q         no progress lines, no summary line\n"
    "  --no-sync           skip the final fsync of the output\n"
    "  --split-max-size N[K|M|G], --split-max-tensors N\n"
    "                      gguf: write a split set (llama-gguf-split's layout; see smelt help convert)\n"
    "  --level N, --raw    gguf to OUT named *.smelt: zstd level 1..19 (default 3), or uncompressed\n"
    "  --manifest FILE     record the output, its sources, recipe, GPTQ parameters and the\n"
    "                      calibration text's digests in the release manifest FILE (docs/manifest.md)\n";

static const char *const LIN_NAMES[SM_LIN_COUNT] = {"q", "k", "v", "o", "gate", "up", "down"};

typedef struct layer_progress {
    sm_progress bar; /* over the layers, on a terminal */
    bool lines;      /* a line per layer too (not with --json) */
    const char *name, *method;
} layer_progress;

static void on_layer(void *user, int64_t layer, int64_t n_layer, const sm_gptq_layer_report *r) {
    layer_progress *lp = user;
    double rtn = 0, gptq = 0;
    for (int i = 0; i < SM_LIN_COUNT; i++) {
        rtn += r->loss_rtn[i];
        gptq += r->loss_gptq[i];
    }
    if (lp->lines) {
        sm_progress_clear(&lp->bar);
        fprintf(stderr, "%s: layer %lld/%lld  %.2f s  loss rtn %.4g -> %s %.4g\n", lp->name, (long long)layer + 1,
                (long long)n_layer, r->seconds, rtn, lp->method, gptq);
    }
    lp->bar.done = (uint64_t)layer + 1;
    sm_progress_note(&lp->bar, "layer %lld/%lld", (long long)layer + 1, (long long)n_layer);
}

static const char *method_name(const sm_gptq_run_opts *ro) {
    return !ro->awq.enabled ? "gptq" : ro->awq.then_gptq ? "awq+gptq" : "awq";
}

/* Mixtures of experts: every expert's tokens and method, the starved ones listed apart. */
static cJSON *moe_json(const sm_gptq_run_opts *ro, const sm_gptq_run_report *rep) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "min_tokens", (double)(ro->moe_min_tokens > 0 ? ro->moe_min_tokens : SM_GPTQ_MOE_MIN_TOKENS));
    cJSON *all = cJSON_AddArrayToObject(o, "experts"), *starved = cJSON_AddArrayToObject(o, "starved");
    for (int64_t l = 0; l < rep->n_layer; l++)
        for (int64_t e = 0; e < rep->layers[l].n_expert; e++) {
            const sm_gptq_expert_report *x = &rep->layers[l].experts[e];
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "layer", (double)l);
            cJSON_AddNumberToObject(a, "expert", (double)e);
            cJSON_AddNumberToObject(a, "tokens", (double)x->tokens);
            if (x->starved) cJSON_AddItemToArray(starved, cJSON_Duplicate(a, true));
            cJSON_AddBoolToObject(a, "starved", x->starved);
            cJSON_AddStringToObject(a, "method", x->gptq[0] || x->gptq[2] ? "gptq"
                                                 : x->tokens ? "importance_rounding" : "rounding");
            double rtn = 0, gptq = 0;
            for (int s = 0; s < 3; s++) rtn += x->loss_rtn[s], gptq += x->loss_gptq[s];
            cJSON_AddNumberToObject(a, "loss_rtn", rtn);
            cJSON_AddNumberToObject(a, "loss_gptq", gptq);
            cJSON_AddItemToArray(all, a);
        }
    return o;
}

static cJSON *report_json(const char *cmd, const sm_gptq_run_opts *ro, const sm_gptq_run_report *rep, const char *model,
                          const char *calib, const char *out, const char *target, double total_s, int threads,
                          const sm_target_plan *mixture) {
    const char *ins[2] = {model, calib};
    const sm_device device = ro->q.device;
    cJSON *j = cli_report_new(cmd, ins, 2, out);
    cJSON_AddStringToObject(j, "target", target);
    cJSON_AddStringToObject(j, "method", method_name(ro));
    cJSON_AddNumberToObject(j, "samples", (double)rep->n_samples);
    cJSON_AddNumberToObject(j, "seqlen", (double)rep->seqlen);
    cJSON_AddNumberToObject(j, "activation_bytes", (double)rep->activation_bytes);
    cJSON_AddNumberToObject(j, "seconds", total_s);
    cJSON_AddNumberToObject(j, "gptq_seconds", rep->seconds);
    cJSON_AddNumberToObject(j, "threads", threads);
    cJSON_AddStringToObject(j, "isa", sm_isa_name(sm_isa_active()));
    cJSON_AddStringToObject(j, "device", device == SM_DEVICE_CUDA ? "cuda" : "cpu");
    cJSON *layers = cJSON_AddArrayToObject(j, "layers");
    double tot_rtn = 0, tot_gptq = 0;
    for (int64_t l = 0; l < rep->n_layer; l++) {
        const sm_gptq_layer_report *r = &rep->layers[l];
        cJSON *lj = cJSON_CreateObject();
        cJSON_AddNumberToObject(lj, "layer", (double)l);
        cJSON_AddNumberToObject(lj, "seconds", r->seconds);
        cJSON_AddNumberToObject(lj, "forward_seconds", r->seconds_forward);
        cJSON_AddNumberToObject(lj, "hessian_seconds", r->seconds_hessian);
        cJSON_AddNumberToObject(lj, "quantize_seconds", r->seconds_quantize);
        if (ro->awq.enabled) {
            cJSON_AddNumberToObject(lj, "awq_seconds", r->seconds_awq);
            cJSON *al = cJSON_AddArrayToObject(lj, "awq_alpha");
            for (int g = 0; g < 4; g++)
                cJSON_AddItemToArray(al, r->awq_alpha[g] < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(r->awq_alpha[g]));
        }
        cJSON *lins = cJSON_AddArrayToObject(lj, "linears");
        for (int i = 0; i < SM_LIN_COUNT; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "name", LIN_NAMES[i]);
            cJSON_AddStringToObject(x, "type", r->type[i] == SM_TYPE_INVALID ? "int" : sm_type_name(r->type[i]));
            cJSON_AddBoolToObject(x, "gptq", r->gptq[i]);
            cJSON_AddStringToObject(x, "method", r->gptq[i] ? "gptq" : "importance_rounding");
            cJSON_AddNumberToObject(x, "loss_rtn", r->loss_rtn[i]);
            cJSON_AddNumberToObject(x, "loss_gptq", r->loss_gptq[i]);
            cJSON_AddItemToArray(lins, x);
            tot_rtn += r->loss_rtn[i];
            tot_gptq += r->loss_gptq[i];
        }
        cJSON_AddItemToArray(layers, lj);
    }
    if (rep->n_layer > 0 && rep->layers[0].experts) cJSON_AddItemToObject(j, "moe", moe_json(ro, rep));
    cJSON_AddNumberToObject(j, "loss_rtn", tot_rtn);
    cJSON_AddNumberToObject(j, "loss_gptq", tot_gptq);
    if (mixture) cJSON_AddItemToObject(j, "mixture", cli_mixture_json(mixture));
    return j;
}

int cli_gptq_main(const sm_command *cmd, bool awq_cmd, int argc, char **argv) {
    const char *calib = NULL, *target = NULL, *device = "cpu";
    const char *name = cmd->name;
    bool awq_flag = false, gptq_flag = false;
    double awq_alpha = -1;
    long awq_grid = 20;
    cli_common com = {0};
    cli_output oo = {0};
    sm_sink_opts sink = {0};
    bool seqlen_given = false, asym = false, no_importance = false;
    sm_calib_opts co = {.n_samples = 128, .seqlen = 2048};
    sm_gptq_run_opts ro = {0};
    sm_gptq_opts_default(&ro.q);
    sm_awq_opts_default(&ro.awq);
    ro.q.skip_loss = false;
    long samples = co.n_samples, seqlen = co.seqlen, seed = 0, bits = ro.q.bits, group = ro.q.group_size,
         block = ro.q.block_size, sweeps = 0;
    double damp = ro.q.damp, target_bpw = 0;
    long moe_min_tokens = SM_GPTQ_MOE_MIN_TOKENS;
    const char *target_size = NULL, *sensitivity = "kld";
    long probe_ctx = 512, probe_chunks = 8;
    sm_target_opts to = {.kld_probes = true};
    sm_target_plan plan = {0};
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com),
        {"--calib -f --text", CLI_STR, &calib, 0, 0, NULL},
        {"--to", CLI_STR, &target, 0, 0, NULL},
        {"--samples", CLI_LONG, &samples, 1, 1L << 24, NULL},
        {"--seqlen", CLI_LONG, &seqlen, 2, 1 << 20, &seqlen_given},
        {"--seed", CLI_LONG, &seed, 0, INT64_MAX, NULL},
        {"--in-order", CLI_FLAG, &co.in_order, 0, 0, NULL},
        {"--bits", CLI_LONG, &bits, 2, 8, NULL},
        {"--group --group-size", CLI_LONG, &group, -1, 1 << 20, NULL},
        {"--act-order", CLI_FLAG, &ro.q.act_order, 0, 0, NULL},
        {"--sym", CLI_FLAG, &ro.q.sym, 0, 0, NULL},
        {"--asym", CLI_FLAG, &asym, 0, 0, NULL},
        {"--static-groups", CLI_FLAG, &ro.q.static_groups, 0, 0, NULL},
        {"--damp", CLI_DOUBLE, &damp, 0, 0, NULL},
        {"--block", CLI_LONG, &block, 1, 1 << 16, NULL},
        {"--sweeps", CLI_LONG, &sweeps, 1, 8, NULL},
        {"--no-importance", CLI_FLAG, &no_importance, 0, 0, NULL},
        {"--no-true-sequential", CLI_FLAG, &ro.no_true_sequential, 0, 0, NULL},
        {"--no-loss", CLI_FLAG, &ro.q.skip_loss, 0, 0, NULL},
        {"--moe-min-tokens", CLI_LONG, &moe_min_tokens, 1, INT64_MAX, NULL},
        {"--device", CLI_STR, &device, 0, 0, NULL},
        CLI_OPT_SPLIT(oo), CLI_OPT_MANIFEST(oo),
        {awq_cmd ? "--gptq" : "--awq", CLI_FLAG, awq_cmd ? &gptq_flag : &awq_flag, 0, 0, NULL},
        {"--awq-grid", CLI_LONG, &awq_grid, 2, 1000, NULL},
        {"--awq-alpha", CLI_DOUBLE, &awq_alpha, 0, 0, NULL},
        {"--no-clip", CLI_FLAG, &ro.awq.no_clip, 0, 0, NULL},
        {"--target-bpw", CLI_DOUBLE, &target_bpw, 0, 0, NULL},
        {"--target-size", CLI_STR, &target_size, 0, 0, NULL},
        {"--sensitivity", CLI_STR, &sensitivity, 0, 0, NULL},
        {"--probe-ctx", CLI_LONG, &probe_ctx, 16, 1 << 20, NULL},
        {"--probe-chunks", CLI_LONG, &probe_chunks, 1, 1L << 30, NULL},
        {0},
    };
    const char *pos[1];
    int npos = 0;
    int prc = cli_parse(cmd, NULL, argc, argv, opts, pos, 1, &npos);
    if (prc || (prc = cli_output_setup(cmd, &oo, &sink))) return prc;
    ro.output = &sink;
    const char *model = npos ? pos[0] : NULL, *out = com.out, *model_arg = model;
    bool json = com.json, quiet = com.quiet;
    co.n_samples = samples;
    co.seqlen = seqlen;
    co.seed = (uint64_t)seed;
    ro.q.bits = (int)bits;
    ro.q.group_size = (int)group;
    ro.q.block_size = (int)block;
    ro.q.fit_passes = (int)sweeps;
    ro.q.damp = damp;
    ro.moe_min_tokens = moe_min_tokens;
    if (asym) ro.q.sym = false;
    if (no_importance) ro.q.use_importance = false;
    if (!model) return cli_usage_error(cmd, "expected MODEL");
    if (!calib) return cli_usage_error(cmd, "expected --calib FILE");
    if (!out) return cli_usage_error(cmd, "expected -o OUT");
    if (!target) return cli_usage_error(cmd, "expected --to gguf:RECIPE or --to hf");
    const bool to_hf = !strcmp(target, "hf"), targeted = target_bpw != 0 || target_size;
    if (targeted) {
        if (to_hf) return cli_usage_error(cmd, "--target-bpw / --target-size need --to gguf");
        if (target_bpw && target_size) return cli_usage_error(cmd, "give --target-bpw or --target-size, not both");
        if (target_bpw && !(target_bpw >= 1.5 && target_bpw <= 16))
            return cli_usage_error(cmd, "--target-bpw expects bits per weight in [1.5, 16]");
        if (target_size && !(to.target_bytes = cli_parse_size(target_size)))
            return cli_usage_error(cmd, "--target-size expects a size such as 4.2G, 300M or 123456, got '%s'", target_size);
        if (strcmp(sensitivity, "kld") && strcmp(sensitivity, "imatrix"))
            return cli_usage_error(cmd, "--sensitivity expects kld or imatrix, got '%s'", sensitivity);
        if (!sm_gguf_is_file(model))
            return cli_fail(name, "%s: a size-targeted mixture needs an F32/F16/BF16 GGUF (convert the checkpoint with "
                                    "smelt convert first)", model);
        if (!strcmp(target, "gguf")) target = "gguf:";
    }
    if (!to_hf && strncmp(target, "gguf:", 5))
        return cli_usage_error(cmd, "--to expects gguf:RECIPE or hf, got '%s'", target);
    if (ro.q.bits != 2 && ro.q.bits != 3 && ro.q.bits != 4 && ro.q.bits != 8)
        return cli_usage_error(cmd, "--bits expects 2, 3, 4 or 8");
    if (ro.q.group_size == 0 || ro.q.group_size < -1) return cli_usage_error(cmd, "--group expects N > 0 or -1");
    if (!(ro.q.damp >= 0.0 && ro.q.damp < 1e6)) return cli_usage_error(cmd, "--damp expects a number >= 0");
    if (!to_hf && ro.q.act_order)
        return cli_usage_error(cmd, "--act-order needs --to hf: GGUF blocks hold consecutive columns");
    if (!to_hf && !(targeted && !target[5])) {
        const int rrc = cli_check_recipe(cmd, "gguf:", target + 5);
        if (rrc) return rrc;
    }
    const char *inputs[] = {model, calib};
    ro.awq.enabled = awq_cmd || awq_flag;
    ro.awq.then_gptq = !awq_cmd || gptq_flag;
    ro.awq.n_grid = (int)awq_grid;
    ro.awq.force_alpha = awq_alpha;
    if (awq_alpha != -1 && !(awq_alpha >= 0 && awq_alpha <= 1))
        return cli_usage_error(cmd, "--awq-alpha expects a number in [0, 1]");
    if (ro.awq.enabled && to_hf && ro.awq.then_gptq)
        return cli_usage_error(cmd, "AWQ + GPTQ into --to hf is not supported (AutoAWQ checkpoints: smelt awq --to hf)");
    if (ro.awq.enabled && to_hf && (ro.q.bits != 4 || ro.q.act_order))
        return cli_usage_error(cmd, "AWQ into --to hf writes AutoAWQ's gemm layout: --bits 4, no --act-order");
    const int orc = cli_check_output(name, "-o", out, to_hf, inputs, 2);
    if (orc) return orc;
    const int drc = cli_device(cmd, device, &ro.q.device);
    if (drc) return drc;
    const bool model_is_dir = sm_is_dir(model);
    if (to_hf && !model_is_dir) return cli_fail(name, "--to hf needs a Hugging Face model directory as MODEL");
    if (to_hf && (sink.split_max_bytes || sink.split_max_tensors || sink.level || sink.raw))
        return cli_usage_error(cmd, "--split-max-size / --split-max-tensors / --level / --raw apply to --to gguf:RECIPE only");
    const int threads = cli_common_apply(&com);
    layer_progress lp = {.lines = !quiet && !json, .name = name, .method = method_name(&ro)};
    if (!quiet) {
        ro.on_layer = on_layer;
        ro.on_layer_user = &lp;
    }
    if (json) quiet = true; /* no other lines; the bar stays (on a terminal) */

    const double t0 = sm_now();
    char recipe_buf[32] = "";
    if (targeted) {
        to.target_bpw = target_bpw;
        to.calib_path = calib;
        to.kld_probes = !strcmp(sensitivity, "kld");
        to.n_ctx = probe_ctx;
        to.n_chunks = probe_chunks;
        to.quiet = quiet;
        if (sm_target_plan_make(model, &to, &plan)) return cli_fail_last("gptq");
        ro.plan_names = plan.names;
        ro.plan_types = plan.types;
        ro.n_plan = plan.n;
        ro.add_metadata = sm_target_write_metadata;
        ro.add_metadata_user = &plan;
        snprintf(recipe_buf, sizeof recipe_buf, "gguf:%s", target[5] ? target + 5 : cli_mixture_recipe(&plan));
        target = recipe_buf;
        if (!json) cli_mixture_print(&plan, stdout);
        fflush(stdout);
    }
    sm_model *m = NULL;
    const sm_tokenizer *tok = NULL;
    int32_t *ids = NULL, bos = -1;
    size_t n_ids = 0;
    sm_calib_set cs = {0};
    sm_gptq_run_report rep = {0};
    int rc = -1;
    if (sm_model_load(model, NULL, &m)) goto done;
    /* an HF directory for a GGUF target: computed as its converted GGUF would be, read in place */
    if (!to_hf && model_is_dir && sm_model_gguf_layout(m)) goto done;
    if (sm_model_tokenizer(m, &tok) || sm_ppl_chunk_bos(tok, &bos) ||
        sm_calib_tokenize_file(tok, calib, false, &ids, &n_ids))
        goto done;
    const int64_t n_ctx_train = sm_model_hparams(m)->n_ctx_train;
    if (!seqlen_given && n_ctx_train > 0 && co.seqlen > n_ctx_train) co.seqlen = n_ctx_train;
    if (seqlen_given) cli_warn_ctx(name, "--seqlen", co.seqlen, n_ctx_train);
    if (sm_calib_cut(ids, n_ids, bos, &co, &cs)) goto done;
    char calib_hash[24];
    {
        char *bytes = NULL;
        size_t len = 0;
        if (sm_read_file(calib, (size_t)1 << 34, &bytes, &len)) goto done;
        snprintf(calib_hash, sizeof calib_hash, "%016llx", (unsigned long long)XXH64(bytes, len, 0));
        free(bytes);
    }
    ro.provenance.calib_file = calib;
    ro.provenance.calib_xxh64 = calib_hash;
    ro.provenance.samples = cs.n_samples;
    ro.provenance.seqlen = cs.seqlen;
    ro.provenance.seed = co.seed;
    ro.provenance.in_order = co.in_order;
    if (!quiet)
        fprintf(stderr, "%s: %lld samples x %lld tokens (%s) from %zu tokens of %s\n", name, (long long)cs.n_samples,
                (long long)cs.seqlen, co.in_order ? "in order" : "random windows", n_ids, calib);
    sm_progress_begin(&lp.bar, name, (uint64_t)sm_model_hparams(m)->n_layer, !ro.on_layer);
    rc = to_hf ? sm_gptq_write_hf(m, model, &cs, out, &ro, &rep)
               : sm_gptq_write_gguf(m, model, &cs, target + 5, out, &ro, &rep);
    if (rc) sm_progress_clear(&lp.bar), lp.bar.enabled = false;
    sm_progress_end(&lp.bar);
    if (!rc && oo.manifest) {
        const char *src[1] = {model};
        cJSON *prov = cli_output_provenance(&oo, name, argc, argv, src, 1);
        if (prov) {
            if (!to_hf) cJSON_AddStringToObject(prov, "recipe", target + 5);
            cJSON *meth = cJSON_AddObjectToObject(prov, "method");
            cJSON_AddStringToObject(meth, "name", method_name(&ro));
            cJSON_AddStringToObject(meth, "target", target);
            cJSON_AddNumberToObject(meth, "samples", (double)cs.n_samples);
            cJSON_AddNumberToObject(meth, "seqlen", (double)cs.seqlen);
            cJSON_AddStringToObject(meth, "sampling", co.in_order ? "in_order" : "random");
            cJSON_AddNumberToObject(meth, "seed", (double)co.seed);
            cJSON_AddNumberToObject(meth, "damp", ro.q.damp);
            cJSON_AddNumberToObject(meth, "block_size", ro.q.block_size);
            cJSON_AddBoolToObject(meth, "true_sequential", !ro.no_true_sequential);
            if (to_hf) {
                cJSON_AddNumberToObject(meth, "bits", ro.q.bits);
                cJSON_AddNumberToObject(meth, "group_size", ro.q.group_size);
                cJSON_AddBoolToObject(meth, "act_order", ro.q.act_order);
                cJSON_AddBoolToObject(meth, "sym", ro.q.sym);
                cJSON_AddBoolToObject(meth, "static_groups", ro.q.static_groups);
            } else {
                cJSON_AddBoolToObject(meth, "importance", ro.q.use_importance);
            }
            if (sm_manifest_set_file(prov, "calibration", oo.manifest, calib)) {
                cJSON_Delete(prov);
                prov = NULL;
            }
        }
        rc = cli_output_finish(name, &oo, out, prov) ? 1 : 0;
        if (rc) sm_clear_error(), rc = 2; /* already reported */
    }
done:
    if (rc == 2) rc = 1;
    else if (rc) cli_fail_last(name);
    else if (json) cli_report_print(report_json(name, &ro, &rep, model_arg, calib, out, target, sm_now() - t0, threads,
                                                       targeted ? &plan : NULL), out);
    else if (!quiet) {
        char b1[32], b2[32];
        cli_summary(name, out, sm_now() - t0, "%s, %s, %lld samples x %lld tokens, %s", target,
                    cli_count(b1, sizeof b1, (long long)rep.n_layer, "layer"), (long long)rep.n_samples, (long long)rep.seqlen,
                    cli_bytes(b2, sizeof b2, (double)cli_path_bytes(out)));
    }
    cli_output_free(&oo);
    sm_gptq_run_report_free(&rep);
    sm_target_plan_free(&plan);
    sm_calib_set_free(&cs);
    free(ids);
    sm_model_free(m);
    return rc ? 1 : 0;
}

static int run(int argc, char **argv) { return cli_gptq_main(&sm_cmd_gptq, false, argc, argv); }

const sm_command sm_cmd_gptq = {"gptq", "GPTQ quantization over a calibration text (GGUF or HF GPTQ)", USAGE, run};
