/* main.c - `smelt CMD ...`: dispatch to the subcommands. */
#include "cli.h"
#include "kernels/kernels.h"

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
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static const sm_command *find(const char *name) {
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i]->name, name) == 0) return COMMANDS[i];
    return NULL;
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
            const sm_command *c = find(argv[2]);
            if (!c) {
                fprintf(stderr, "smelt: unknown command '%s'\n", argv[2]);
                return 2;
            }
            fputs(c->usage, stdout);
            return 0;
        }
        overview(stdout);
        return 0;
    }
    const sm_command *c = find(name);
    if (!c) {
        fprintf(stderr, "smelt: unknown command '%s'\n\n", name);
        overview(stderr);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(c->usage, stdout);
            return 0;
        }
    return c->run(argc - 1, argv + 1);
}
