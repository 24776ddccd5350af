/* sweep.h - `smelt sweep`: the measured artifacts and the report files written from them
 * (cli/cmd_sweep.c runs the sweep, cli/sweep_report.c writes report.{json,csv,md,html} and
 * plot.svg). Field meanings: docs/sweep.md. */
#ifndef SMELT_SWEEP_H
#define SMELT_SWEEP_H

#include "cli.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sweep_row {
    char name[64];        /* "Q4_K_M-rtn", "bpw3.50-gptq" */
    char recipe[32];      /* "Q4_K_M"; "" for a size-targeted mixture */
    char method[16];      /* rtn, imatrix, gptq */
    double target_bpw;    /* 0 for a fixed recipe */
    char file[512];       /* the artifact's path */
    char command[2048];   /* the command that reproduces it (shell-quoted) */
    int64_t bytes;        /* file size */
    int64_t n_params;
    double bpw;           /* 8 x tensor bytes / parameters (llama.cpp's BPW) */
    double ppl, ppl_stderr, delta_ppl, delta_ppl_stderr;
    double kld_mean, kld_stderr, kld_p99, top1, top1_stderr;
    double seconds;       /* wall time of the command that produced it */
    int64_t peak_rss;     /* bytes: getrusage of that child process (ru_maxrss) */
    bool reused;          /* taken from an earlier run of the sweep (inputs unchanged) */
    bool done;
} sweep_row;

typedef struct sweep_info {
    const char *model, *eval, *calib, *dir, *version;
    int64_t n_ctx, n_chunks, n_params;
    char base_file[512];
    int64_t base_bytes;
    double base_bpw, base_ppl, base_ppl_stderr;
} sweep_info;

/* Row <-> JSON object (the objects of report.json's "artifacts"). */
cJSON *sweep_row_json(const sweep_row *r);
void sweep_row_from_json(const cJSON *j, sweep_row *r);
/* The measured fields (ppl, its stderr and Delta's, KLD mean/stderr/p99, top-1 and its stderr) from
 * a row's JSON or `smelt ppl --kld --json`'s, which name them alike. */
void sweep_row_measures_from_json(const cJSON *j, sweep_row *r);
/* A number field of j; NAN when absent or not a number. */
double sweep_json_num(const cJSON *j, const char *k);
/* Whether row i is on the Pareto front (no other row has both fewer bits per weight and a
 * lower mean KLD). */
bool sweep_on_front(const sweep_row *rows, size_t n, size_t i);
/* report.csv, report.md, plot.svg, report.html into dir (each written atomically). */
int sweep_write_reports(const sweep_info *in, const sweep_row *rows, size_t n);
/* The SVG plot (KLD, log scale, against bits per weight) as a malloc'ed string. */
char *sweep_svg(const sweep_info *in, const sweep_row *rows, size_t n);
/* Write `text` to path atomically. */
int sweep_write_file(const char *path, const char *text);

/* ---- the Slurm mode (cli/sweep_slurm.c; docs/sweep.md "On a Slurm cluster") ---- */

/* What one sweep is asked to do (parsed from the command line, or one model of a matrix). */
typedef struct sweep_opts {
    const char *model, *eval, *calib, *dir;
    const char *recipes, *methods, *targets; /* comma-separated; targets may be NULL */
    long n_ctx, n_chunks, calib_chunks, samples, jobs, threads; /* 0: not given (chunks, threads) */
    bool keep, json, quiet;
    bool slurm;           /* submit to Slurm instead of running here */
    cli_list slurm_opts;  /* --slurm-opt: given to sbatch as they are */
    const char *step;     /* the internal --slurm-step: prepare, task, report (NULL: none) */
} sweep_opts;

/* An artifact as the submission sees it: its row, its key (the inputs its saved results must
 * match) and whether it is up to date already. */
typedef struct sweep_task {
    const char *name, *key;
    bool done;
} sweep_task;

/* Submit the prepare job (when need_prepare), the job array of the tasks not done and the
 * report job depending on them (sbatch through fork/exec, arguments as argv); record them in
 * DIR/slurm/jobs.json; print the ids on stderr (with --json: add them to `rep`, for the caller).
 * Refuses while jobs of an earlier submission of DIR are still queued. 0, or the exit code. */
int sweep_slurm_submit(const sweep_opts *o, const sweep_task *tasks, size_t n, bool need_prepare, cJSON *rep);
/* `smelt sweep --status DIR`: each artifact's state from its saved results, squeue and (when
 * the cluster keeps accounting) sacct. 0, or the exit code. */
int sweep_slurm_status(const char *dir, bool json);
/* For the report step: "array task 13_1, log DIR/logs/slurm-13_1.out" of artifact `name`, from
 * DIR/slurm/jobs.json, into buf ("" when unknown). */
void sweep_slurm_task_log(const char *dir, const char *name, char *buf, size_t cap);

#endif
