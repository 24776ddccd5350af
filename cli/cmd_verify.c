/* cmd_verify.c - `smelt verify ARTIFACT... --manifest FILE`: recompute what a release manifest
 * claims (sizes and digests always; with --rerun-validation the quality numbers), and
 * `smelt verify X.smelt`: a packed file's own checksums (the .smelt reader's verifier). */
#include "cli.h"

#include "formats/smelt.h"
#include "release/release.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: smelt verify [ARTIFACT...] --manifest FILE [--rerun-validation] [--json]\n"
    "       smelt verify X.smelt...\n"
    "\n"
    "With --manifest: recompute the size, SHA-256 and XXH3-128 of each ARTIFACT (every artifact\n"
    "the manifest lists when none is given) and compare them with the manifest (docs/manifest.md).\n"
    "Exits 1 naming the first artifact and field that differ, or an ARTIFACT the manifest does\n"
    "not list.\n"
    "Without --manifest: check a .smelt file's own checksums (every tensor's xxh3-64).\n"
    "\n"
    "options:\n"
    "  --manifest FILE      the manifest to check against\n"
    "  --rerun-validation   also rerun each recorded validation (smelt ppl with the recorded text,\n"
    "                       --ctx, --chunks and --kld base; the files' digests are checked first)\n"
    "                       and compare: ppl and ppl_base within a relative 1e-4, delta_ppl within\n"
    "                       1e-4 x ppl, kld_mean within 1e-5 absolute, top1_agreement within 1e-4\n"
    "  -t, --threads N      threads for the reruns (the numbers do not depend on N)\n"
    "  --json               print a JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q          no summary line\n";

static bool is_smelt(const char *p) { return sm_smelt_is_file(p); }

/* Run this smelt's `ppl` with argv (NULL-terminated, argv[0] = "ppl") and parse its --json report. */
static cJSON *run_ppl(char **args) {
    int fd[2];
    if (pipe(fd)) {
        sm_error("cannot create a pipe");
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        sm_error("cannot fork");
        return NULL;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char *argv[64] = {"smelt"};
        for (int i = 0; args[i] && i < 62; i++) argv[i + 1] = args[i];
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    ssize_t k;
    while (buf && (k = read(fd[0], buf + n, cap - n - 1)) > 0) {
        n += (size_t)k;
        if (n + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) break;
            buf = b;
        }
    }
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    cJSON *j = NULL;
    if (buf && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        buf[n] = 0;
        j = cJSON_Parse(buf);
    }
    free(buf);
    if (!j) sm_error("smelt ppl failed (exit status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return j;
}

static int compare(const char *art, const char *field, const cJSON *want, const cJSON *got, double rel, double abs_tol) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(want, field), *g = cJSON_GetObjectItemCaseSensitive(got, field);
    if (!cJSON_IsNumber(w)) return 0; /* not recorded */
    if (!cJSON_IsNumber(g)) return sm_error("%s: validation: the rerun gives no %s", art, field);
    double tol = abs_tol + rel * fabs(w->valuedouble);
    if (!(fabs(g->valuedouble - w->valuedouble) <= tol))
        return sm_error("%s: validation: %s is %.8g on rerun, the manifest says %.8g (tolerance %.3g)", art, field,
                        g->valuedouble, w->valuedouble, tol);
    return 0;
}

/* Rerun one artifact's recorded validation. */
static int rerun(const char *mpath, const cJSON *a, int threads) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "validation");
    const char *art = cJSON_GetObjectItemCaseSensitive(a, "path")->valuestring;
    if (!v) return 0;
    char *model = sm_manifest_resolve(mpath, art), *paths[3] = {0}, num[3][32];
    char *args[32] = {"ppl", model};
    int n = 2, rc = 0;
    static const char *const FILES[3][2] = {{"text", "--text"}, {"tokens", "--tokens"}, {"kld_base", "--kld"}};
    for (int k = 0; k < 3; k++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, FILES[k][0]), *p = cJSON_GetObjectItemCaseSensitive(f, "path");
        if (!cJSON_IsString(p)) continue;
        paths[k] = sm_manifest_resolve(mpath, p->valuestring);
        if (cJSON_GetObjectItemCaseSensitive(f, "sha256")) { /* the same text / base as recorded */
            cJSON *one = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(one, "artifacts");
            cJSON_AddItemToArray(arr, cJSON_Duplicate(f, 1));
            rc = sm_manifest_verify_hashes(one, mpath, NULL, 0, NULL);
            cJSON_Delete(one);
            if (rc) {
                sm_error_ctx("%s: validation input", art);
                break;
            }
        }
        args[n++] = (char *)FILES[k][1];
        args[n++] = paths[k];
    }
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(v, "ctx"), *ch = cJSON_GetObjectItemCaseSensitive(v, "chunks");
    if (!rc && cJSON_IsNumber(ctx)) {
        snprintf(num[0], sizeof num[0], "%.0f", ctx->valuedouble);
        args[n++] = "--ctx";
        args[n++] = num[0];
    }
    if (!rc && cJSON_IsNumber(ch)) {
        snprintf(num[1], sizeof num[1], "%.0f", ch->valuedouble);
        args[n++] = "--chunks";
        args[n++] = num[1];
    }
    if (!rc && threads > 0) {
        snprintf(num[2], sizeof num[2], "%d", threads);
        args[n++] = "--threads";
        args[n++] = num[2];
    }
    args[n++] = "--json";
    args[n++] = "--quiet";
    args[n] = NULL;
    cJSON *got = rc ? NULL : run_ppl(args);
    if (!rc && !got) rc = sm_error_ctx("%s: rerunning the validation", art);
    if (!rc)
        rc = compare(art, "ppl", v, got, 1e-4, 0) || compare(art, "ppl_base", v, got, 1e-4, 0) ||
             compare(art, "kld_mean", v, got, 0, 1e-5) || compare(art, "top1_agreement", v, got, 0, 1e-4);
    if (!rc) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(v, "ppl");
        rc = compare(art, "delta_ppl", v, got, 0, cJSON_IsNumber(p) ? 1e-4 * p->valuedouble : 1e-4);
    }
    cJSON_Delete(got);
    for (int k = 0; k < 3; k++) free(paths[k]);
    free(model);
    return rc;
}

static int run(int argc, char **argv) {
    cli_common com = {0};
    const char *manifest = NULL;
    bool rerun_validation = false;
    const cli_option opts[] = {
        CLI_OPT_THREADS(com), CLI_OPT_JSON(com),
        {"--manifest", CLI_STR, &manifest, 0, 0, NULL},
        {"--rerun-validation", CLI_FLAG, &rerun_validation, 0, 0, NULL},
        {0},
    };
    const char *pos[256];
    int npos = 0, rc = cli_parse(&sm_cmd_verify, NULL, argc, argv, opts, pos, 256, &npos);
    if (rc) return rc;
    const double t0 = sm_now();
    if (!manifest) {
        if (!npos) return cli_usage_error(&sm_cmd_verify, "give --manifest FILE, or .smelt files to check");
        if (rerun_validation) return cli_usage_error(&sm_cmd_verify, "--rerun-validation needs --manifest FILE");
        for (int i = 0; i < npos; i++) {
            if (!is_smelt(pos[i]))
                return cli_fail("verify", "%s: not a .smelt file (expected the magic \"SMELTPAK\"); checking other files "
                                "needs --manifest FILE", pos[i]);
            uint64_t nt = 0, nb = 0;
            const double t1 = sm_now();
            if (sm_smelt_verify_file(pos[i], &nt, &nb)) return cli_fail_last("verify");
            char b1[32], b2[32];
            if (!com.json)
                printf("%s: OK (%s, %s checked in %.2f s)\n", pos[i], cli_count(b1, sizeof b1, (long long)nt, "tensor"),
                       cli_bytes(b2, sizeof b2, (double)nb), sm_now() - t1);
        }
        if (com.json) {
            cJSON *j = cli_report_new("verify", (const char *const *)pos, (size_t)npos, NULL);
            cJSON_AddNumberToObject(j, "n_artifacts", (double)npos);
            cJSON_AddBoolToObject(j, "ok", true);
            cli_report_print(j, NULL);
        } else if (!com.quiet) {
            cli_summary("verify", pos[0], sm_now() - t0, "%d .smelt file%s OK", npos, npos == 1 ? "" : "s");
        }
        return fflush(stdout) ? cli_fail("verify", "cannot write the output") : 0;
    }
    const int threads = cli_common_apply(&com);
    cJSON *m = NULL;
    if (sm_manifest_load(manifest, &m)) return cli_fail_last("verify");
    size_t checked = 0, reran = 0;
    rc = sm_manifest_verify_hashes(m, manifest, pos, (size_t)npos, &checked);
    if (!rc && rerun_validation) {
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(m, "artifacts")) {
            bool named = npos == 0;
            for (int i = 0; i < npos && !named; i++) named = sm_manifest_find_artifact(m, manifest, pos[i]) == a;
            if (!named || !cJSON_GetObjectItemCaseSensitive(a, "validation")) continue;
            if ((rc = rerun(manifest, a, threads))) break;
            reran++;
        }
    }
    cJSON_Delete(m);
    if (rc) return cli_fail_last("verify");
    if (com.json) {
        cJSON *j = cli_report_new("verify", (const char *const *)pos, (size_t)npos, NULL);
        cJSON_AddStringToObject(j, "manifest", manifest);
        cJSON_AddNumberToObject(j, "n_artifacts", (double)checked);
        cJSON_AddNumberToObject(j, "n_validations", (double)reran);
        cJSON_AddBoolToObject(j, "ok", true);
        cli_report_print(j, NULL);
    } else if (!com.quiet) {
        cli_summary("verify", manifest, sm_now() - t0, "%zu artifact%s match%s", checked, checked == 1 ? "" : "s",
                    checked == 1 ? "es" : "");
        if (reran) fprintf(stderr, "smelt verify: %zu validation%s rerun within tolerance\n", reran, reran == 1 ? "" : "s");
    }
    return 0;
}

const sm_command sm_cmd_verify = {"verify", "check artifacts against a manifest (or a .smelt file's checksums)", USAGE, run};
