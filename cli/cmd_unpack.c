/* cmd_unpack.c - `smelt unpack X.smelt -o OUT`: the packed file(s) back, byte for byte. */
#include "cli.h"
#include "formats/smelt.h"

#include <string.h>

static const char USAGE[] =
    "usage: smelt unpack X.smelt -o OUT [--json]\n"
    "\n"
    "Rebuild what `smelt pack` packed, byte for byte: OUT is the original file (a GGUF or\n"
    "safetensors file), or a directory of the original files when a directory was packed.\n"
    "Every checksum is checked on the way; on a mismatch nothing is written (exit 1).\n"
    "Reading commands need no unpacking: they read a .smelt of one GGUF or safetensors file\n"
    "in place, decoding each tensor in memory when it is first read (no temporary file; up\n"
    "to SMELT_DECODE_CACHE_MB, default 256, of decoded tensors kept; docs/smelt-format.md).\n"
    "\n"
    "  -o, --outfile OUT    the file or directory to write (atomic)\n"
    "  -t, --threads N      threads for decoding\n"
    "  --json               print a JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q          no summary line\n"
    "  --no-sync            do not fsync the output\n";

static int run(int argc, char **argv) {
    cli_common com = {0};
    const cli_option opts[] = {CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_NOSYNC(com), CLI_OPT_JSON(com), {0}};
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(&sm_cmd_unpack, NULL, argc, argv, opts, pos, 1, &npos);
    if (rc) return rc;
    if (npos != 1) return cli_usage_error(&sm_cmd_unpack, "X.smelt is missing");
    if (!com.out) return cli_usage_error(&sm_cmd_unpack, "-o OUT is missing");
    const char *in = pos[0];
    sm_smelt *s;
    if (sm_smelt_open(in, &s)) return cli_fail_last("unpack");
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sm_smelt_header(s), "source"), "kind");
    const bool dir = sm_smelt_n_files(s) > 1 || (cJSON_IsString(src) && !strcmp(src->valuestring, "directory"));
    sm_smelt_close(s);
    if ((rc = cli_check_output("unpack", "-o", com.out, dir, &in, 1))) return rc;
    cli_common_apply(&com);
    const double t0 = sm_now();
    if (sm_smelt_unpack(in, com.out)) return cli_fail_last("unpack");
    const double secs = sm_now() - t0;
    if (com.json) {
        cJSON *j = cli_report_new("unpack", &in, 1, com.out);
        cJSON_AddNumberToObject(j, "bytes_in", (double)cli_path_bytes(in));
        cli_report_smelt(j, in);
        cJSON_AddBoolToObject(j, "directory", dir);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cli_report_print(j, com.out);
        return 0;
    }
    char b[32];
    if (!com.quiet) cli_summary("unpack", com.out, secs, "%s", cli_bytes(b, sizeof b, (double)cli_path_bytes(com.out)));
    return 0;
}

const sm_command sm_cmd_unpack = {"unpack", "rebuild the original files of a .smelt, byte for byte", USAGE, run};
