/* cmd_pack.c - `smelt pack IN -o X.smelt`: a GGUF, a safetensors file or a model directory into
 * the .smelt packed format (docs/smelt-format.md), byte-exact for `smelt unpack`. */
#include "cli.h"
#include "formats/smelt.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt pack IN -o OUT.smelt [--level N] [--raw] [--threads N] [--chunk-size BYTES] [--json]\n"
    "\n"
    "Pack a model into a .smelt file (docs/smelt-format.md). IN: a GGUF file, a safetensors file,\n"
    "or a model directory (every regular file in it). Tensors are compressed per chunk with zstd,\n"
    "float tensors split into byte planes first (BF16: exponent bits, then sign and mantissa);\n"
    "every tensor and file carries an xxh3-64. `smelt unpack` gives the input back byte for byte;\n"
    "reading commands (inspect, ppl, quantize, gptq, generate, imatrix) accept a .smelt of one\n"
    "GGUF or safetensors file directly.\n"
    "\n"
    "  -o, --outfile FILE   the .smelt to write (atomic: a temporary renamed on success)\n"
    "  --level N            zstd level 1..19 (default 3)\n"
    "  --raw                store the files uncompressed (aligned: readers map tensors zero-copy)\n"
    "  --chunk-size BYTES   raw bytes per independently decodable chunk (default 262144)\n"
    "  -t, --threads N      threads (the output does not depend on it)\n"
    "  --json               print a JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q          no progress bar\n"
    "  --no-sync            do not fsync the output\n";

static char *join_args(int argc, char **argv) {
    size_t n = strlen("smelt") + 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    strcpy(s, "smelt");
    for (int i = 0; i < argc; i++) strcat(strcat(s, " "), argv[i]);
    return s;
}

static int run(int argc, char **argv) {
    cli_common com = {0};
    long level = 0, chunk = 0;
    bool raw = false;
    const cli_option opts[] = {
        CLI_OPT_OUT(com), CLI_OPT_THREADS(com), CLI_OPT_NOSYNC(com), CLI_OPT_JSON(com),
        {"--level", CLI_LONG, &level, 1, 19, NULL},
        {"--chunk-size", CLI_LONG, &chunk, 4, 64L << 20, NULL},
        {"--raw", CLI_FLAG, &raw, 0, 0, NULL},
        {0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = cli_parse(&sm_cmd_pack, NULL, argc, argv, opts, pos, 1, &npos);
    if (rc) return rc;
    if (npos != 1) return cli_usage_error(&sm_cmd_pack, "IN is missing");
    if (!com.out) return cli_usage_error(&sm_cmd_pack, "-o OUT.smelt is missing");
    if (chunk % 4) return cli_usage_error(&sm_cmd_pack, "--chunk-size %ld: expected a multiple of 4", chunk);
    const char *in = pos[0];
    if ((rc = cli_check_output("pack", "-o", com.out, false, &in, 1))) return rc;
    const int threads = cli_common_apply(&com);
    char *cmdline = join_args(argc, argv);
    sm_smelt_pack_opts o = {.level = (int)level, .raw = raw, .threads = threads, .chunk_size = (uint64_t)chunk,
                            .command_line = cmdline, .quiet = com.quiet || com.json};
    const double t0 = sm_now();
    rc = sm_smelt_pack(in, com.out, &o);
    free(cmdline);
    if (rc) return cli_fail_last("pack");
    const double secs = sm_now() - t0, in_b = (double)cli_path_bytes(in), out_b = (double)cli_path_bytes(com.out);
    if (com.json) {
        cJSON *j = cli_report_new("pack", &in, 1, com.out);
        cJSON_AddNumberToObject(j, "bytes_in", in_b);
        cJSON_AddNumberToObject(j, "saved", in_b > 0 ? 1.0 - out_b / in_b : 0.0);
        cJSON_AddNumberToObject(j, "level", raw ? 0 : level ? (double)level : SM_SMELT_DEFAULT_LEVEL);
        cJSON_AddBoolToObject(j, "raw", raw);
        cli_report_smelt(j, com.out);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "mb_per_s", secs > 0 ? in_b / 1e6 / secs : 0.0);
        cli_report_print(j, com.out);
        return 0;
    }
    char b1[32], b2[32];
    if (!com.quiet) cli_summary("pack", com.out, secs, "%s -> %s (%.1f%% saved)", cli_bytes(b1, sizeof b1, in_b),
                cli_bytes(b2, sizeof b2, out_b), in_b > 0 ? 100.0 * (1.0 - out_b / in_b) : 0.0);
    return 0;
}

const sm_command sm_cmd_pack = {"pack", "pack a model into a compressed, checksummed .smelt file", USAGE, run};
