/* mixture.h - size-targeted mixtures on the command line (cli/mixture.c). */
#ifndef SMELT_CLI_MIXTURE_H
#define SMELT_CLI_MIXTURE_H

#include "calib/calib.h"

#include <cjson/cJSON.h>
#include <stdio.h>

/* "4.2G" (binary units), "4.2GB" (decimal), "123456" (bytes); 0 when not a size. */
uint64_t cli_parse_size(const char *v);
/* The recipe whose name (general.file_type) a mixture is recorded under: that of its most
 * common type. */
const char *cli_mixture_recipe(const sm_target_plan *p);
/* The chosen types as a table. */
void cli_mixture_print(const sm_target_plan *p, FILE *f);
/* The "mixture" object of a --json report (docs/json.md). */
cJSON *cli_mixture_json(const sm_target_plan *p);

#endif
