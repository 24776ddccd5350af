/* test_core.c - core: types, half conversions, atomic files. */
#include "testlib.h"

#include <string.h>
#include <unistd.h>

static void types(void) {
    CHECK(sm_type_from_name("Q4_K") == SM_TYPE_Q4_K);
    CHECK(sm_type_from_name("bf16") == SM_TYPE_BF16);
    CHECK(sm_type_from_name("nope") == SM_TYPE_INVALID);
    CHECK(sm_type_row_bytes(SM_TYPE_Q8_0, 64) == 68);
    CHECK(sm_type_row_bytes(SM_TYPE_Q4_K, 256) == 144);
    CHECK(sm_type_row_bytes(SM_TYPE_Q4_K, 100) == 0);
}

static void halves(void) {
    /* IEEE binary16 facts */
    CHECK(sm_f32_to_f16(1.0f) == 0x3c00);
    CHECK(sm_f32_to_f16(-2.0f) == 0xc000);
    CHECK(sm_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(sm_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(sm_f32_to_f16(5.9604645e-08f) == 0x0001);
    CHECK(sm_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie -> even */
    CHECK(sm_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN */
        float f = sm_f16_to_f32((uint16_t)h);
        if (sm_f32_to_f16(f) != h) { CHECK_MSG(0, "f16 round trip 0x%04x", h); break; }
    }
    CHECK(sm_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(sm_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(sm_f8e4m3_to_f32(0x38) == 1.0f);
    CHECK(sm_f8e4m3_to_f32(0x7e) == 448.0f);
    CHECK(sm_f8e5m2_to_f32(0x3c) == 1.0f);
}

static void outfile(void) {
    const char *p = tl_tmp("atomic.bin");
    sm_outfile *o = sm_outfile_open(p);
    CHECK(o != NULL);
    CHECK_OK(sm_outfile_write(o, "abc", 3));
    CHECK_OK(sm_outfile_pad_to(o, 8));
    CHECK(sm_outfile_tell(o) == 8);
    CHECK(access(p, F_OK) != 0); /* not there before commit */
    CHECK_OK(sm_outfile_commit(o));
    CHECK(access(p, F_OK) == 0);
    const char *q = tl_tmp("aborted.bin");
    o = sm_outfile_open(q);
    sm_outfile_write(o, "x", 1);
    sm_outfile_abort(o);
    CHECK(access(q, F_OK) != 0);
}

void run_tests(void) {
    TEST(types);
    TEST(halves);
    TEST(outfile);
}
