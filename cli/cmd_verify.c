/* cmd_verify.c - `smelt verify X.smelt...`: every checksum of a .smelt (the header, every
 * tensor, the bytes between tensors, every whole file); the first mismatch is named with its
 * tensor and offset, and the exit status is 1. (.smelt only here; the manifest mode is the
 * sink branch's and the two dispatchers merge.) */
#include "cli.h"
#include "formats/smelt.h"

static const char USAGE[] =
    "usage: smelt verify X.smelt...\n"
    "\n"
    "Check every checksum of each .smelt file: the header's, every tensor's xxh3-64 (decoding\n"
    "compressed chunks), the bytes outside the tensors, and each packed file's whole-file hash.\n"
    "Prints one line per file; the first damaged tensor is named with its offset, exit status 1.\n"
    "\n"
    "  -t, --threads N      threads for decoding\n";

static int run(int argc, char **argv) {
    cli_common com = {0};
    const cli_option opts[] = {CLI_OPT_THREADS(com), {"--quiet -q", CLI_FLAG, &com.quiet, 0, 0, NULL}, {0}};
    const char *pos[256];
    int npos = 0;
    int rc = cli_parse(&sm_cmd_verify, NULL, argc, argv, opts, pos, 256, &npos);
    if (rc) return rc;
    if (npos < 1) return cli_usage_error(&sm_cmd_verify, "X.smelt is missing");
    cli_common_apply(&com);
    for (int i = 0; i < npos; i++) {
        if (!sm_smelt_is_file(pos[i])) return cli_fail("verify", "%s: not a .smelt file (expected the magic \"SMELTPAK\")", pos[i]);
        uint64_t nt = 0, nb = 0;
        const double t0 = sm_now();
        if (sm_smelt_verify_file(pos[i], &nt, &nb)) return cli_fail_last("verify");
        char b1[32], b2[32];
        printf("%s: OK (%s, %s checked in %.2f s)\n", pos[i], cli_count(b1, sizeof b1, (long long)nt, "tensor"),
               cli_bytes(b2, sizeof b2, (double)nb), sm_now() - t0);
    }
    return fflush(stdout) ? cli_fail("verify", "cannot write the output") : 0;
}

const sm_command sm_cmd_verify = {"verify", "check every checksum of .smelt files", USAGE, run};
