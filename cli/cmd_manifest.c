/* cmd_manifest.c - `smelt manifest ARTIFACT... -o FILE`: record artifacts (size, SHA-256,
 * XXH3-128) in a release manifest (docs/manifest.md), adding to FILE when it exists. */
#include "cli.h"

#include "release/release.h"

static const char USAGE[] =
    "usage: smelt manifest ARTIFACT... -o FILE [--json]\n"
    "\n"
    "Write (or update) the release manifest FILE: each ARTIFACT (a file, or a directory's files)\n"
    "with its size, SHA-256 and XXH3-128 (docs/manifest.md). An artifact already listed gets new\n"
    "digests and keeps its provenance and validation; the others are added. Producing commands\n"
    "write the same file with --manifest FILE (adding provenance), `smelt ppl --manifest FILE`\n"
    "adds the measured quality, and `smelt verify --manifest FILE` checks it all.\n"
    "\n"
    "options:\n"
    "  -o, --outfile FILE   the manifest (JSON; written atomically)\n"
    "  --no-sync            skip the final fsync\n"
    "  --json               print a JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q          no summary line\n";

static int run(int argc, char **argv) {
    cli_common com = {0};
    const cli_option opts[] = {CLI_OPT_OUT(com), CLI_OPT_JSON(com), CLI_OPT_NOSYNC(com), {0}};
    const char *pos[1024];
    int npos = 0, rc = cli_parse(&sm_cmd_manifest, NULL, argc, argv, opts, pos, 1024, &npos);
    if (rc) return rc;
    if (!npos) return cli_usage_error(&sm_cmd_manifest, "no artifacts given");
    if (!com.out) return cli_usage_error(&sm_cmd_manifest, "no output given (-o FILE)");
    if ((rc = cli_check_output("manifest", "-o", com.out, false, pos, (size_t)npos))) return rc;
    cli_common_apply(&com);
    const double t0 = sm_now();
    cJSON *m = NULL;
    if (sm_manifest_open_or_new(com.out, &m) || sm_manifest_add_artifacts(m, com.out, pos, (size_t)npos, NULL) ||
        sm_manifest_save(m, com.out)) {
        cJSON_Delete(m);
        return cli_fail_last("manifest");
    }
    const int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "artifacts"));
    cJSON_Delete(m);
    if (com.json) {
        cJSON *j = cli_report_new("manifest", pos, (size_t)npos, com.out);
        cJSON_AddNumberToObject(j, "n_artifacts", n);
        cli_report_print(j, com.out);
    } else if (!com.quiet) {
        cli_summary("manifest", com.out, sm_now() - t0, "%d artifact%s", n, n == 1 ? "" : "s");
    }
    return 0;
}

const sm_command sm_cmd_manifest = {"manifest", "record artifacts' sizes and digests in a release manifest", USAGE, run};
