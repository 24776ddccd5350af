/* cmd_convert.c - `smelt convert MODEL -o OUT.gguf`: a Hugging Face model directory or a
 * llama2.c checkpoint to GGUF (see convert/convert.h). */
#include "cli.h"
#include "convert/convert.h"

#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: smelt convert MODEL_DIR|llama2c.bin -o OUT.gguf [options]\n"
    "\n"
    "Convert a Hugging Face checkpoint directory (config.json, *.safetensors or pytorch_model.bin,\n"
    "tokenizer) or a llama2.c checkpoint to a GGUF file llama.cpp loads. Streams tensor by tensor;\n"
    "the output appears only when complete.\n"
    "\n"
    "options:\n"
    "  -o, --output PATH    the GGUF file to write (required)\n"
    "  --outtype TYPE       f32, f16, bf16, q8_0 or auto (default: auto = bf16 for a bf16\n"
    "                       checkpoint, else f16). Norms and 1-D tensors stay f32.\n"
    "  --tokenizer PATH     tokenizer to use instead of the model's own (a SentencePiece .model\n"
    "                       file or a directory with tokenizer files); llama2.c checkpoints look\n"
    "                       for tok<VOCAB>.model or tokenizer.model beside the file\n"
    "  --name NAME          general.name (default: from the directory or file name)\n"
    "  --lora DIR[:WEIGHT]  merge a PEFT LoRA adapter on the fly (repeatable; no merged copy is\n"
    "                       written; see smelt help lora)\n"
    "  --no-sync            skip the final fsync (faster; the file still appears only when\n"
    "                       complete, but a power loss right after may lose it)\n"
    "  --allow-nonfinite    write NaN/Inf weights as they are (default: refused, naming the\n"
    "                       tensor, row and column)\n"
    "  --json               print a JSON summary on stdout\n"
    "  --quiet              no progress bar\n"
    "Supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM; llama2.c.\n";

static int convert(int argc, char **argv, sm_lora **loras);

static int run(int argc, char **argv) {
    sm_lora **loras = calloc((size_t)argc, sizeof *loras);
    if (!loras) return cli_fail("convert", "out of memory");
    int rc = convert(argc, argv, loras);
    for (int i = 0; i < argc && loras[i]; i++) sm_lora_close(loras[i]);
    free(loras);
    return rc;
}

static int convert(int argc, char **argv, sm_lora **loras) {
    const char *model = NULL, *out = NULL, *val;
    sm_convert_opts o = {0};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (cli_opt(argc, argv, &i, "--lora", &val)) {
            if (sm_lora_open(val, &loras[o.n_loras])) return cli_fail_last("convert");
            o.n_loras++;
        } else if (cli_opt(argc, argv, &i, "-o", &val) || cli_opt(argc, argv, &i, "--output", &val)) out = val;
        else if (cli_opt(argc, argv, &i, "--outtype", &val)) o.outtype = val;
        else if (cli_opt(argc, argv, &i, "--tokenizer", &val)) o.tokenizer = val;
        else if (cli_opt(argc, argv, &i, "--name", &val)) o.name = val;
        else if (cli_flag(argv, &i, "--json")) json = true;
        else if (cli_flag(argv, &i, "--no-sync")) sm_outfile_set_durable(false);
        else if (cli_flag(argv, &i, "--allow-nonfinite")) sm_set_allow_nonfinite(true);
        else if (cli_flag(argv, &i, "--quiet") || cli_flag(argv, &i, "-q")) o.quiet = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error(&sm_cmd_convert, "unknown option %s", argv[i]);
        else if (!model) model = argv[i];
        else return cli_usage_error(&sm_cmd_convert, "unexpected argument %s", argv[i]);
    }
    if (!model) return cli_usage_error(&sm_cmd_convert, "no model given");
    if (!out) return cli_usage_error(&sm_cmd_convert, "no output given (-o OUT.gguf)");
    if (o.outtype && strcmp(o.outtype, "auto") && strcmp(o.outtype, "f32") && strcmp(o.outtype, "f16") &&
        strcmp(o.outtype, "bf16") && strcmp(o.outtype, "q8_0"))
        return cli_usage_error(&sm_cmd_convert, "--outtype %s: expected f32, f16, bf16, q8_0 or auto", o.outtype);
    const char **inputs = calloc(o.n_loras + 2, sizeof *inputs);
    if (!inputs) return cli_fail("convert", "out of memory");
    inputs[0] = model;
    inputs[1] = o.tokenizer;
    for (size_t k = 0; k < o.n_loras; k++) inputs[2 + k] = sm_lora_path(loras[k]);
    const int orc = cli_check_output("convert", "-o", out, false, inputs, o.n_loras + 2);
    free(inputs);
    if (orc) return orc;
    o.loras = loras;
    sm_convert_report rep = {0};
    if (sm_convert(model, out, &o, &rep)) return cli_fail_last("convert");
    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "output", out);
        cJSON_AddNumberToObject(j, "n_tensors", (double)rep.n_tensors);
        cJSON_AddNumberToObject(j, "n_params", (double)rep.n_params);
        cJSON_AddNumberToObject(j, "bytes_in", (double)rep.bytes_in);
        cJSON_AddNumberToObject(j, "bytes_out", (double)rep.bytes_out);
        cJSON_AddNumberToObject(j, "seconds", rep.seconds);
        cJSON_AddStringToObject(j, "outtype", sm_type_name(rep.outtype));
        cli_print_json(j);
    } else if (!o.quiet) {
        fprintf(stderr, "smelt convert: %s: %lld tensors, %lld parameters, %s, %.1f MB in %.2f s\n", out,
                (long long)rep.n_tensors, (long long)rep.n_params, sm_type_name(rep.outtype),
                (double)rep.bytes_out / 1e6, rep.seconds);
    }
    return 0;
}

const sm_command sm_cmd_convert = {"convert", "HF checkpoint or llama2.c file -> GGUF", USAGE, run};
