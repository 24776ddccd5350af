/* gptq_hf_dir.c - is a Hugging Face model directory a GPTQ (or AutoAWQ) checkpoint, and with
 * which quantization config: config.json's quantization_config (transformers / optimum /
 * GPTQModel / AutoAWQ), else AutoGPTQ's quantize_config.json. */
#include "formats/formats.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG_BYTES ((size_t)16 << 20)

int sm_gptq_hf_config_load(const char *dir, sm_gptq_hf_config *cfg) {
    const char *const FILES[2] = {"config.json", "quantize_config.json"};
    for (int f = 0; f < 2; f++) {
        char *path = sm_path_join(dir, FILES[f]), *text = NULL;
        size_t len = 0;
        if (!path) return sm_error("out of memory");
        if (!sm_is_file(path)) {
            free(path);
            continue;
        }
        if (sm_read_file(path, MAX_CONFIG_BYTES, &text, &len)) {
            free(path);
            return -1;
        }
        cJSON *root = cJSON_ParseWithLength(text, len);
        free(text);
        const cJSON *qc = f == 0 ? cJSON_GetObjectItemCaseSensitive(root, "quantization_config") : root;
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(qc, "quant_method");
        int rc = 1;
        if (f == 1 && !cJSON_IsObject(qc))
            rc = sm_error("%s: expected a JSON object", path);
        else if (f == 1 || (cJSON_IsObject(qc) && cJSON_IsString(method) &&
                            (!strcmp(method->valuestring, "gptq") || !strcmp(method->valuestring, "awq"))))
            rc = sm_gptq_hf_config_parse(qc, path, cfg);
        cJSON_Delete(root);
        free(path);
        if (rc <= 0) return rc;
    }
    return 1;
}
