/* args.c - argument helpers shared by the subcommands. */
#include "cli.h"

#include "kernels/kernels.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

bool cli_flag(char **argv, int *i, const char *name) { return strcmp(argv[*i], name) == 0; }

bool cli_opt(int argc, char **argv, int *i, const char *name, const char **val) {
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) return false;
    if (a[n] == '=') {
        *val = a + n + 1;
        return true;
    }
    if (a[n] != 0) return false;
    if (*i + 1 >= argc) {
        fprintf(stderr, "smelt: error: option %s needs a value\n", name);
        exit(2);
    }
    *val = argv[++*i];
    return true;
}

long cli_long(const char *opt, const char *val, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max) {
        fprintf(stderr, "smelt: error: %s expects an integer in [%ld, %ld], got '%s'\n", opt, min, max, val);
        exit(2);
    }
    return v;
}

double cli_double(const char *opt, const char *val) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end) {
        fprintf(stderr, "smelt: error: %s expects a number, got '%s'\n", opt, val);
        exit(2);
    }
    return v;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "smelt %s: error: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_fail_last(const char *cmd) { return cli_fail(cmd, "%s", sm_last_error()); }

int cli_usage_error(const sm_command *c, const char *fmt, ...) {
    fprintf(stderr, "smelt %s: error: ", c->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", c->usage);
    return 2;
}

int cli_device(const sm_command *c, const char *val, sm_device *out) {
    *out = SM_DEVICE_CPU;
    if (!strcmp(val, "cpu")) return 0;
    if (strcmp(val, "cuda")) return cli_usage_error(c, "--device expects cpu or cuda, got '%s'", val);
    const char *why = NULL;
    if (!sm_cuda_available(&why)) return cli_fail(c->name, "--device cuda: no usable CUDA device (%s)", why ? why : "");
    *out = SM_DEVICE_CUDA;
    return 0;
}

void cli_set_threads(int n) {
    if (n < 1 || n > SM_MAX_THREADS) {
        fprintf(stderr, "smelt: error: --threads %d: expected 1 to %d threads (ggml's GGML_MAX_N_THREADS; "
                        "the output does not depend on the thread count)\n", n, SM_MAX_THREADS);
        exit(2);
    }
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int cli_check_output(const char *cmd, const char *opt, const char *path, bool dir_output,
                     const char *const *inputs, size_t n_inputs) {
    if (sm_check_output_not_input(path, inputs, n_inputs)) return cli_fail_last(cmd);
    if (sm_check_output_path(path, dir_output)) return cli_fail(cmd, "%s %s", opt, sm_last_error());
    if (dir_output && sm_outdir_check(path)) return cli_fail_last(cmd);
    return 0;
}

void cli_warn_ctx(const char *cmd, const char *opt, int64_t n_ctx, int64_t n_ctx_train) {
    if (n_ctx_train > 0 && n_ctx > n_ctx_train)
        fprintf(stderr, "smelt %s: warning: %s %lld: the model was trained on only %lld context tokens (%lld "
                        "specified); positions beyond that are extrapolation\n",
                cmd, opt, (long long)n_ctx, (long long)n_ctx_train, (long long)n_ctx);
}

void cli_print_json(cJSON *obj) {
    char *s = cJSON_PrintUnformatted(obj);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    cJSON_Delete(obj);
}
