/* fuzz_matrix.c - libFuzzer target for the release-matrix reader (release/matrix.c): parse
 * arbitrary bytes as a matrix file and, when they parse, touch every field so that ASan sees
 * any bad string or list. */
#include "release/release.h"

#include <string.h>

static volatile size_t g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sm_matrix m;
    if (sm_matrix_parse((const char *)data, size, "fuzz/matrix.json", &m)) return 0;
    for (size_t i = 0; i < m.n_models; i++) g_sink += strlen(m.models[i].name) + strlen(m.models[i].path);
    g_sink += strlen(m.eval) + (m.calib ? strlen(m.calib) : 0);
    for (size_t i = 0; i < m.n_recipes; i++) g_sink += strlen(m.recipes[i]);
    for (size_t i = 0; i < m.n_methods; i++) g_sink += strlen(m.methods[i]);
    for (size_t i = 0; i < m.n_target_bpw; i++) g_sink += (size_t)m.target_bpw[i];
    g_sink += (size_t)(m.ctx + m.chunks + m.calib_chunks + m.samples) + m.keep;
    sm_matrix_free(&m);
    return 0;
}
