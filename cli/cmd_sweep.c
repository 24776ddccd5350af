/* cmd_sweep.c - `smelt sweep MODEL --eval TEXT -o DIR`: every (recipe, method) artifact built
 * once and measured against the base model; the reports come from cli/sweep_report.c.
 *
 * Each step runs as a child `smelt` process (this binary, /proc/self/exe): quantize, imatrix,
 * gptq and ppl --json, whose reports are read back. Children make --jobs simple (independent
 * artifacts side by side, each with its share of the threads), give each artifact an honest
 * peak memory (wait4's ru_maxrss of the process that produced it, not the sweep's own), and
 * make every artifact reproducible by the very command the report prints. */
#include "cli.h"
#include "sweep.h"

#include "formats/formats.h"
#include "quantize/quantize.h"
#include "release/release.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: smelt sweep MODEL --eval TEXT -o DIR [options]\n"
    "       smelt sweep --matrix FILE -o DIR [--slurm [--slurm-opt=OPT]...] [options]\n"
    "       smelt sweep --status DIR\n"
    "\n"
    "Build every (recipe, method) quantization of MODEL once and measure each against the base\n"
    "model on TEXT: file size, bits per weight, perplexity (+/- its standard error), its change,\n"
    "mean and 99th-percentile KL divergence, top-token agreement, time to produce and peak\n"
    "memory. MODEL is a Hugging Face directory (converted once to DIR/base-f16.gguf) or an\n"
    "F32/F16/BF16 GGUF (the base as is). DIR gets report.json, report.csv, report.md, plot.svg\n"
    "and report.html (one self-contained page). Each step runs as a child smelt process; its\n"
    "command is in the report. A rerun with the same inputs reuses what DIR already holds.\n"
    "\n"
    "options:\n"
    "  --eval FILE         text the artifacts are measured on (--text is accepted too)\n"
    "  --calib FILE        calibration text for the imatrix and GPTQ (needed by those methods)\n"
    "  --recipes LIST      comma-separated recipes (default Q2_K,Q3_K_S,Q3_K_M,Q4_0,Q4_K_S,\n"
    "                      Q4_K_M,Q5_K_M,Q6_K)\n"
    "  --methods LIST      rtn, imatrix, gptq (default rtn, plus imatrix,gptq with --calib)\n"
    "  --target-bpw LIST   also size-targeted mixtures at these bits per weight (smelt quantize\n"
    "                      --target-bpw), for each method\n"
    "  -c, --ctx N         tokens per chunk for ppl, imatrix and GPTQ samples (default 512)\n"
    "  --chunks N          evaluate only the first N chunks of TEXT\n"
    "  --calib-chunks N    imatrix from only the first N chunks of the calibration text\n"
    "  --samples N         GPTQ calibration samples of --ctx tokens (default 64)\n"
    "  -j, --jobs N        artifacts built side by side (default 1); the threads are shared\n"
    "  --keep              keep the quantized GGUFs in DIR (default: deleted once measured)\n"
    "  -o, --outfile DIR   the output directory (created if needed)\n"
    "  -t, --threads N     threads in all (default: all cores, or SMELT_THREADS)\n"
    "  --matrix FILE       a release matrix (JSON: models, eval, calib, recipes, methods, ...;\n"
    "                      docs/sweep.md): one sweep per model, into DIR/NAME\n"
    "  --slurm             submit to Slurm instead of running here: a prepare job (when the base\n"
    "                      is not up to date), a job array with a task per artifact not up to\n"
    "                      date, and a report job after it; prints the job ids. DIR must be on\n"
    "                      a filesystem the nodes share. Submitting again submits only what is\n"
    "                      missing or failed\n"
    "  --slurm-opt OPT     an sbatch option for every job, as it is (repeatable):\n"
    "                      --slurm-opt=--partition=gpu --slurm-opt=--gres=gpu:1\n"
    "  --status DIR        each artifact of DIR's Slurm submission: done, pending, running or\n"
    "                      failed (saved results, squeue, sacct), with its job and log\n"
    "  --slurm-step STEP   what a submitted job runs (prepare, task, report); not for people\n"
    "  --json              print report.json's object on stdout (fields: docs/sweep.md)\n"
    "  --quiet, -q         no progress, no per-artifact lines\n";

#define MAX_ARGS 48

typedef struct child_cmd {
    const char *argv[MAX_ARGS];
    int argc;
    char store[MAX_ARGS][600];
} child_cmd;

static void cmd_add(child_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cmd_add(child_cmd *c, const char *fmt, ...) {
    if (c->argc >= MAX_ARGS - 1) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->store[c->argc], sizeof c->store[0], fmt, ap);
    va_end(ap);
    c->argv[c->argc] = c->store[c->argc];
    c->argv[++c->argc] = NULL;
}

/* The command as one shell line ("smelt quantize ..."), quoting what needs it. */
static void cmd_text(const child_cmd *c, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "smelt");
    for (int i = 1; i < c->argc && k < cap; i++) {
        const char *a = c->argv[i];
        if (!strcmp(a, "--json") || !strcmp(a, "--quiet")) continue; /* the sweep's own way of reading it */
        const bool plain = a[0] && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/:=+@") ==
                                      strlen(a);
        if (plain) k += (size_t)snprintf(buf + k, cap - k, " %s", a);
        else {
            k += (size_t)snprintf(buf + k, cap - k, " '");
            for (const char *p = a; *p && k < cap; p++)
                k += (size_t)snprintf(buf + k, cap - k, *p == '\'' ? "'\\''" : "%c", *p);
            if (k < cap) k += (size_t)snprintf(buf + k, cap - k, "'");
        }
    }
}

/* Start `smelt ARGS` with stdout to out_path, stderr to log_path, SMELT_THREADS=threads. */
static pid_t spawn(const child_cmd *c, const char *out_path, const char *log_path, int threads) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0) return pid;
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0) _exit(126);
    dup2(fo, 1);
    dup2(fe, 2);
    char th[16];
    snprintf(th, sizeof th, "%d", threads);
    setenv("SMELT_THREADS", th, 1);
    setenv("OMP_NUM_THREADS", th, 1);
    setenv("OMP_WAIT_POLICY", "passive", 0); /* side-by-side children must not spin on each other's cores */
    execv("/proc/self/exe", (char *const *)c->argv);
    _exit(127);
}

typedef struct child_result {
    int status;
    double seconds;
    int64_t peak_rss;
} child_result;

/* Wait for any child: its pid, exit status and peak memory. */
static pid_t reap(child_result *r) {
    struct rusage ru;
    int st = 0;
    pid_t pid;
    do pid = wait4(-1, &st, 0, &ru);
    while (pid < 0 && errno == EINTR);
    if (pid < 0) return pid;
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    r->peak_rss = (int64_t)ru.ru_maxrss * 1024;
    return pid;
}

/* Run one child to its end (the serial steps). 0, or an error naming the step and its log. */
static int run_one(const child_cmd *c, const char *out, const char *log, int threads, const char *what, child_result *r) {
    const double t0 = sm_now();
    pid_t pid = spawn(c, out, log, threads);
    if (pid < 0) return sm_error("%s: cannot start a process: %s", what, strerror(errno));
    while (reap(r) != pid) {}
    r->seconds = sm_now() - t0;
    if (r->status) return sm_error("%s failed (exit %d); its messages: %s", what, r->status, log);
    return 0;
}

static cJSON *read_json(const char *path) {
    char *txt = NULL;
    size_t len = 0;
    if (sm_read_file(path, (size_t)1 << 28, &txt, &len)) return NULL;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!j) sm_error("%s: not a JSON report", path);
    return j;
}

/* "size:mtime" of a file, or of a checkpoint directory's files that define the model (sum of
 * sizes, latest mtime). */
static void stamp(const char *path, char *buf, size_t cap) {
    struct stat st;
    if (!path || stat(path, &st)) {
        snprintf(buf, cap, "-");
        return;
    }
    long long size = (long long)st.st_size, mt = (long long)st.st_mtime;
    if (S_ISDIR(st.st_mode)) { /* not the directory's own mtime: adding a file beside the model is no change */
        size = 0, mt = 0;
        /* a checkpoint folder: config.json and the weights decide; hash their sizes and times */
        static const char *const names[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                                            "pytorch_model.bin", "tokenizer.model", "tokenizer.json"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char *p = sm_path_join(path, names[i]);
            struct stat s2;
            if (p && !stat(p, &s2)) {
                size += (long long)s2.st_size;
                if ((long long)s2.st_mtime > mt) mt = (long long)s2.st_mtime;
            }
            free(p);
        }
    }
    snprintf(buf, cap, "%lld:%lld", size, mt);
}

/* Bits per weight as llama.cpp prints it: 8 x tensor bytes / parameters. */
static int gguf_bpw(const char *path, int64_t *n_params, double *bpw) {
    sm_gguf *g;
    if (sm_gguf_open(path, &g)) return -1;
    uint64_t bytes = 0;
    int64_t n = 0;
    for (size_t i = 0; i < sm_gguf_n_tensors(g); i++) {
        const sm_tensor *t = sm_gguf_tensor(g, i);
        bytes += t->nbytes;
        n += sm_tensor_nelements(t);
    }
    sm_gguf_close(g);
    *n_params = n;
    *bpw = n ? 8.0 * (double)bytes / (double)n : 0;
    return 0;
}

static int64_t file_size(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (int64_t)st.st_size;
}

typedef enum {
    SWEEP_BUILD,  /* build what is not up to date (a local sweep, the Slurm jobs) */
    SWEEP_CHECK,  /* only find out what is up to date (a Slurm submission) */
    SWEEP_REUSE,  /* take what is up to date, build nothing (a Slurm task or report) */
} sweep_mode;

typedef struct sweep {
    sweep_info in;
    sweep_mode mode;
    long only;              /* >= 0: the one row a Slurm array task builds */
    bool base_ready, imatrix_ready;
    const char *dir, *calib, *eval;
    long n_ctx, n_chunks, calib_chunks, samples;
    int child_threads;
    bool keep, quiet, lines;
    char key_base[1024];
    char imatrix[600], logits[600];
    sm_progress bar;
} sweep;

/* DIR/name */
static void in_dir(const sweep *s, char *buf, size_t cap, const char *fmt, const char *name) {
    char tmp[300];
    snprintf(tmp, sizeof tmp, fmt, name);
    snprintf(buf, cap, "%s/%s", s->dir, tmp);
}

/* A saved step's inputs, compared with the current ones: 1 if DIR/runs/NAME.json holds `key`. */
static cJSON *manifest_match(const sweep *s, const char *name, const char *key) {
    char p[700];
    in_dir(s, p, sizeof p, "runs/%s.json", name);
    if (!sm_is_file(p)) return NULL;
    cJSON *j = read_json(p);
    sm_clear_error();
    const cJSON *k = j ? cJSON_GetObjectItemCaseSensitive(j, "key") : NULL;
    if (cJSON_IsString(k) && !strcmp(k->valuestring, key)) return j;
    cJSON_Delete(j);
    return NULL;
}

static int manifest_save(const sweep *s, const char *name, const char *key, cJSON *data) {
    char p[700];
    in_dir(s, p, sizeof p, "runs/%s.json", name);
    cJSON_AddStringToObject(data, "key", key);
    char *txt = cJSON_Print(data);
    int rc = txt ? sweep_write_file(p, txt) : sm_error("out of memory");
    free(txt);
    return rc;
}

static void say(sweep *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(sweep *s, const char *fmt, ...) {
    if (!s->lines) return;
    sm_progress_clear(&s->bar);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sweep: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void step_done(sweep *s, const char *note) {
    s->bar.done++;
    sm_progress_note(&s->bar, "%s", note);
    sm_progress_update(&s->bar, s->bar.done);
}

/* The base GGUF, its log-probabilities on the eval text, and the imatrix (when needed). */
static int prepare(sweep *s, const char *model, bool need_imatrix, int threads) {
    char st_model[64], st_eval[64], st_calib[64], out[700], log[700];
    stamp(model, st_model, sizeof st_model);
    stamp(s->eval, st_eval, sizeof st_eval);
    stamp(s->calib, st_calib, sizeof st_calib);
    snprintf(s->key_base, sizeof s->key_base, "smelt %s|model %s %s|eval %s %s|ctx %ld|chunks %ld", s->in.version, model,
             st_model, s->eval, st_eval, s->n_ctx, s->n_chunks);
    const bool gguf_in = sm_gguf_is_file(model);
    if (gguf_in) snprintf(s->in.base_file, sizeof s->in.base_file, "%s", model);
    else in_dir(s, s->in.base_file, sizeof s->in.base_file, "%s", "base-f16.gguf");
    in_dir(s, s->logits, sizeof s->logits, "%s", "base.logits");
    cJSON *m = manifest_match(s, "base", s->key_base);
    s->base_ready = m && sm_is_file(s->in.base_file) && sm_is_file(s->logits);
    if (!s->base_ready && s->mode != SWEEP_BUILD) {
        cJSON_Delete(m);
        if (s->mode == SWEEP_REUSE)
            return sm_error("%s: the base model (%s) and its log-probabilities are not ready: the sweep's prepare "
                            "job failed or has not run (its log is in %s/logs/)", s->dir, s->in.base_file, s->dir);
        in_dir(s, s->imatrix, sizeof s->imatrix, "%s", "imatrix.gguf");
        return 0;
    }
    if (s->base_ready) {
        s->in.base_ppl = sweep_json_num(m, "ppl");
        s->in.base_ppl_stderr = sweep_json_num(m, "ppl_stderr");
        cJSON_Delete(m);
        say(s, "base: %s and its log-probabilities are up to date (reused)", s->in.base_file);
        step_done(s, "base (reused)");
        step_done(s, "base ppl (reused)");
    } else {
        cJSON_Delete(m);
        child_cmd c = {0};
        child_result r;
        if (!gguf_in) {
            cmd_add(&c, "smelt"), cmd_add(&c, "convert"), cmd_add(&c, "%s", model), cmd_add(&c, "-o");
            cmd_add(&c, "%s", s->in.base_file), cmd_add(&c, "--outtype"), cmd_add(&c, "f16"), cmd_add(&c, "--json");
            in_dir(s, out, sizeof out, "logs/%s.json", "base-convert");
            in_dir(s, log, sizeof log, "logs/%s.log", "base-convert");
            if (run_one(&c, out, log, threads, "converting the base model", &r)) return -1;
        }
        step_done(s, "base");
        c = (child_cmd){0};
        cmd_add(&c, "smelt"), cmd_add(&c, "ppl"), cmd_add(&c, "%s", s->in.base_file), cmd_add(&c, "--text");
        cmd_add(&c, "%s", s->eval), cmd_add(&c, "--ctx"), cmd_add(&c, "%ld", s->n_ctx);
        if (s->n_chunks) cmd_add(&c, "--chunks"), cmd_add(&c, "%ld", s->n_chunks);
        cmd_add(&c, "--save-logits"), cmd_add(&c, "%s", s->logits), cmd_add(&c, "--json"), cmd_add(&c, "--quiet");
        in_dir(s, out, sizeof out, "logs/%s.json", "base-ppl");
        in_dir(s, log, sizeof log, "logs/%s.log", "base-ppl");
        if (run_one(&c, out, log, threads, "the base model's perplexity", &r)) return -1;
        cJSON *j = read_json(out);
        if (!j) return -1;
        s->in.base_ppl = sweep_json_num(j, "ppl");
        s->in.base_ppl_stderr = sweep_json_num(j, "ppl_stderr");
        cJSON *mj = cJSON_CreateObject();
        cJSON_AddNumberToObject(mj, "ppl", s->in.base_ppl);
        cJSON_AddNumberToObject(mj, "ppl_stderr", s->in.base_ppl_stderr);
        cJSON_Delete(j);
        if (manifest_save(s, "base", s->key_base, mj)) return cJSON_Delete(mj), -1;
        cJSON_Delete(mj);
        say(s, "base: %s, PPL %.4f +/- %.4f (%.1f s)", s->in.base_file, s->in.base_ppl, s->in.base_ppl_stderr, r.seconds);
        step_done(s, "base ppl");
    }
    s->in.base_bytes = file_size(s->in.base_file);
    if (gguf_bpw(s->in.base_file, &s->in.n_params, &s->in.base_bpw)) return -1;
    {
        char p[700];
        in_dir(s, p, sizeof p, "logs/%s.json", "base-ppl");
        cJSON *j = sm_is_file(p) ? read_json(p) : NULL;
        s->in.n_chunks = j ? (int64_t)sweep_json_num(j, "n_chunks") : s->n_chunks;
        cJSON_Delete(j);
        sm_clear_error();
    }
    if (!need_imatrix) return 0;
    in_dir(s, s->imatrix, sizeof s->imatrix, "%s", "imatrix.gguf");
    char key[1400];
    snprintf(key, sizeof key, "%s|calib %s %s|calib chunks %ld", s->key_base, s->calib, st_calib, s->calib_chunks);
    m = manifest_match(s, "imatrix", key);
    s->imatrix_ready = m && sm_is_file(s->imatrix);
    if (s->imatrix_ready) {
        say(s, "imatrix: %s is up to date (reused)", s->imatrix);
    } else if (s->mode == SWEEP_REUSE) {
        cJSON_Delete(m);
        return sm_error("%s: the importance matrix %s is not ready: the sweep's prepare job failed or has not run "
                        "(its log is in %s/logs/)", s->dir, s->imatrix, s->dir);
    } else if (s->mode == SWEEP_BUILD) {
        child_cmd c = {0};
        child_result r;
        cmd_add(&c, "smelt"), cmd_add(&c, "imatrix"), cmd_add(&c, "%s", s->in.base_file), cmd_add(&c, "--text");
        cmd_add(&c, "%s", s->calib), cmd_add(&c, "--ctx"), cmd_add(&c, "%ld", s->n_ctx), cmd_add(&c, "-o");
        cmd_add(&c, "%s", s->imatrix);
        if (s->calib_chunks) cmd_add(&c, "--chunks"), cmd_add(&c, "%ld", s->calib_chunks);
        cmd_add(&c, "--json"), cmd_add(&c, "--quiet");
        in_dir(s, out, sizeof out, "logs/%s.json", "imatrix");
        in_dir(s, log, sizeof log, "logs/%s.log", "imatrix");
        if (run_one(&c, out, log, threads, "the importance matrix", &r)) return cJSON_Delete(m), -1;
        cJSON *mj = cJSON_CreateObject();
        cJSON_AddNumberToObject(mj, "seconds", r.seconds);
        if (manifest_save(s, "imatrix", key, mj)) return cJSON_Delete(mj), cJSON_Delete(m), -1;
        cJSON_Delete(mj);
        say(s, "imatrix: %s (%.1f s)", s->imatrix, r.seconds);
    }
    cJSON_Delete(m);
    return 0;
}

/* The command that builds row r. */
static void build_cmd(const sweep *s, const sweep_row *r, child_cmd *c) {
    cmd_add(c, "smelt");
    const bool gptq = !strcmp(r->method, "gptq");
    if (gptq) {
        cmd_add(c, "gptq"), cmd_add(c, "%s", s->in.base_file), cmd_add(c, "--calib"), cmd_add(c, "%s", s->calib);
        if (r->target_bpw > 0) cmd_add(c, "--to"), cmd_add(c, "gguf"), cmd_add(c, "--target-bpw"), cmd_add(c, "%.4g", r->target_bpw);
        else cmd_add(c, "--to"), cmd_add(c, "gguf:%s", r->recipe);
        cmd_add(c, "--samples"), cmd_add(c, "%ld", s->samples), cmd_add(c, "--seqlen"), cmd_add(c, "%ld", s->n_ctx);
        cmd_add(c, "-o"), cmd_add(c, "%s", r->file);
    } else {
        cmd_add(c, "quantize"), cmd_add(c, "%s", s->in.base_file), cmd_add(c, "%s", r->file);
        if (r->target_bpw > 0) cmd_add(c, "--target-bpw"), cmd_add(c, "%.4g", r->target_bpw);
        else cmd_add(c, "%s", r->recipe);
        if (!strcmp(r->method, "imatrix")) cmd_add(c, "--imatrix"), cmd_add(c, "%s", s->imatrix);
        if (r->target_bpw > 0) cmd_add(c, "--calib"), cmd_add(c, "%s", s->calib);
    }
    cmd_add(c, "--json"), cmd_add(c, "--quiet");
}

static void row_key(const sweep *s, const sweep_row *r, const char *cmd, char *buf, size_t cap) {
    char st_calib[64];
    stamp(s->calib, st_calib, sizeof st_calib);
    snprintf(buf, cap, "%s|calib %s %s|samples %ld|%s", s->key_base, s->calib ? s->calib : "-", st_calib, s->samples, cmd);
}

typedef struct job {
    sweep_row *row;
    int stage;        /* 0 waiting, 1 building, 2 measuring, 3 done */
    pid_t pid;
    double t0;
    char key[4096];
} job;

static int start_stage(sweep *s, job *jb) {
    sweep_row *r = jb->row;
    char out[700], log[700];
    child_cmd c = {0};
    if (jb->stage == 1) {
        build_cmd(s, r, &c);
        in_dir(s, out, sizeof out, "logs/%s.build.json", r->name);
        in_dir(s, log, sizeof log, "logs/%s.build.log", r->name);
    } else {
        cmd_add(&c, "smelt"), cmd_add(&c, "ppl"), cmd_add(&c, "%s", r->file), cmd_add(&c, "--kld");
        cmd_add(&c, "%s", s->logits), cmd_add(&c, "--json"), cmd_add(&c, "--quiet");
        in_dir(s, out, sizeof out, "logs/%s.ppl.json", r->name);
        in_dir(s, log, sizeof log, "logs/%s.ppl.log", r->name);
    }
    jb->t0 = sm_now();
    jb->pid = spawn(&c, out, log, s->child_threads);
    if (jb->pid < 0) return sm_error("%s: cannot start a process: %s", r->name, strerror(errno));
    return 0;
}

/* A child of job jb ended: record, and go on to the next stage. */
static int finish_stage(sweep *s, job *jb, const child_result *cr) {
    sweep_row *r = jb->row;
    char out[700], log[700];
    const char *stage = jb->stage == 1 ? "build" : "ppl";
    snprintf(out, sizeof out, "%s/logs/%s.%s.json", s->dir, r->name, stage);
    snprintf(log, sizeof log, "%s/logs/%s.%s.log", s->dir, r->name, stage);
    if (cr->status) {
        char *msg = NULL;
        size_t n = 0;
        if (sm_read_file(log, 1 << 20, &msg, &n) == 0 && n && msg[n - 1] == '\n') msg[n - 1] = 0;
        int rc = sm_error("%s: `%s` failed (exit %d): %s", r->name, jb->stage == 1 ? r->command : "smelt ppl --kld",
                          cr->status, msg && *msg ? msg : log);
        free(msg);
        return rc;
    }
    if (jb->stage == 1) {
        r->seconds = sm_now() - jb->t0;
        r->peak_rss = cr->peak_rss;
        r->bytes = file_size(r->file);
        if (gguf_bpw(r->file, &r->n_params, &r->bpw)) return -1;
        jb->stage = 2;
        step_done(s, r->name);
        return start_stage(s, jb);
    }
    cJSON *j = read_json(out);
    if (!j) return -1;
    sweep_row_measures_from_json(j, r);
    r->delta_ppl = r->ppl - s->in.base_ppl;
    cJSON_Delete(j);
    r->done = true;
    jb->stage = 3;
    if (!s->keep) unlink(r->file);
    cJSON *mj = sweep_row_json(r);
    int rc = manifest_save(s, r->name, jb->key, mj);
    cJSON_Delete(mj);
    say(s, "%-16s %6.3f bpw  PPL %8.4f  mean KLD %.6f  p99 %.5f  top1 %5.2f%%  (%.1f s, %.1f MiB)", r->name, r->bpw,
        r->ppl, r->kld_mean, r->kld_p99, 100 * r->top1, r->seconds, (double)r->peak_rss / 1048576.0);
    step_done(s, r->name);
    return rc;
}

/* Each row's command and key; the rows whose saved results match are taken (done, reused) and
 * their jobs marked finished. */
static void match_rows(sweep *s, sweep_row *rows, job *js, size_t n) {
    for (size_t i = 0; i < n; i++) {
        js[i].row = &rows[i];
        child_cmd c = {0};
        build_cmd(s, &rows[i], &c);
        cmd_text(&c, rows[i].command, sizeof rows[i].command);
        row_key(s, &rows[i], rows[i].command, js[i].key, sizeof js[i].key);
        cJSON *m = manifest_match(s, rows[i].name, js[i].key);
        if (m) {
            char cmd[sizeof rows[i].command];
            memcpy(cmd, rows[i].command, sizeof cmd);
            sweep_row_from_json(m, &rows[i]);
            memcpy(rows[i].command, cmd, sizeof cmd);
            rows[i].reused = rows[i].done = true;
            js[i].stage = 3;
            cJSON_Delete(m);
            say(s, "%-16s up to date (reused)", rows[i].name);
            step_done(s, rows[i].name);
            step_done(s, rows[i].name);
        } else if (s->mode != SWEEP_BUILD || (s->only >= 0 && (long)i != s->only)) {
            js[i].stage = 3; /* not this process's to build */
        }
    }
}

/* Build and measure every row not reused (SWEEP_BUILD), at most `jobs` at a time. */
static int run_rows(sweep *s, sweep_row *rows, size_t n, int jobs) {
    job *js = calloc(n ? n : 1, sizeof *js);
    if (!js) return sm_error("out of memory");
    int rc = 0, running = 0;
    size_t next = 0;
    match_rows(s, rows, js, n);
    for (;;) {
        while (rc == 0 && running < jobs && next < n) {
            job *jb = &js[next++];
            if (jb->stage == 3) continue;
            jb->stage = 1;
            if ((rc = start_stage(s, jb))) break;
            running++;
        }
        if (!running) break;
        child_result cr;
        pid_t pid = reap(&cr);
        if (pid < 0) break;
        for (size_t i = 0; i < n; i++) {
            job *jb = &js[i];
            if (jb->pid != pid || (jb->stage != 1 && jb->stage != 2)) continue;
            jb->pid = 0;
            running--;
            if (rc == 0) {
                if (finish_stage(s, jb, &cr)) rc = -1;
                else if (jb->stage == 2) running++;
            }
            break;
        }
    }
    free(js);
    return rc;
}

static int split_list(const char *opt, const char *s, cli_list *out) {
    if (!s) return 0;
    char *dup = strdup(s), *save = NULL;
    if (!dup) return sm_error("out of memory");
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const char **v = realloc(out->v, (out->n + 1) * sizeof *v);
        if (!v) break;
        out->v = v;
        out->v[out->n++] = strdup(t);
    }
    free(dup);
    if (!out->n) return sm_error("%s: expected a comma-separated list", opt);
    return 0;
}

static void list_free(cli_list *l) {
    for (size_t i = 0; i < l->n; i++) free((char *)l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* The artifacts' array of report.json, and those that failed (a Slurm report). */
static void add_rows(cJSON *rep, const sweep_row *rows, size_t n, const sweep *s, const sweep_row *failed, size_t n_failed) {
    cJSON *arr = cJSON_AddArrayToObject(rep, "artifacts");
    for (size_t i = 0; i < n; i++) {
        cJSON *o = sweep_row_json(&rows[i]);
        cJSON_AddBoolToObject(o, "on_front", sweep_on_front(rows, n, i));
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(rep, "n_failed", (double)n_failed);
    cJSON *f = cJSON_AddArrayToObject(rep, "failed");
    for (size_t i = 0; i < n_failed; i++) {
        char where[1200];
        sweep_slurm_task_log(s->dir, failed[i].name, where, sizeof where);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", failed[i].name);
        cJSON_AddStringToObject(o, "command", failed[i].command);
        where[0] ? cJSON_AddStringToObject(o, "slurm", where) : cJSON_AddNullToObject(o, "slurm");
        cJSON_AddItemToArray(f, o);
    }
}

/* The report step of a Slurm sweep: the rows not done move to `failed` (in order), the done
 * ones stay in front. Returns how many are done. */
static size_t split_failed(sweep_row *rows, size_t n, sweep_row *failed, size_t *n_failed) {
    size_t k = 0;
    *n_failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (rows[i].done) rows[k++] = rows[i];
        else failed[(*n_failed)++] = rows[i];
    }
    return k;
}

/* SLURM_ARRAY_TASK_ID: the row this array task builds. */
static int task_row(size_t n_rows, long *out) {
    const char *e = getenv("SLURM_ARRAY_TASK_ID");
    char *end;
    const long v = e ? strtol(e, &end, 10) : -1;
    if (!e || *end || v < 0 || (size_t)v >= n_rows)
        return sm_error("--slurm-step task: SLURM_ARRAY_TASK_ID is '%s', expected a row number below %zu (this step "
                        "runs inside a job array that smelt sweep --slurm submitted)", e ? e : "(unset)", n_rows);
    *out = v;
    return 0;
}

/* One sweep: locally, as a Slurm submission, or one step of a submitted sweep (o->step). With
 * out non-NULL the JSON report goes there instead of standard output. */
static int sweep_main(const sweep_opts *o, cJSON **out) {
    const char *model = o->model, *eval = o->eval, *calib = o->calib, *dir = o->dir;
    const char *methods_s = o->methods ? o->methods : calib ? "rtn,imatrix,gptq" : "rtn";
    long jobs = o->jobs;
    cli_list recipes = {0}, methods = {0}, targets = {0};
    sweep_row *rows = NULL, *failed = NULL;
    job *js = NULL;
    sweep_task *tasks = NULL;
    size_t n_rows = 0;
    int rc = 0;
    if (split_list("--recipes", o->recipes, &recipes) || split_list("--methods", methods_s, &methods) ||
        split_list("--target-bpw", o->targets, &targets)) {
        rc = cli_usage_error(&sm_cmd_sweep, "%s", sm_last_error());
        goto done;
    }
    bool need_imatrix = false;
    for (size_t i = 0; i < recipes.n; i++)
        if ((rc = cli_check_recipe(&sm_cmd_sweep, "--recipes ", recipes.v[i]))) goto done;
    for (size_t i = 0; i < methods.n; i++) {
        const char *m = methods.v[i];
        if (strcmp(m, "rtn") && strcmp(m, "imatrix") && strcmp(m, "gptq")) {
            rc = cli_usage_error(&sm_cmd_sweep, "--methods: unknown method '%s' (expected rtn, imatrix, gptq)", m);
            goto done;
        }
        if (strcmp(m, "rtn") && !calib) {
            rc = cli_usage_error(&sm_cmd_sweep, "--methods %s needs --calib TEXT (calibrating on --eval would "
                                                "flatter it)", m);
            goto done;
        }
        if (!strcmp(m, "imatrix")) need_imatrix = true;
    }
    for (size_t i = 0; i < targets.n; i++) {
        char *end;
        const double b = strtod(targets.v[i], &end);
        if (*end || !(b >= 1.5 && b <= 16)) {
            rc = cli_usage_error(&sm_cmd_sweep, "--target-bpw: '%s' is not a number of bits per weight in [1.5, 16]",
                                 targets.v[i]);
            goto done;
        }
    }
    if (targets.n && !calib) {
        rc = cli_usage_error(&sm_cmd_sweep, "--target-bpw needs --calib TEXT (the mixtures' sensitivities are measured on it)");
        goto done;
    }
    sweep_mode mode = o->slurm ? SWEEP_CHECK : SWEEP_BUILD;
    if (o->step && strcmp(o->step, "prepare") && strcmp(o->step, "task") && strcmp(o->step, "report")) {
        rc = cli_usage_error(&sm_cmd_sweep, "--slurm-step: '%s' is not prepare, task or report", o->step);
        goto done;
    }
    if (o->step && o->slurm) {
        rc = cli_usage_error(&sm_cmd_sweep, "--slurm-step is what a submitted job runs: not with --slurm");
        goto done;
    }
    if (o->step && !strcmp(o->step, "report")) mode = SWEEP_REUSE;
    if (sm_sniff_expect(model, SM_FILE_BIT(SM_FILE_GGUF) | SM_FILE_BIT(SM_FILE_HF_DIR),
                        "an F32/F16/BF16 GGUF or a Hugging Face model directory", NULL)) {
        rc = cli_fail_last("sweep");
        goto done;
    }
    {
        const char *inputs[] = {model, eval, calib};
        if (sm_check_output_not_input(dir, inputs, 3) || sm_check_output_path(dir, true)) {
            rc = cli_fail_last("sweep");
            goto done;
        }
        char p[700];
        const char *subs[] = {"", "/runs", "/logs"};
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "%s%s", dir, subs[i]);
            if (mkdir(p, 0777) && errno != EEXIST) {
                rc = cli_fail("sweep", "%s: cannot create the directory: %s", p, strerror(errno));
                goto done;
            }
        }
    }
    /* a job gets the CPUs Slurm gave it (sbatch --cpus-per-task), not the whole node's */
    if (o->step && !o->threads && !getenv("SMELT_THREADS") && getenv("SLURM_CPUS_PER_TASK"))
        setenv("SMELT_THREADS", getenv("SLURM_CPUS_PER_TASK"), 1);
    const cli_common com = {.threads = o->threads, .json = o->json, .quiet = o->quiet};
    const int threads = cli_common_apply(&com);
    n_rows = (recipes.n + targets.n) * methods.n;
    rows = calloc(n_rows ? n_rows : 1, sizeof *rows);
    failed = calloc(n_rows ? n_rows : 1, sizeof *failed);
    js = calloc(n_rows ? n_rows : 1, sizeof *js);
    tasks = calloc(n_rows ? n_rows : 1, sizeof *tasks);
    if (!rows || !failed || !js || !tasks) { rc = cli_fail("sweep", "out of memory"); goto done; }
    size_t k = 0;
    for (size_t mi = 0; mi < methods.n; mi++) {
        for (size_t i = 0; i < recipes.n + targets.n; i++, k++) {
            sweep_row *r = &rows[k];
            snprintf(r->method, sizeof r->method, "%s", methods.v[mi]);
            if (i < recipes.n) {
                snprintf(r->recipe, sizeof r->recipe, "%s", sm_recipe_find(recipes.v[i])->name);
                snprintf(r->name, sizeof r->name, "%s-%s", r->recipe, r->method);
            } else {
                r->target_bpw = strtod(targets.v[i - recipes.n], NULL);
                snprintf(r->name, sizeof r->name, "bpw%.2f-%s", r->target_bpw, r->method);
            }
            snprintf(r->file, sizeof r->file, "%s/%s.gguf", dir, r->name);
        }
    }
    cJSON *rep;
    {
        const char *ins[] = {model, eval, calib};
        rep = cli_report_new("sweep", ins, 3, dir);
    }
    sweep s = {.dir = dir, .eval = eval, .calib = calib, .n_ctx = o->n_ctx, .n_chunks = o->n_chunks, .samples = o->samples,
               .calib_chunks = o->calib_chunks, .mode = mode, .only = -1,
               .keep = o->keep, .quiet = o->quiet, .lines = !o->quiet && !o->json && mode != SWEEP_CHECK};
    s.in = (sweep_info){.model = model, .eval = eval, .calib = calib, .dir = dir, .n_ctx = o->n_ctx,
                        .version = cJSON_GetObjectItem(rep, "smelt_version")->valuestring};
    if (jobs > threads) jobs = threads;
    s.child_threads = threads / (int)jobs > 0 ? threads / (int)jobs : 1;
    const double t0 = sm_now();
    sm_progress_begin(&s.bar, "sweep", 2 + 2 * n_rows, o->quiet || mode == SWEEP_CHECK);
    if (o->step && !strcmp(o->step, "task")) { /* the base must be there; this task builds its one row */
        s.mode = SWEEP_REUSE;
        rc = task_row(n_rows, &s.only) || prepare(&s, model, need_imatrix, threads);
        s.mode = SWEEP_BUILD;
    } else {
        rc = prepare(&s, model, need_imatrix, threads);
    }
    if (rc == 0 && mode == SWEEP_CHECK) { /* a submission: what is up to date decides what is submitted */
        match_rows(&s, rows, js, n_rows);
        for (size_t i = 0; i < n_rows; i++) tasks[i] = (sweep_task){rows[i].name, js[i].key, rows[i].done};
        sm_progress_end(&s.bar);
        cJSON_AddStringToObject(rep, "model", model);
        cJSON_AddStringToObject(rep, "eval_text", eval);
        calib ? cJSON_AddStringToObject(rep, "calib_text", calib) : cJSON_AddNullToObject(rep, "calib_text");
        rc = sweep_slurm_submit(o, tasks, n_rows, !s.base_ready || (need_imatrix && !s.imatrix_ready), rep);
        if (rc) cJSON_Delete(rep);
        else if (out) *out = rep;
        else if (o->json) cli_report_print(rep, dir);
        else cJSON_Delete(rep);
        goto done;
    }
    if (rc == 0 && o->step && !strcmp(o->step, "prepare")) {
        sm_progress_end(&s.bar);
        cJSON_Delete(rep);
        if (!o->quiet) cli_summary("sweep", dir, sm_now() - t0, "the base model%s ready", need_imatrix ? " and the imatrix" : "");
        goto done;
    }
    if (rc == 0) rc = run_rows(&s, rows, n_rows, (int)jobs);
    if (rc == 0 && o->step && !strcmp(o->step, "task")) {
        sm_progress_end(&s.bar);
        cJSON_Delete(rep);
        if (!o->quiet) cli_summary("sweep", dir, sm_now() - t0, "%s built and measured", rows[s.only].name);
        goto done;
    }
    size_t n_failed = 0;
    const size_t n_done = rc == 0 ? split_failed(rows, n_rows, failed, &n_failed) : 0;
    if (rc == 0) rc = sweep_write_reports(&s.in, rows, n_done);
    sm_progress_end(&s.bar);
    if (rc) {
        cJSON_Delete(rep);
        rc = cli_fail_last("sweep");
        goto done;
    }
    {
        size_t n_reused = 0;
        for (size_t i = 0; i < n_done; i++) n_reused += rows[i].reused;
        cJSON_AddStringToObject(rep, "model", model);
        cJSON_AddStringToObject(rep, "eval_text", eval);
        if (calib) cJSON_AddStringToObject(rep, "calib_text", calib);
        else cJSON_AddNullToObject(rep, "calib_text");
        cJSON_AddNumberToObject(rep, "n_ctx", (double)o->n_ctx);
        cJSON_AddNumberToObject(rep, "n_chunks", (double)s.in.n_chunks);
        cJSON *b = cJSON_AddObjectToObject(rep, "base");
        cJSON_AddStringToObject(b, "file", s.in.base_file);
        cJSON_AddNumberToObject(b, "bytes", (double)s.in.base_bytes);
        cJSON_AddNumberToObject(b, "n_params", (double)s.in.n_params);
        cJSON_AddNumberToObject(b, "bpw", s.in.base_bpw);
        cJSON_AddNumberToObject(b, "ppl", s.in.base_ppl);
        cJSON_AddNumberToObject(b, "ppl_stderr", s.in.base_ppl_stderr);
        cJSON_AddNumberToObject(rep, "jobs", (double)jobs);
        cJSON_AddNumberToObject(rep, "threads", threads);
        cJSON_AddStringToObject(rep, "peak_memory", "ru_maxrss of the child process that built the artifact");
        cJSON_AddNumberToObject(rep, "n_artifacts", (double)n_done);
        cJSON_AddNumberToObject(rep, "n_reused", (double)n_reused);
        cJSON_AddNumberToObject(rep, "seconds", sm_now() - t0);
        add_rows(rep, rows, n_done, &s, failed, n_failed);
        char p[700], *txt = cJSON_PrintUnformatted(rep);
        snprintf(p, sizeof p, "%s/report.json", dir);
        rc = txt ? sweep_write_file(p, txt) : sm_error("out of memory");
        free(txt);
        if (rc) {
            cJSON_Delete(rep);
            rc = cli_fail_last("sweep");
            goto done;
        }
        if (n_failed) { /* a Slurm report: the artifacts whose tasks ended without results */
            char names[1024] = "";
            for (size_t i = 0; i < n_failed && strlen(names) + 80 < sizeof names; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", failed[i].name);
            cJSON_Delete(rep);
            rc = cli_fail("sweep", "%s: %zu of %zu artifacts failed (%s): their tasks ended without results (logs: "
                          "%s/logs/; smelt sweep --status %s); the report covers the other %zu; submitting the same "
                          "command again builds only what is missing", dir, n_failed, n_rows, names, dir, dir, n_done);
            goto done;
        }
        if (out) *out = rep;
        else if (o->json) cli_report_print(rep, dir);
        else {
            cJSON_Delete(rep);
            if (!o->quiet) {
                char b1[32];
                cli_summary("sweep", dir, sm_now() - t0, "%s (%zu reused): report.html, report.md, report.json",
                            cli_count(b1, sizeof b1, (long long)n_rows, "artifact"), n_reused);
            }
        }
    }
done:
    free(rows);
    free(failed);
    free(js);
    free(tasks);
    list_free(&recipes);
    list_free(&methods);
    list_free(&targets);
    return rc;
}

/* "a,b,c" from a list (into buf). */
static const char *join(char *const *v, size_t n, char *buf, size_t cap) {
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", i ? "," : "", v[i]);
    return buf;
}

/* `--matrix FILE`: one sweep per model of the release matrix, into DIR/NAME, with the options
 * of the command line (--slurm, --jobs, --threads, --keep, ...) applied to each. */
static int run_matrix(const char *path, const sweep_opts *base) {
    sm_matrix m;
    if (sm_matrix_load(path, &m)) return cli_fail_last("sweep");
    int rc = 0;
    if (mkdir(base->dir, 0777) && errno != EEXIST) {
        rc = cli_fail("sweep", "%s: cannot create the directory: %s", base->dir, strerror(errno));
        goto done;
    }
    char recipes[4096], methods[256], targets[1024], dir[4200];
    cJSON *subs = cJSON_CreateArray();
    for (size_t i = 0; i < m.n_models && rc == 0; i++) {
        sweep_opts o = *base;
        snprintf(dir, sizeof dir, "%s/%s", base->dir, m.models[i].name);
        o.dir = dir, o.model = m.models[i].path, o.eval = m.eval, o.calib = m.calib;
        if (m.recipes) o.recipes = join(m.recipes, m.n_recipes, recipes, sizeof recipes);
        if (m.methods) o.methods = join(m.methods, m.n_methods, methods, sizeof methods);
        targets[0] = 0;
        for (size_t j = 0; j < m.n_target_bpw; j++)
            snprintf(targets + strlen(targets), sizeof targets - strlen(targets), "%s%.4g", j ? "," : "", m.target_bpw[j]);
        o.targets = m.n_target_bpw ? targets : NULL;
        if (m.ctx) o.n_ctx = m.ctx;
        if (m.chunks) o.n_chunks = m.chunks;
        if (m.calib_chunks) o.calib_chunks = m.calib_chunks;
        if (m.samples) o.samples = m.samples;
        o.keep = base->keep || m.keep;
        cJSON *sub = NULL;
        if (!base->quiet && !base->json) fprintf(stderr, "smelt sweep: %s: model %s -> %s\n", path, m.models[i].name, dir);
        rc = sweep_main(&o, base->json ? &sub : NULL);
        if (sub) cJSON_AddItemToArray(subs, sub);
    }
    if (rc == 0 && base->json) {
        const char *ins[] = {path};
        cJSON *rep = cli_report_new("sweep", ins, 1, base->dir);
        cJSON_AddStringToObject(rep, "matrix", path);
        cJSON_AddItemToObject(rep, "sweeps", subs);
        cli_report_print(rep, base->dir);
    } else {
        cJSON_Delete(subs);
    }
done:
    sm_matrix_free(&m);
    return rc;
}

static int run(int argc, char **argv) {
    cli_common com = {0};
    sweep_opts o = {.recipes = "Q2_K,Q3_K_S,Q3_K_M,Q4_0,Q4_K_S,Q4_K_M,Q5_K_M,Q6_K", .n_ctx = 512, .samples = 64, .jobs = 1};
    const char *status = NULL, *matrix = NULL;
    bool given[5] = {0};
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_JSON(com),
        {"--eval --text -f", CLI_STR, &o.eval, 0, 0, &given[0]},
        {"--calib", CLI_STR, &o.calib, 0, 0, &given[1]},
        {"--recipes", CLI_STR, &o.recipes, 0, 0, &given[2]},
        {"--methods", CLI_STR, &o.methods, 0, 0, &given[3]},
        {"--target-bpw", CLI_STR, &o.targets, 0, 0, &given[4]},
        {"-c --ctx", CLI_LONG, &o.n_ctx, 16, 1 << 20, NULL},
        {"--chunks", CLI_LONG, &o.n_chunks, 1, 1L << 30, NULL},
        {"--calib-chunks", CLI_LONG, &o.calib_chunks, 1, 1L << 30, NULL},
        {"--samples", CLI_LONG, &o.samples, 1, 1 << 20, NULL},
        {"-j --jobs", CLI_LONG, &o.jobs, 1, 256, NULL},
        {"--keep", CLI_FLAG, &o.keep, 0, 0, NULL},
        {"--matrix", CLI_STR, &matrix, 0, 0, NULL},
        {"--slurm", CLI_FLAG, &o.slurm, 0, 0, NULL},
        {"--slurm-opt", CLI_LIST, &o.slurm_opts, 0, 0, NULL},
        {"--slurm-step", CLI_STR, &o.step, 0, 0, NULL},
        {"--status", CLI_STR, &status, 0, 0, NULL},
        {0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(&sm_cmd_sweep, NULL, argc, argv, opts, pos, 1, &npos);
    if (rc) goto out;
    o.model = npos ? pos[0] : NULL, o.dir = com.out, o.threads = com.threads, o.json = com.json, o.quiet = com.quiet;
    if (o.slurm_opts.n && !o.slurm) rc = cli_usage_error(&sm_cmd_sweep, "--slurm-opt is for --slurm");
    else if (status && (o.model || o.dir || matrix || o.slurm))
        rc = cli_usage_error(&sm_cmd_sweep, "--status DIR takes no MODEL, -o, --matrix or --slurm");
    else if (status) rc = sweep_slurm_status(status, o.json);
    else if (!o.dir) rc = cli_usage_error(&sm_cmd_sweep, "expected -o DIR");
    else if (matrix && (o.model || given[0] || given[1] || given[2] || given[3] || given[4]))
        rc = cli_usage_error(&sm_cmd_sweep, "--matrix FILE names the models, texts, recipes and methods: not MODEL, "
                                            "--eval, --calib, --recipes, --methods or --target-bpw too");
    else if (matrix && o.step) rc = cli_usage_error(&sm_cmd_sweep, "--slurm-step runs one model's sweep: not with --matrix");
    else if (matrix) rc = run_matrix(matrix, &o);
    else if (!o.model) rc = cli_usage_error(&sm_cmd_sweep, "expected MODEL (or --matrix FILE)");
    else if (!o.eval) rc = cli_usage_error(&sm_cmd_sweep, "expected --eval TEXT");
    else rc = sweep_main(&o, NULL);
out:
    cli_list_free(&o.slurm_opts);
    return rc;
}

const sm_command sm_cmd_sweep = {"sweep", "quantize with many recipes and methods, measure each, report", USAGE, run};
