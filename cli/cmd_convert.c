/* cmd_convert.c - `smelt convert` (placeholder until the pipeline lands). */
#include "cli.h"

static int run(int argc, char **argv) { return cli_fail("convert", "not implemented yet"); }

const sm_command sm_cmd_convert = {"convert", "HF checkpoint -> GGUF",
                                   "usage: smelt convert MODEL_DIR -o OUT.gguf [--outtype f32|f16|bf16|q8_0|auto]\n", run};
