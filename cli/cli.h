/* cli.h - the smelt command line: subcommands and the small argument helpers they share. */
#ifndef SMELT_CLI_H
#define SMELT_CLI_H

#include "core/core.h"
#include "formats/sink.h"

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
extern const sm_command sm_cmd_imatrix, sm_cmd_gptq, sm_cmd_sweep;
extern const sm_command sm_cmd_manifest, sm_cmd_pack, sm_cmd_unpack, sm_cmd_verify;
extern const sm_command sm_cmd_awq;
/* `smelt gptq` and `smelt awq` (cli/cmd_gptq.c): awq_cmd selects AWQ (round-to-nearest after the
 * scaling unless --gptq) and its option set. */
int cli_gptq_main(const sm_command *cmd, bool awq_cmd, int argc, char **argv);

/* ---- the option table every command parses its arguments with (cli_parse) ----
 * An entry names one option in all its spellings, space-separated ("-o --outfile --output");
 * the first long name is the canonical one used in messages. A value is given as `--name V`,
 * `--name=V` or `-x V`; `--` ends the options. */
typedef enum { CLI_END = 0, CLI_FLAG, CLI_STR, CLI_LONG, CLI_DOUBLE, CLI_LIST } cli_kind;
typedef struct cli_list {
    const char **v; /* malloc'ed; cli_list_free */
    size_t n;
} cli_list;
typedef struct cli_option {
    const char *names;
    cli_kind kind;
    void *dest;        /* bool *, const char **, long *, double *, cli_list * */
    long min, max;     /* CLI_LONG: the accepted range */
    bool *given;       /* optional: set when the option appears */
} cli_option;
void cli_list_free(cli_list *l);

/* The options that mean the same on every command. */
typedef struct cli_common {
    const char *out; /* -o/--outfile (--output) */
    long threads;    /* -t/--threads; 0: default (all cores, or SMELT_THREADS) */
    bool json, quiet, no_sync;
} cli_common;
#define CLI_OPT_OUT(c) {"-o --outfile --output", CLI_STR, &(c).out, 0, 0, NULL}
#define CLI_OPT_THREADS(c) {"-t --threads", CLI_LONG, &(c).threads, 1, SM_MAX_THREADS, NULL}
#define CLI_OPT_JSON(c) {"--json", CLI_FLAG, &(c).json, 0, 0, NULL}, {"--quiet -q", CLI_FLAG, &(c).quiet, 0, 0, NULL}
#define CLI_OPT_NOSYNC(c) {"--no-sync", CLI_FLAG, &(c).no_sync, 0, 0, NULL}

/* The output options of producing commands (output.c): --split-max-size N[K|M|G] and
 * --split-max-tensors N (a GGUF split set, formats/sink.h), --level N / --raw (a .smelt output:
 * zstd level, or uncompressed) and --manifest FILE (a release manifest, release/release.h). */
typedef struct cli_output {
    const char *split_size;
    long split_tensors;
    const char *manifest;
    long level;       /* --level N: zstd level of a .smelt output */
    bool raw;         /* --raw: a .smelt output stored uncompressed */
    char **files;     /* what the sink committed (filled during the run) */
    size_t n_files;
} cli_output;
#define CLI_OPT_SPLIT(o) {"--split-max-size", CLI_STR, &(o).split_size, 0, 0, NULL}, \
    {"--split-max-tensors", CLI_LONG, &(o).split_tensors, 1, 1L << 30, NULL}, \
    {"--level", CLI_LONG, &(o).level, 1, 19, NULL}, {"--raw", CLI_FLAG, &(o).raw, 0, 0, NULL}
#define CLI_OPT_MANIFEST(o) {"--manifest", CLI_STR, &(o).manifest, 0, 0, NULL}
/* Options -> sink options (split limits; the committed files recorded for --manifest): 0, or
 * the exit code of a usage error. */
int cli_output_setup(const sm_command *c, cli_output *o, sm_sink_opts *s);
/* After a successful run, with --manifest: a provenance object (command, command line,
 * version, the sources' digests) for the caller to add recipe / method to; NULL otherwise. */
cJSON *cli_output_provenance(const cli_output *o, const char *command, int argc, char **argv,
                             const char *const *sources, size_t n_sources);
/* Record the files written (or `out` when no sink reported any) in the manifest with prov
 * (taken over); frees what o collected. 0, or 1 after printing the error. */
int cli_output_finish(const char *cmd, cli_output *o, const char *out, cJSON *prov);
void cli_output_free(cli_output *o); /* what o collected (after a failure) */
/* A .smelt's n_files and n_tensors (the files it holds, their tensors) into a report. */
void cli_report_smelt(cJSON *report, const char *smelt_path);

/* Parse argv[1..argc-1] (argv[0] is the command name) against `opts` (ended by a CLI_END entry);
 * up to max_pos positional arguments go to pos[], their count to *n_pos. `name` is the command
 * as typed ("lora merge"; NULL: c->name). Returns 0, or 2 after printing the usage error
 * (unknown options get a "did you mean" suggestion and a pointer to `smelt help CMD`). */
int cli_parse(const sm_command *c, const char *name, int argc, char **argv, const cli_option *opts,
              const char **pos, int max_pos, int *n_pos);
/* After cli_parse: --no-sync and --threads take effect (the thread count used is returned). */
int cli_common_apply(const cli_common *com);

/* The closest of `cands` (NULL-terminated) to `word` by edit distance, or NULL if none is close. */
const char *cli_closest(const char *word, const char *const *cands);
/* A recipe name that sm_recipe_find knows, else a usage error (2) with a suggestion; 0 when known.
 * prefix (may be NULL) is shown before the name ("gguf:"). */
int cli_check_recipe(const sm_command *c, const char *opt, const char *name);

/* ---- reports ----
 * A JSON report: schema_version, command, smelt_version, inputs [paths], output (path or
 * null); cli_report_print adds bytes_out (the output's size on disk: a file's size, the sum
 * of a directory's files, 0 without an output) and prints it on stdout. */
cJSON *cli_report_new(const char *command, const char *const *inputs, size_t n_inputs, const char *output);
void cli_report_print(cJSON *report, const char *output);
/* The size of a file, or the total of the regular files in a directory (0 if neither). */
int64_t cli_path_bytes(const char *path);
/* "smelt CMD: OUTPUT: WHAT in TIME" on stderr (the summary line of every command). */
void cli_summary(const char *command, const char *output, double seconds, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "1 tensor", "2 tensors" into buf. */
const char *cli_count(char *buf, size_t cap, long long n, const char *singular);
/* bytes in binary units ("1.50 MiB") into buf. */
const char *cli_bytes(char *buf, size_t cap, double bytes);

/* "q4_0 x28, f32 x9" from per-type tensor counts (SM_TYPE_GGML_COUNT entries) into buf. */
const char *cli_type_counts(char *buf, size_t cap, const int64_t *n_by_type);
/* The same as a "tensor_types" object {"q4_0": 28, ...} in a report. */
void cli_add_type_counts(cJSON *report, const int64_t *n_by_type);
/* A LoRA adapter argument DIR or DIR:WEIGHT (WEIGHT a number): 0, else a usage error (2). */
int cli_lora_spec(const sm_command *c, const char *spec);

/* The command being run (for messages from the helpers below); set by main. */
extern const char *cli_command_name;

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
