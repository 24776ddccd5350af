/* cmd_inspect.c - `smelt inspect` (placeholder). */
#include "cli.h"

static int run(int argc, char **argv) { return cli_fail("inspect", "not implemented yet"); }

const sm_command sm_cmd_inspect = {"inspect", "show a checkpoint's metadata and tensors",
                                   "usage: smelt inspect PATH [--json]\n", run};
