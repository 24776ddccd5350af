/* args.c - argument helpers shared by the subcommands. */
#include "cli.h"

#include "kernels/kernels.h"

#include "quantize/quantize.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *cli_command_name = NULL;

static const char *cmd_name(void) { return cli_command_name ? cli_command_name : "?"; }

long cli_long(const char *opt, const char *val, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max) {
        fprintf(stderr, "smelt %s: error: %s %s: expected an integer from %ld to %ld\n", cmd_name(), opt, val, min, max);
        exit(2);
    }
    return v;
}

double cli_double(const char *opt, const char *val) {
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end) {
        fprintf(stderr, "smelt %s: error: %s %s: expected a number\n", cmd_name(), opt, val);
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
    fprintf(stderr, "smelt %s: error: ", cli_command_name ? cli_command_name : c->name);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'smelt help %s' for the options.\n", c->name);
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

/* ---- the option table ---- */

void cli_list_free(cli_list *l) {
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Does the space-separated `names` hold `word` (len bytes)? */
static bool names_have(const char *names, const char *word, size_t len) {
    for (const char *p = names; *p;) {
        while (*p == ' ') p++;
        const char *e = p;
        while (*e && *e != ' ') e++;
        if ((size_t)(e - p) == len && !strncmp(p, word, len)) return true;
        p = e;
    }
    return false;
}

/* The canonical spelling: the first long name, else the first name. */
static const char *canonical(const char *names, char *buf, size_t cap) {
    const char *p = strstr(names, "--");
    if (!p) p = names;
    size_t n = strcspn(p, " ");
    if (n >= cap) n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t sub = prev + (a[i - 1] != b[j - 1]);
            size_t best = row[j] + 1 < row[j - 1] + 1 ? row[j] + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            prev = cur;
        }
    }
    return row[lb];
}

static void strip_seps(const char *s, char *out, size_t cap) {
    size_t k = 0;
    for (; *s && k + 1 < cap; s++)
        if (*s != '_' && *s != '-') out[k++] = *s;
    out[k] = 0;
}

const char *cli_closest(const char *word, const char *const *cands) {
    /* ranked by the distance with '_' and '-' ignored first ("Q4_KM" is Q4_K_M, not Q4_K) */
    const char *best = NULL;
    size_t bd = (size_t)-1, braw = 0;
    char sw[72], sc[72];
    strip_seps(word, sw, sizeof sw);
    for (size_t i = 0; cands[i]; i++) {
        strip_seps(cands[i], sc, sizeof sc);
        const size_t raw = edit_distance(word, cands[i]), d = 2 * edit_distance(sw, sc) + raw;
        if (d < bd) bd = d, braw = raw, best = cands[i];
    }
    size_t lim = strlen(word) / 3;
    if (lim < 2) lim = 2;
    return best && braw <= lim ? best : NULL;
}

/* Every spelling in the table, for suggestions (malloc'ed names, one buffer). */
static void suggest_option(const char *word, const cli_option *opts) {
    char buf[2048];
    const char *cands[256];
    size_t n = 0, used = 0;
    for (const cli_option *o = opts; o->kind != CLI_END; o++)
        for (const char *p = o->names; *p && n < 255;) {
            while (*p == ' ') p++;
            size_t l = strcspn(p, " ");
            if (l && used + l + 1 <= sizeof buf) {
                memcpy(buf + used, p, l);
                buf[used + l] = 0;
                cands[n++] = buf + used;
                used += l + 1;
            }
            p += l;
        }
    cands[n] = NULL;
    const char *s = cli_closest(word, cands);
    if (s) fprintf(stderr, " (did you mean %s?)", s);
}

int cli_parse(const sm_command *c, const char *name, int argc, char **argv, const cli_option *opts,
              const char **pos, int max_pos, int *n_pos) {
    if (name) cli_command_name = name;
    else if (!cli_command_name) cli_command_name = c->name;
    *n_pos = 0;
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && !strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        if (only_pos || a[0] != '-' || !a[1] || ((a[1] >= '0' && a[1] <= '9') && max_pos > *n_pos)) {
            if (*n_pos >= max_pos) return cli_usage_error(c, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *eq = a[1] == '-' ? strchr(a, '=') : (a[2] == '=' ? a + 2 : NULL);
        const size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const cli_option *o = opts;
        while (o->kind != CLI_END && !names_have(o->names, a, len)) o++;
        if (o->kind == CLI_END) {
            fprintf(stderr, "smelt %s: error: unknown option %.*s", cli_command_name, (int)len, a);
            char word[128];
            snprintf(word, sizeof word, "%.*s", (int)len, a);
            suggest_option(word, opts);
            fprintf(stderr, "\nRun 'smelt help %s' for the options.\n", c->name);
            return 2;
        }
        char opt[64];
        canonical(o->names, opt, sizeof opt);
        if (o->given) *o->given = true;
        if (o->kind == CLI_FLAG) {
            if (eq) return cli_usage_error(c, "%s takes no value", opt);
            *(bool *)o->dest = true;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) return cli_usage_error(c, "%s expects a value", opt);
            v = argv[++i];
        }
        switch (o->kind) {
        case CLI_STR: *(const char **)o->dest = v; break;
        case CLI_LONG: *(long *)o->dest = cli_long(opt, v, o->min, o->max); break;
        case CLI_DOUBLE: *(double *)o->dest = cli_double(opt, v); break;
        case CLI_LIST: {
            cli_list *l = o->dest;
            const char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
            if (!nv) return cli_fail(cli_command_name, "out of memory");
            l->v = nv;
            l->v[l->n++] = v;
            break;
        }
        default: break;
        }
    }
    return 0;
}

int cli_common_apply(const cli_common *com) {
    if (com->no_sync) sm_outfile_set_durable(false);
    const int n = com->threads > 0 ? (int)com->threads : sm_num_threads();
    cli_set_threads(n);
    return n;
}

int cli_check_recipe(const sm_command *c, const char *opt, const char *name) {
    if (sm_recipe_find(name)) return 0;
    char names[1024];
    snprintf(names, sizeof names, "%s", sm_recipe_names());
    const char *cands[64];
    size_t n = 0;
    for (char *p = strtok(names, ", "); p && n < 63; p = strtok(NULL, ", ")) cands[n++] = p;
    cands[n] = NULL;
    /* case-insensitive: compare upper-cased */
    char up[64];
    size_t k = 0;
    for (; name[k] && k < sizeof up - 1; k++) up[k] = (char)(name[k] >= 'a' && name[k] <= 'z' ? name[k] - 32 : name[k]);
    up[k] = 0;
    const char *s = cli_closest(up, cands);
    if (opt) /* a recipe inside another option's value (gptq --to gguf:RECIPE) */
        fprintf(stderr, "smelt %s: error: unknown recipe '%s' in --to %s%s", cli_command_name ? cli_command_name : c->name,
                name, opt, name);
    else
        fprintf(stderr, "smelt %s: error: unknown quantization '%s'", cli_command_name ? cli_command_name : c->name, name);
    if (s) fprintf(stderr, " (did you mean %s%s?)", opt ? opt : "", s);
    fprintf(stderr, "\nRun 'smelt help %s' for the options (known: %s).\n", c->name, sm_recipe_names());
    return 2;
}

/* ---- reports ---- */

int64_t cli_path_bytes(const char *path) {
    struct stat st;
    if (!path || stat(path, &st)) return 0;
    if (S_ISREG(st.st_mode)) return (int64_t)st.st_size;
    if (!S_ISDIR(st.st_mode)) return 0;
    DIR *d = opendir(path);
    if (!d) return 0;
    int64_t total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char *p = sm_path_join(path, e->d_name);
        if (p && !stat(p, &st) && S_ISREG(st.st_mode)) total += (int64_t)st.st_size;
        free(p);
    }
    closedir(d);
    return total;
}

cJSON *cli_report_new(const char *command, const char *const *inputs, size_t n_inputs, const char *output) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "schema_version", 1);
    cJSON_AddStringToObject(j, "command", command);
    cJSON_AddStringToObject(j, "smelt_version", SM_VERSION);
    cJSON *in = cJSON_AddArrayToObject(j, "inputs");
    for (size_t i = 0; i < n_inputs; i++)
        if (inputs[i]) cJSON_AddItemToArray(in, cJSON_CreateString(inputs[i]));
    if (output) cJSON_AddStringToObject(j, "output", output);
    else cJSON_AddNullToObject(j, "output");
    return j;
}

void cli_report_print(cJSON *report, const char *output) {
    cJSON_DeleteItemFromObject(report, "bytes_out");
    cJSON_AddNumberToObject(report, "bytes_out", (double)cli_path_bytes(output));
    cli_print_json(report);
}

void cli_summary(const char *command, const char *output, double seconds, const char *fmt, ...) {
    fprintf(stderr, "smelt %s: %s: ", command, output);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " in %.2f s\n", seconds);
}

const char *cli_count(char *buf, size_t cap, long long n, const char *singular) {
    const size_t l = strlen(singular);
    if (n != 1 && l > 1 && singular[l - 1] == 'y') /* entry -> entries */
        snprintf(buf, cap, "%lld %.*sies", n, (int)(l - 1), singular);
    else
        snprintf(buf, cap, "%lld %s%s", n, singular, n == 1 ? "" : "s");
    return buf;
}

const char *cli_bytes(char *buf, size_t cap, double bytes) {
    static const char *const U[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) bytes /= 1024.0, u++;
    if (u == 0) snprintf(buf, cap, "%.0f %s", bytes, bytes == 1 ? "byte" : "bytes");
    else snprintf(buf, cap, "%.2f %s", bytes, U[u]);
    return buf;
}

const char *cli_type_counts(char *buf, size_t cap, const int64_t *n_by_type) {
    size_t used = 0;
    buf[0] = 0;
    for (int t = 0; t < SM_TYPE_GGML_COUNT && used < cap; t++)
        if (n_by_type[t]) {
            int w = snprintf(buf + used, cap - used, "%s%s x%lld", used ? ", " : "", sm_type_name((sm_type)t),
                             (long long)n_by_type[t]);
            if (w < 0) break;
            used += (size_t)w;
        }
    return buf;
}

void cli_add_type_counts(cJSON *report, const int64_t *n_by_type) {
    cJSON *types = cJSON_AddObjectToObject(report, "tensor_types");
    for (int t = 0; t < SM_TYPE_GGML_COUNT; t++)
        if (n_by_type[t]) cJSON_AddNumberToObject(types, sm_type_name((sm_type)t), (double)n_by_type[t]);
}

int cli_lora_spec(const sm_command *c, const char *spec) {
    const char *colon = strrchr(spec, ':');
    if (!colon || sm_is_dir(spec)) return 0;
    char *end;
    (void)strtod(colon + 1, &end);
    if (end == colon + 1 || *end)
        return cli_usage_error(c, "adapter '%s': expected DIR or DIR:WEIGHT with a number as WEIGHT", spec);
    return 0;
}
