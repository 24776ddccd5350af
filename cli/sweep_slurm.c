/* sweep_slurm.c - `smelt sweep --slurm`: the sweep as Slurm jobs, and `smelt sweep --status`.
 *
 * A submission is up to three jobs, each running an ordinary `smelt sweep` command (the one the
 * user typed, with --slurm-step saying which part) through DIR/slurm/run.sh, a fixed two-line
 * script that executes its arguments: nothing the user wrote is ever parsed by a shell. The
 * prepare job (only when the base model, its log-probabilities or the imatrix are not up to
 * date) builds them; the job array (one task per artifact not up to date, SLURM_ARRAY_TASK_ID
 * = the artifact's row) depends on it (afterok); the report job depends on the array
 * (afterany) and writes the report, naming the artifacts that failed. sbatch, squeue, sacct
 * and scancel run through fork/exec with their arguments as argv and a time limit each. */
#include "sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The time limit of each sbatch, squeue, sacct and scancel call: 60 s, or SMELT_SLURM_TIMEOUT. */
static int slurm_timeout(void) {
    const char *e = getenv("SMELT_SLURM_TIMEOUT");
    const int v = e ? atoi(e) : 0;
    return v > 0 && v <= 3600 ? v : 60;
}
#define SLURM_TIMEOUT_S slurm_timeout()
#define MAX_ARGV 64

/* ---- running a Slurm client ---- */

/* argv[0] (looked up on PATH) with stdout into out and stderr into err (each truncated to its
 * capacity), killed after timeout_s. Its exit status, or -1 with the error set (not started,
 * killed at the time limit). */
static int slurm_exec(const char *const *argv, char *out, size_t ocap, char *err, size_t ecap, int timeout_s) {
    int po[2], pe[2];
    out[0] = err[0] = 0;
    if (pipe(po)) return sm_error("%s: cannot create a pipe: %s", argv[0], strerror(errno));
    if (pipe(pe)) {
        close(po[0]), close(po[1]);
        return sm_error("%s: cannot create a pipe: %s", argv[0], strerror(errno));
    }
    fflush(stdout);
    fflush(stderr);
    const pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0); /* its own group: a time-out kills whatever it started too */
        dup2(po[1], 1), dup2(pe[1], 2);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) dup2(fd, 0), close(fd);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]), close(pe[1]);
    if (pid < 0) {
        close(po[0]), close(pe[0]);
        return sm_error("%s: cannot start a process: %s", argv[0], strerror(errno));
    }
    const double deadline = sm_now() + timeout_s;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    size_t len[2] = {0, 0};
    char *buf[2] = {out, err};
    const size_t cap[2] = {ocap, ecap};
    int open_fds = 2;
    bool timed_out = false;
    while (open_fds) {
        const double left = deadline - sm_now();
        if (left <= 0) { timed_out = true; break; }
        const int r = poll(fds, 2, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char tmp[4096];
            const ssize_t k = read(fds[i].fd, tmp, sizeof tmp);
            if (k <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            const size_t room = cap[i] - 1 - len[i], take = (size_t)k < room ? (size_t)k : room;
            memcpy(buf[i] + len[i], tmp, take);
            len[i] += take;
            buf[i][len[i]] = 0;
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0) close(fds[i].fd);
    int st = 0;
    for (;;) { /* the pipes closed: the process is ending; wait for it within the same limit */
        if (!timed_out && sm_now() >= deadline) timed_out = true;
        if (timed_out) kill(-pid, SIGKILL), kill(pid, SIGKILL);
        const pid_t w = waitpid(pid, &st, timed_out ? 0 : WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return sm_error("%s: lost the process: %s", argv[0], strerror(errno));
        if (w == 0) usleep(10000);
    }
    if (timed_out) return sm_error("%s did not answer within %d s (is slurmctld reachable?)", argv[0], timeout_s);
    while (len[1] && (err[len[1] - 1] == '\n' || err[len[1] - 1] == ' ')) err[--len[1]] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* An argv being built (strings copied). */
typedef struct argv_b {
    char *v[MAX_ARGV + 1];
    int n;
} argv_b;

static void arg(argv_b *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(argv_b *a, const char *fmt, ...) {
    if (a->n >= MAX_ARGV) return;
    char tmp[4200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if ((a->v[a->n] = strdup(tmp))) a->n++;
}

static void argv_free(argv_b *a) {
    for (int i = 0; i < a->n; i++) free(a->v[i]);
    a->n = 0;
}

/* ---- the jobs' commands ---- */

/* `smelt sweep ... --slurm-step STEP`: the user's sweep with its options spelled out. */
static void step_args(const sweep_opts *o, const char *exe, const char *step, argv_b *a) {
    arg(a, "%s", exe), arg(a, "sweep"), arg(a, "%s", o->model), arg(a, "--eval"), arg(a, "%s", o->eval);
    if (o->calib) arg(a, "--calib"), arg(a, "%s", o->calib);
    arg(a, "--recipes"), arg(a, "%s", o->recipes), arg(a, "--methods"), arg(a, "%s", o->methods);
    if (o->targets) arg(a, "--target-bpw"), arg(a, "%s", o->targets);
    arg(a, "--ctx"), arg(a, "%ld", o->n_ctx), arg(a, "--samples"), arg(a, "%ld", o->samples);
    if (o->n_chunks) arg(a, "--chunks"), arg(a, "%ld", o->n_chunks);
    if (o->calib_chunks) arg(a, "--calib-chunks"), arg(a, "%ld", o->calib_chunks);
    if (o->threads) arg(a, "--threads"), arg(a, "%ld", o->threads);
    if (o->keep) arg(a, "--keep");
    arg(a, "-o"), arg(a, "%s", o->dir), arg(a, "--slurm-step"), arg(a, "%s", step);
}

static const char RUN_SH[] = "#!/bin/sh\n"
                             "# written by smelt sweep --slurm: runs its arguments (a smelt command) as they are\n"
                             "exec \"$@\"\n";

/* sbatch ... DIR/slurm/run.sh SMELT sweep ... --slurm-step STEP: the job id into id. */
static int sbatch(const sweep_opts *o, const char *exe, const char *cwd, const char *step, const char *name,
                  const char *output, const char *array, const char *dependency, char *id, size_t cap) {
    argv_b a = {0};
    arg(&a, "sbatch"), arg(&a, "--parsable"), arg(&a, "--job-name=%s", name), arg(&a, "--output=%s", output);
    arg(&a, "--chdir=%s", cwd);
    if (array) arg(&a, "--array=%s", array);
    if (dependency) arg(&a, "--dependency=%s", dependency), arg(&a, "--kill-on-invalid-dep=yes");
    for (size_t i = 0; i < o->slurm_opts.n && a.n < MAX_ARGV - 40; i++) arg(&a, "%s", o->slurm_opts.v[i]);
    arg(&a, "%s/slurm/run.sh", o->dir);
    step_args(o, exe, step, &a);
    char out[256], err[2048];
    int rc = a.n < MAX_ARGV ? slurm_exec((const char *const *)a.v, out, sizeof out, err, sizeof err, SLURM_TIMEOUT_S)
                            : sm_error("too many --slurm-opt");
    argv_free(&a);
    if (rc > 0) return sm_error("sbatch (the %s job) failed (exit %d): %s", step, rc, err[0] ? err : "no message");
    if (rc < 0) return -1;
    const size_t n = strspn(out, "0123456789"); /* "ID" or "ID;CLUSTER" */
    if (!n || n >= cap) return sm_error("sbatch (the %s job): no job id in its output '%.80s'", step, out);
    memcpy(id, out, n);
    id[n] = 0;
    return 0;
}

static void scancel(const char *id) {
    if (!id[0]) return;
    const char *argv[] = {"scancel", id, NULL};
    char out[64], err[256];
    slurm_exec(argv, out, sizeof out, err, sizeof err, SLURM_TIMEOUT_S);
}

/* ---- what the cluster says: squeue (recent jobs), sacct (older ones, when kept) ---- */

typedef struct slurm_state {
    char job[32];   /* "13" or "13_2" */
    char state[32]; /* PENDING, RUNNING, COMPLETED, CANCELLED, ... */
} slurm_state;

typedef struct slurm_view {
    slurm_state *v;
    size_t n, cap;
} slurm_view;

static void view_add(slurm_view *sv, const char *job, const char *state) {
    for (size_t i = 0; i < sv->n; i++)
        if (!strcmp(sv->v[i].job, job)) return; /* squeue first: it is the current word */
    if (sv->n == sv->cap) {
        const size_t cap = sv->cap ? 2 * sv->cap : 64;
        slurm_state *v = realloc(sv->v, cap * sizeof *v);
        if (!v) return;
        sv->v = v, sv->cap = cap;
    }
    slurm_state *e = &sv->v[sv->n++];
    snprintf(e->job, sizeof e->job, "%.31s", job);
    snprintf(e->state, sizeof e->state, "%.*s", (int)strcspn(state, " \n"), state); /* "CANCELLED by 0" */
}

static const char *view_get(const slurm_view *sv, const char *job) {
    for (size_t i = 0; i < sv->n; i++)
        if (!strcmp(sv->v[i].job, job)) return sv->v[i].state;
    return NULL;
}

/* Lines "JOB|STATE" of a client's output into the view. */
static void view_parse(slurm_view *sv, char *text) {
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *bar = strchr(line, '|');
        if (!bar) continue;
        *bar = 0;
        if (strchr(line, '[')) continue; /* sacct's "13_[1-2]": pending tasks squeue lists one by one */
        view_add(sv, line, bar + 1);
    }
}

/* The states of jobs `ids` (and their array tasks): squeue --states=all knows the active and the
 * recently ended ones, sacct the rest where the cluster keeps accounting (its failure is no
 * error: many test clusters keep none). -1 only when squeue itself fails. */
static int slurm_query(const char *const *ids, size_t n, slurm_view *sv) {
    char list[256] = "";
    for (size_t i = 0; i < n; i++)
        if (ids[i] && ids[i][0])
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? "," : "", ids[i]);
    if (!list[0]) return 0;
    static char out[1 << 20];
    char err[1024];
    const char *sq[] = {"squeue", "--me", "--noheader", "--array", "--states=all", "--format=%i|%T", NULL};
    int rc = slurm_exec(sq, out, sizeof out, err, sizeof err, SLURM_TIMEOUT_S);
    if (rc) return rc < 0 ? -1 : sm_error("squeue failed (exit %d): %s", rc, err);
    view_parse(sv, out);
    const char *sa[] = {"sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State", "-j", list, NULL};
    if (slurm_exec(sa, out, sizeof out, err, sizeof err, SLURM_TIMEOUT_S) == 0) view_parse(sv, out);
    sm_clear_error();
    return 0;
}

static bool state_active(const char *st) {
    static const char *const active[] = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING",
                                         "SUSPENDED", "STAGE_OUT", "SIGNALING", "REQUEUE_HOLD", "REQUEUE_FED", NULL};
    for (int i = 0; st && active[i]; i++)
        if (!strcmp(st, active[i])) return true;
    return false;
}

/* ---- DIR/slurm/jobs.json ---- */

/* The record of DIR's last submission into *out (NULL when there is none). 0, or -1. */
static int read_jobs(const char *dir, cJSON **out) {
    char p[700], *txt = NULL;
    size_t len = 0;
    *out = NULL;
    snprintf(p, sizeof p, "%s/slurm/jobs.json", dir);
    if (!sm_is_file(p)) return 0;
    if (sm_read_file(p, (size_t)1 << 26, &txt, &len)) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sm_error("%s: not a record of a Slurm submission (expected a JSON object)", p);
    }
    *out = j;
    return 0;
}

static const char *jstr(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The job ids a record holds: prepare, array, report. */
static void record_ids(const cJSON *rec, const char *ids[3]) {
    ids[0] = jstr(rec, "prepare_job"), ids[1] = jstr(rec, "array_job"), ids[2] = jstr(rec, "report_job");
}

/* The task's array job id "13_2" and its log into job/log. */
static void task_names(const char *dir, const cJSON *rec, const cJSON *t, char *job, size_t jcap, char *log, size_t lcap) {
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(t, "index");
    const char *arr = jstr(rec, "array_job");
    job[0] = log[0] = 0;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "submitted")) || !arr[0] || !cJSON_IsNumber(idx)) return;
    snprintf(job, jcap, "%s_%d", arr, idx->valueint);
    snprintf(log, lcap, "%s/logs/slurm-%s_%d.out", dir, arr, idx->valueint);
}

void sweep_slurm_task_log(const char *dir, const char *name, char *buf, size_t cap) {
    buf[0] = 0;
    cJSON *rec = NULL;
    if (read_jobs(dir, &rec)) sm_clear_error();
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(rec, "tasks")) {
        if (strcmp(jstr(t, "name"), name)) continue;
        char job[64], log[800];
        task_names(dir, rec, t, job, sizeof job, log, sizeof log);
        if (job[0]) snprintf(buf, cap, "array task %s, log %s", job, log);
    }
    cJSON_Delete(rec);
}

/* ---- submission ---- */

int sweep_slurm_submit(const sweep_opts *o, const sweep_task *tasks, size_t n, bool need_prepare, cJSON *rep) {
    cJSON *old = NULL;
    if (read_jobs(o->dir, &old)) return cli_fail_last("sweep");
    if (old) { /* an earlier submission still queued would race this one for the same files */
        const char *ids[3];
        record_ids(old, ids);
        slurm_view sv = {0};
        int rc = slurm_query(ids, 3, &sv);
        char busy[256] = "";
        for (size_t i = 0; rc == 0 && i < sv.n; i++) {
            const char *j = sv.v[i].job;
            for (int k = 0; k < 3; k++) {
                const size_t l = strlen(ids[k]);
                if (l && !strncmp(j, ids[k], l) && (j[l] == 0 || j[l] == '_') && state_active(sv.v[i].state) &&
                    strlen(busy) + strlen(j) + 2 < sizeof busy)
                    snprintf(busy + strlen(busy), sizeof busy - strlen(busy), "%s%s", busy[0] ? " " : "", j);
            }
        }
        free(sv.v);
        cJSON_Delete(old);
        if (rc) return cli_fail_last("sweep");
        if (busy[0])
            return cli_fail("sweep", "%s: jobs of an earlier submission are still queued or running (%s); wait for "
                                     "them (smelt sweep --status %s) or scancel them", o->dir, busy, o->dir);
    }
    char exe[4096], cwd[4096], p[800];
    const ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0 || !getcwd(cwd, sizeof cwd)) return cli_fail("sweep", "cannot find this smelt binary or the current directory");
    exe[k] = 0;
    snprintf(p, sizeof p, "%s/slurm", o->dir);
    if (mkdir(p, 0777) && errno != EEXIST) return cli_fail("sweep", "%s: cannot create the directory: %s", p, strerror(errno));
    snprintf(p, sizeof p, "%s/slurm/run.sh", o->dir);
    if (sweep_write_file(p, RUN_SH) || chmod(p, 0755)) return cli_fail("sweep", "%s: cannot write the job script", p);

    char array[4096] = "", prep[32] = "", arr[32] = "", report[32] = "", dep[80], out[800];
    size_t n_submit = 0;
    for (size_t i = 0; i < n; i++) {
        if (tasks[i].done) continue;
        if (strlen(array) + 24 >= sizeof array) return cli_fail("sweep", "too many artifacts for one job array");
        snprintf(array + strlen(array), sizeof array - strlen(array), "%s%zu", n_submit ? "," : "", i);
        n_submit++;
    }
    int rc = 0;
    if (need_prepare) {
        snprintf(out, sizeof out, "%s/logs/slurm-prepare-%%j.out", o->dir);
        rc = sbatch(o, exe, cwd, "prepare", "smelt-prepare", out, NULL, NULL, prep, sizeof prep);
    }
    if (rc == 0 && n_submit) {
        snprintf(out, sizeof out, "%s/logs/slurm-%%A_%%a.out", o->dir);
        snprintf(dep, sizeof dep, "afterok:%s", prep);
        rc = sbatch(o, exe, cwd, "task", "smelt-sweep", out, array, prep[0] ? dep : NULL, arr, sizeof arr);
    }
    if (rc == 0) {
        snprintf(out, sizeof out, "%s/logs/slurm-report-%%j.out", o->dir);
        snprintf(dep, sizeof dep, "afterany:%s", arr[0] ? arr : prep);
        rc = sbatch(o, exe, cwd, "report", "smelt-report", out, NULL, arr[0] || prep[0] ? dep : NULL, report,
                    sizeof report);
    }
    if (rc) { /* no half submission: cancel what was queued */
        scancel(arr), scancel(prep);
        return cli_fail_last("sweep");
    }
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "prepare_job", prep), cJSON_AddStringToObject(rec, "array_job", arr);
    cJSON_AddStringToObject(rec, "report_job", report), cJSON_AddStringToObject(rec, "cwd", cwd);
    cJSON_AddNumberToObject(rec, "submitted_unix", (double)time(NULL));
    cJSON *ta = cJSON_AddArrayToObject(rec, "tasks");
    for (size_t i = 0; i < n; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "index", (double)i), cJSON_AddStringToObject(t, "name", tasks[i].name);
        cJSON_AddStringToObject(t, "key", tasks[i].key), cJSON_AddBoolToObject(t, "submitted", !tasks[i].done);
        cJSON_AddItemToArray(ta, t);
    }
    char *txt = cJSON_Print(rec);
    snprintf(p, sizeof p, "%s/slurm/jobs.json", o->dir);
    rc = txt ? sweep_write_file(p, txt) : sm_error("out of memory");
    free(txt);
    cJSON_Delete(rec);
    if (rc) return cli_fail_last("sweep");
    if (o->json) {
        cJSON_AddNumberToObject(rep, "n_artifacts", (double)n);
        cJSON_AddNumberToObject(rep, "n_submitted", (double)n_submit);
        cJSON_AddNumberToObject(rep, "n_reused", (double)(n - n_submit));
        prep[0] ? cJSON_AddStringToObject(rep, "prepare_job", prep) : cJSON_AddNullToObject(rep, "prepare_job");
        arr[0] ? cJSON_AddStringToObject(rep, "array_job", arr) : cJSON_AddNullToObject(rep, "array_job");
        n_submit ? cJSON_AddStringToObject(rep, "array", array) : cJSON_AddNullToObject(rep, "array");
        cJSON_AddStringToObject(rep, "report_job", report);
        snprintf(p, sizeof p, "%s/logs", o->dir);
        cJSON_AddStringToObject(rep, "log_dir", p);
    } else {
        if (!o->quiet) {
            fprintf(stderr, "smelt sweep: %s: %zu of %zu artifacts to build", o->dir, n_submit, n);
            if (prep[0]) fprintf(stderr, "; prepare job %s", prep);
            if (arr[0]) fprintf(stderr, "; array job %s (tasks %s)", arr, array);
            fprintf(stderr, "; report job %s\nsmelt sweep: follow it with: smelt sweep --status %s\n", report, o->dir);
        }
    }
    return 0;
}

/* ---- smelt sweep --status DIR ---- */

/* An artifact's state: done (its saved results match the submission's key), else what Slurm
 * says of its task: pending, running, or failed (ended without results); "not submitted" when
 * it was up to date at submission time and its results have gone since. */
static const char *task_state(const char *dir, const cJSON *t, const char *slurm) {
    char p[800], *txt = NULL;
    size_t len = 0;
    snprintf(p, sizeof p, "%s/runs/%s.json", dir, jstr(t, "name"));
    bool done = false;
    if (sm_is_file(p) && sm_read_file(p, (size_t)1 << 24, &txt, &len) == 0) {
        cJSON *j = cJSON_Parse(txt);
        done = !strcmp(jstr(j, "key"), jstr(t, "key"));
        cJSON_Delete(j);
        free(txt);
    }
    sm_clear_error();
    if (done) return "done";
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "submitted"))) return "missing";
    if (slurm && !strcmp(slurm, "PENDING")) return "pending";
    if (slurm && state_active(slurm)) return "running";
    return "failed";
}

int sweep_slurm_status(const char *dir, bool json) {
    cJSON *rec = NULL;
    if (read_jobs(dir, &rec)) return cli_fail_last("sweep");
    if (!rec) {
        return cli_fail("sweep", "%s: no Slurm submission recorded there (%s/slurm/jobs.json); `smelt sweep ... --slurm -o "
                                 "%s` makes one", dir, dir, dir);
    }
    const char *ids[3];
    record_ids(rec, ids);
    slurm_view sv = {0};
    if (slurm_query(ids, 3, &sv)) {
        free(sv.v);
        cJSON_Delete(rec);
        return cli_fail_last("sweep");
    }
    static const char *const STATES[] = {"done", "pending", "running", "failed", "missing"};
    int counts[5] = {0};
    const char *inputs[] = {dir};
    cJSON *rep = cli_report_new("sweep", inputs, 1, NULL), *arts = cJSON_CreateArray();
    char line[2048];
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(rec, "tasks")) {
        char job[64], log[800];
        task_names(dir, rec, t, job, sizeof job, log, sizeof log);
        const char *slurm = job[0] ? view_get(&sv, job) : NULL, *st = task_state(dir, t, slurm);
        for (int i = 0; i < 5; i++) counts[i] += !strcmp(st, STATES[i]);
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "name", jstr(t, "name")), cJSON_AddStringToObject(a, "state", st);
        job[0] ? cJSON_AddStringToObject(a, "job", job) : cJSON_AddNullToObject(a, "job");
        slurm ? cJSON_AddStringToObject(a, "slurm_state", slurm) : cJSON_AddNullToObject(a, "slurm_state");
        log[0] ? cJSON_AddStringToObject(a, "log", log) : cJSON_AddNullToObject(a, "log");
        cJSON_AddItemToArray(arts, a);
        if (!json) {
            snprintf(line, sizeof line, "%-20s %-8s %-12s %-12s %s", jstr(t, "name"), st, job[0] ? job : "-",
                     slurm ? slurm : "-", log[0] ? log : "");
            printf("%s\n", line);
        }
    }
    static const char *const ROLE[] = {"prepare", "array", "report"};
    cJSON *jobs = cJSON_CreateObject();
    char summary[512] = "";
    for (int i = 0; i < 3; i++) {
        const char *st = ids[i][0] ? view_get(&sv, ids[i]) : NULL;
        cJSON *j = cJSON_AddObjectToObject(jobs, ROLE[i]);
        ids[i][0] ? cJSON_AddStringToObject(j, "id", ids[i]) : cJSON_AddNullToObject(j, "id");
        st ? cJSON_AddStringToObject(j, "slurm_state", st) : cJSON_AddNullToObject(j, "slurm_state");
        if (ids[i][0] && i != 1)
            snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "; %s job %s %s", ROLE[i], ids[i],
                     st ? st : "(ended)");
        else if (ids[i][0])
            snprintf(summary + strlen(summary), sizeof summary - strlen(summary), "; array job %s", ids[i]);
    }
    const int n = cJSON_GetArraySize(arts);
    if (json) {
        cJSON_AddNumberToObject(rep, "n_artifacts", n);
        cJSON *c = cJSON_AddObjectToObject(rep, "states");
        for (int i = 0; i < 5; i++) cJSON_AddNumberToObject(c, STATES[i], counts[i]);
        cJSON_AddItemToObject(rep, "jobs", jobs);
        cJSON_AddItemToObject(rep, "artifacts", arts);
        cli_report_print(rep, NULL);
    } else {
        printf("%s: %d artifacts: %d done, %d pending, %d running, %d failed, %d missing%s\n", dir, n, counts[0],
               counts[1], counts[2], counts[3], counts[4], summary);
        cJSON_Delete(jobs), cJSON_Delete(arts), cJSON_Delete(rep);
    }
    free(sv.v);
    cJSON_Delete(rec);
    return 0;
}
