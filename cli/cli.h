/* cli.h - the smelt command line: subcommands and the small argument helpers they share. */
#ifndef SMELT_CLI_H
#define SMELT_CLI_H

#include "core/core.h"

#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct sm_command {
    const char *name;
    const char *summary; /* one line for `smelt help` */
    const char *usage;   /* the full text for `smelt help NAME` */
    int (*run)(int argc, char **argv); /* argv[0] is the command name; returns the exit code */
} sm_command;

/* Each subcommand lives in cli/cmd_<name>.c and defines one of these. */
extern const sm_command sm_cmd_convert, sm_cmd_inspect, sm_cmd_quantize, sm_cmd_lora, sm_cmd_tokenize;
extern const sm_command sm_cmd_ppl, sm_cmd_generate;
extern const sm_command sm_cmd_imatrix, sm_cmd_gptq;

/* Argument helpers. cli_opt: argv[*i] is `name` followed by a value, or `name=value`; on a
 * match *val is set and *i advanced past the value. A missing value is reported and exits 2. */
bool cli_flag(char **argv, int *i, const char *name);
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **val);
/* Parse an integer option value, exiting 2 with a message if it is not one. */
long cli_long(const char *opt, const char *val, long min, long max);
double cli_double(const char *opt, const char *val);

/* Print "smelt CMD: error: <msg>" (msg printf-style) to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with sm_last_error() as the message. */
int cli_fail_last(const char *cmd);
/* Usage error: message plus the command's usage line; returns 2. */
int cli_usage_error(const sm_command *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print a cJSON object on stdout (one line) and delete it. */
void cli_print_json(cJSON *obj);
/* --device VALUE: "cpu", or "cuda" with a usable CUDA device (no silent fallback to the CPU).
 * 0 with *out set; else the exit code, the message printed (2: bad value, 1: no device). */
int cli_device(const sm_command *c, const char *val, sm_device *out);
/* --threads N for the OpenMP regions that follow. N above SM_MAX_THREADS is a usage error
 * (exit 2): libgomp aborts when it cannot create that many threads. */
void cli_set_threads(int n);
/* Before any work: can `path` (given as `opt`) become the command's output (a file, or a
 * directory when dir_output)? 0, else the message printed and the exit code (1) returned. */
/* The checks on an output before any work: it is not, and does not lie inside, one of `inputs`
 * (NULL entries skipped); its directory exists and is writable; it is not a directory (a file
 * output) or holds only what smelt writes there (a directory output). 0, or the exit status. */
int cli_check_output(const char *cmd, const char *opt, const char *path, bool dir_output,
                     const char *const *inputs, size_t n_inputs);
/* A context of n_ctx tokens beyond the model's training context gets llama.cpp's warning. */
void cli_warn_ctx(const char *cmd, const char *opt, int64_t n_ctx, int64_t n_ctx_train);

#endif
