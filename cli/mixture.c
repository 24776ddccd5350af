/* mixture.c - size-targeted mixtures on the command line (quantize and gptq --target-bpw):
 * the size argument, the recipe a mixture is recorded under, its table and its JSON. */
#include "mixture.h"

#include <stdlib.h>
#include <string.h>

/* "4.2G" (binary units), "4.2GB" (decimal), "123456" (bytes); 0 when not a size. */
uint64_t cli_parse_size(const char *v) {
    char *end;
    const double x = strtod(v, &end);
    if (end == v || !(x > 0)) return 0;
    const char *units = "KMGT";
    double mult = 1;
    if (*end) {
        const char *u = strchr(units, *end & ~0x20);
        if (!u) return 0;
        const bool decimal = (end[1] & ~0x20) == 'B';
        if (end[1 + decimal]) return 0;
        for (long k = 0; k <= u - units; k++) mult *= decimal ? 1000.0 : 1024.0;
    }
    return (uint64_t)(x * mult);
}

/* The recipe whose name a mixture is recorded under: that of its most common type. */
const char *cli_mixture_recipe(const sm_target_plan *p) {
    static const struct { sm_type t; const char *r; } MAP[] = {
        {SM_TYPE_Q2_K, "Q2_K"}, {SM_TYPE_Q3_K, "Q3_K_M"}, {SM_TYPE_Q4_K, "Q4_K_M"}, {SM_TYPE_Q5_K, "Q5_K_M"},
        {SM_TYPE_Q6_K, "Q6_K"}, {SM_TYPE_Q8_0, "Q8_0"}, {SM_TYPE_Q4_0, "Q4_0"}, {SM_TYPE_Q5_0, "Q5_0"},
        {SM_TYPE_Q4_1, "Q4_1"}, {SM_TYPE_Q5_1, "Q5_1"}};
    size_t best = 0, best_n = 0;
    for (size_t k = 0; k < sizeof MAP / sizeof MAP[0]; k++) {
        size_t n = 0;
        for (size_t i = 0; i < p->n; i++) n += p->types[i] == MAP[k].t;
        if (n > best_n) best = k, best_n = n;
    }
    return MAP[best].r;
}

void cli_mixture_print(const sm_target_plan *p, FILE *f) {
    fprintf(f, "size-targeted mixture: target %.3f bpw, planned %.3f bpw; sensitivity: %s on %s\n", p->target_bpw, p->bpw,
            p->kld_probes ? "per-tensor KLD (probe type alone, the rest Q8_0)" : "imatrix-weighted squared error",
            p->calib_path);
    fprintf(f, "%-32s %-6s %12s %12s %14s\n", "tensor", "type", "bytes", "probe KLD", "predicted loss");
    for (size_t i = 0; i < p->n; i++) {
        const sm_target_tensor *t = &p->t[i];
        fprintf(f, "%-32s %-6s %12llu %12.6f %14.4g\n", t->name, sm_type_name(p->types[i]),
                (unsigned long long)t->cand_bytes[t->pick], t->kld_probe, t->cand_loss[t->pick]);
    }
    if (p->kld_probes) fprintf(f, "(all-Q8_0 model: KLD %.6f; probe KLDs include it)\n", p->kld_q8);
}

cJSON *cli_mixture_json(const sm_target_plan *p) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "target_bpw", p->target_bpw);
    cJSON_AddNumberToObject(m, "planned_bpw", p->bpw);
    cJSON_AddStringToObject(m, "sensitivity", p->kld_probes ? "kld" : "imatrix");
    cJSON_AddNumberToObject(m, "predicted_loss", p->predicted_loss);
    cJSON_AddNumberToObject(m, "kld_q8_0", p->kld_q8);
    cJSON_AddNumberToObject(m, "seconds", p->seconds);
    cJSON *a = cJSON_AddArrayToObject(m, "tensors");
    for (size_t i = 0; i < p->n; i++) {
        const sm_target_tensor *t = &p->t[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", sm_type_name(p->types[i]));
        cJSON_AddNumberToObject(o, "bytes", (double)t->cand_bytes[t->pick]);
        cJSON_AddNumberToObject(o, "kld_probe", t->kld_probe);
        cJSON_AddNumberToObject(o, "predicted_loss", t->cand_loss[t->pick]);
        cJSON_AddItemToArray(a, o);
    }
    return m;
}

