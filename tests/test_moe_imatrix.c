/* test_moe_imatrix.c - importance matrices of a mixture-of-experts model: the kjv expert fixture
 * (tiny-llama-kjv's attention and embeddings, its feed-forward weights perturbed per expert into
 * 8 experts, top-2, Mixtral-style "llama" keys; tests/moe_testlib.c). With LLAMA_CPP_BIN:
 * llama-imatrix's files for it (GGUF with per-expert counts, legacy .dat) are read by smelt as
 * llama-quantize reads them (smelt's GGUF re-write holds the same tensors; the .dat gives the
 * same weights), and smelt quantize with either is byte-identical to llama-quantize with it. */
#include "moe_testlib.h"

#include "calib/calib.h"
#include "formats/formats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char g_moe[1024];

static void setup(void) {
    char args[4096], dense[1024];
    snprintf(dense, sizeof dense, "%s", tl_tmp("kjv-f32.gguf"));
    snprintf(g_moe, sizeof g_moe, "%s", tl_tmp("kjv-moe.gguf"));
    snprintf(args, sizeof args, "convert '%s' -o '%s' --outtype f32 --quiet", tl_asset("models/tiny-llama-kjv"), dense);
    CHECK(tl_run_smelt(args, NULL) == 0);
    tm_moe c = {"llama", 4, 256, 8, 4, 32, 8, 2, 768, 2048, dense, 0.3f, 0x6b6a76};
    CHECK(tm_make_moe(g_moe, &c) == 0);
}

static void llama_imatrix_files(void) {
    const char *bin = tl_llama_cpp_bin("llama-imatrix's per-expert files");
    if (!bin) return;
    char args[8192], im[1024], dat[1024];
    snprintf(im, sizeof im, "%s", tl_tmp("li.gguf"));
    snprintf(dat, sizeof dat, "%s", tl_tmp("li.dat"));
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof args, "%s/llama-imatrix -m '%s' -f '%s' -c 256 --chunks 4 -t 2 %s -o '%s' > '%s' 2>&1", bin,
                 g_moe, tl_asset("text/kjv-calib.txt"), k ? "--output-format dat" : "", k ? dat : im, tl_tmp("li.log"));
        CHECK_MSG(system(args) == 0, "llama-imatrix (log %s)", tl_tmp("li.log"));
    }
    sm_imatrix g = {0}, d = {0};
    CHECK_OK(sm_imatrix_load(im, &g));
    CHECK_OK(sm_imatrix_load(dat, &d));
    /* per-expert counts: each token goes to 2 of the 8 experts */
    int64_t total = 0, zero = 0, n_mat = 0;
    for (size_t i = 0; i < g.n_entries; i++) {
        const sm_imatrix_entry *e = &g.entries[i];
        if (!strcmp(e->name, "blk.1.ffn_up_exps.weight")) {
            n_mat = e->n_mat;
            for (int64_t x = 0; x < e->n_mat; x++) total += e->counts[x], zero += e->counts[x] == 0;
        }
    }
    CHECK_MSG(n_mat == 8 && total == 2 * 4 * 256, "blk.1.ffn_up_exps: %lld matrices, %lld routed tokens (want 8, %d)",
              (long long)n_mat, (long long)total, 2 * 4 * 256);
    fprintf(stderr, "  blk.1.ffn_up_exps: %lld routed tokens over 8 experts, %lld experts without any\n", (long long)total,
            (long long)zero);
    /* smelt writes back what it read */
    CHECK_OK(sm_imatrix_save_gguf(&g, tl_tmp("re.gguf")));
    tl_check_same_gguf_tensors(im, tl_tmp("re.gguf"));
    /* the .dat's weights (sum / count * ncall / ncall) are the GGUF's (sum / count) */
    double worst = 0;
    for (size_t i = 0; i < g.n_entries; i++) {
        const sm_imatrix_entry *e = &g.entries[i];
        const int64_t mats = e->n_mat;
        for (int64_t x = 0; x < mats; x++) {
            const int64_t cols = e->n_values / mats;
            const float *a = sm_imatrix_find(&g, e->name, cols, x);
            const sm_imatrix_entry *de = NULL;
            for (size_t j = 0; j < d.n_entries; j++)
                if (!strcmp(d.entries[j].name, e->name)) de = &d.entries[j];
            CHECK_MSG(de && de->n_values == e->n_values, "%s in the .dat", e->name);
            if (!a || !de || de->n_values != e->n_values) continue;
            for (int64_t c = 0; c < cols; c++) {
                const double b = de->weights[x * cols + c], r = fabs(a[c] - b) / (fabs(a[c]) + 1e-30);
                if (r > worst) worst = r;
            }
        }
    }
    CHECK_MSG(worst < 1e-5, ".dat weights differ from the GGUF's by %g (relative)", worst);
    sm_imatrix_free(&g);
    sm_imatrix_free(&d);
    /* quantization with them: llama-quantize's bytes */
    static const char *const recipes[] = {"IQ2_XS", "Q4_K_M", "IQ3_M"};
    for (size_t r = 0; r < sizeof recipes / sizeof *recipes; r++)
        for (int k = 0; k < 2; k++) {
            const char *m = k ? dat : im;
            snprintf(args, sizeof args, "%s/llama-quantize --imatrix '%s' '%s' '%s' %s 2 > '%s' 2>&1", bin, m, g_moe,
                     tl_tmp("lq.gguf"), recipes[r], tl_tmp("lq.log"));
            CHECK(system(args) == 0);
            snprintf(args, sizeof args, "quantize '%s' '%s' %s --imatrix '%s' --quiet", g_moe, tl_tmp("sq.gguf"),
                     recipes[r], m);
            CHECK(tl_run_smelt(args, NULL) == 0);
            CHECK_MSG(tl_same_file(tl_tmp("lq.gguf"), tl_tmp("sq.gguf")),
                      "%s with llama-imatrix's %s: smelt's file differs from llama-quantize's", recipes[r], k ? ".dat" : "GGUF");
        }
}

void run_tests(void) {
    TEST(setup);
    TEST(llama_imatrix_files);
}
