/* lora_internal.h - what the GGUF exporter reads from an adapter (lora.c owns the struct). */
#ifndef SMELT_LORA_INTERNAL_H
#define SMELT_LORA_INTERNAL_H

#include "convert/convert.h"

int sm_lora_module_count(const sm_lora *l);
/* Module i: base weight name, A, B, effective scale (adapter weight included), and whether it
 * needs something a plain LoRA pair cannot carry (DoRA, embedding LoRA, modules_to_save). */
int sm_lora_module_get(const sm_lora *l, int i, const char **base, const sm_tensor **a, const sm_tensor **b,
                       double *scale, bool *has_extra);
double sm_lora_alpha(const sm_lora *l);

#endif
