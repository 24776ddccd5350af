/* main.c - `smelt CMD ...`: dispatch to the subcommands. */
#include "cli.h"
#include "kernels/kernels.h"
#include "model/model.h"

#include <string.h>

static const sm_command *const COMMANDS[] = {
    &sm_cmd_convert,
    &sm_cmd_inspect,
    &sm_cmd_quantize,
    &sm_cmd_lora,
    &sm_cmd_tokenize,
    &sm_cmd_ppl,
    &sm_cmd_generate,
    &sm_cmd_imatrix,
    &sm_cmd_gptq,
    &sm_cmd_awq,
    &sm_cmd_manifest,
    &sm_cmd_pack,
    &sm_cmd_unpack,
    &sm_cmd_verify,
    &sm_cmd_sweep,
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static const sm_command *find(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i]->name, name) == 0) return COMMANDS[i];
    return NULL;
}

/* A command's usage; "@ARCHS@" in it stands for the architecture table's list (model/arch.c). */
static void print_usage(const sm_command *c) {
    const char *at = strstr(c->usage, "@ARCHS@");
    if (!at) {
        fputs(c->usage, stdout);
        return;
    }
    fwrite(c->usage, 1, (size_t)(at - c->usage), stdout);
    fputs(sm_supported_archs(), stdout);
    fputs(at + 7, stdout);
}

static const char HELP_USAGE[] =
    "usage: smelt help [COMMAND]\n"
    "\n"
    "Without COMMAND: the list of commands. With one: that command's usage and options\n"
    "(the same as `smelt COMMAND --help`). `smelt --version` prints the version.\n"
    "\n"
    "Options that mean the same on every command:\n"
    "  -o, --outfile PATH   the output (--output is accepted too)\n"
    "  -t, --threads N      worker threads on every command that computes (results do not\n"
    "                       depend on N; default: all cores, or SMELT_THREADS)\n"
    "  -c, --ctx N          tokens per chunk / context size\n"
    "  -f, --text FILE      a text (`--calib FILE` where it is calibration data)\n"
    "  --outtype TYPE       the output's tensor type\n"
    "  --json               one JSON report on stdout (fields: docs/json.md)\n"
    "  --quiet, -q          no progress bar and no summary line; errors still go to stderr\n"
    "  --no-sync            skip the final fsync of the output\n"
    "Usage errors exit with status 2, other failures with 1.\n";

/* "unknown command" with a suggestion; exit status 2 */
static int unknown_command(const char *name) {
    const char *names[N_COMMANDS + 2];
    for (size_t i = 0; i < N_COMMANDS; i++) names[i] = COMMANDS[i]->name;
    names[N_COMMANDS] = "help";
    names[N_COMMANDS + 1] = NULL;
    const char *s = cli_closest(name, names);
    fprintf(stderr, "smelt: error: unknown command '%s'", name);
    if (s) fprintf(stderr, " (did you mean '%s'?)", s);
    fprintf(stderr, "\nRun 'smelt help' for the list of commands.\n");
    return 2;
}

static void overview(FILE *f) {
    fprintf(f, "smelt %s - turn language-model checkpoints into quantized, validated artifacts\n\n"
               "usage: smelt COMMAND [ARGS...]\n\ncommands:\n", SM_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
    fprintf(f, "  %-10s %s\n\n'smelt help COMMAND' shows a command's options.\n", "help", "show help for a command");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        overview(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("smelt %s\n", SM_VERSION);
        /* the ISA the kernels run on (SMELT_ISA caps it) and the best this CPU has */
        printf("isa %s (cpu: %s)\n", sm_isa_name(sm_isa_active()), sm_isa_name(sm_cpu_isa_hw()));
        return 0;
    }
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc > 2) {
            if (!strcmp(argv[2], "help")) {
                fputs(HELP_USAGE, stdout);
                return 0;
            }
            const sm_command *c = find(argv[2]);
            if (!c) return unknown_command(argv[2]);
            print_usage(c);
            return 0;
        }
        overview(stdout);
        return 0;
    }
    const sm_command *c = find(name);
    if (!c) return unknown_command(name);
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            print_usage(c);
            return 0;
        }
    cli_command_name = c->name;
    return c->run(argc - 1, argv + 1);
}
