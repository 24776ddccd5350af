/* test_gptq_hf.c - HF GPTQ checkpoint tensors: packing against hand-computed words and against
 * hashes of AutoGPTQ's packing loops (a numpy transcription of qlinear_cuda_old.pack, run once
 * outside the repo), unpack round trips, the v1/v2 zero-point conventions (including
 * GPTQModel's borrowing v1 exports), the quantization_config, and GPTQ results written to a
 * safetensors file, read back and dequantized to exactly W-hat. */
#include "testlib.h"

#include "formats/formats.h"
#include "quantize/quantize.h"

#include <stdlib.h>
#include <string.h>

static sm_gptq_hf_config cfg(int bits, int gs, bool v2) {
    sm_gptq_hf_config c = {.bits = bits, .group_size = gs, .sym = true, .v2 = v2, .true_sequential = true,
                           .damp_percent = 0.01};
    return c;
}

static uint64_t fnv1a(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Hand-computed words. */
static void hand_examples(void) {
    /* 4 bits, 32 x 32, one group: code[o][i] = (i + o) % 16 -> input i of column o at bits 4i of
     * word i / 8 */
    sm_gptq_hf_config c = cfg(4, -1, true);
    uint8_t codes[32 * 32];
    int32_t zeros[32], qw[32 * 8], qz[8];
    for (int o = 0; o < 32; o++)
        for (int i = 0; i < 32; i++) codes[o * 32 + i] = (uint8_t)((i + o) % 16);
    for (int o = 0; o < 32; o++) zeros[o] = o % 15 + 1;
    CHECK_OK(sm_gptq_hf_pack(&c, 32, 32, codes, zeros, qw, qz));
    CHECK((uint32_t)qw[0] == 0x76543210u && (uint32_t)qw[1] == 0x87654321u && (uint32_t)qw[7] == 0xEDCBA987u);
    CHECK((uint32_t)qw[32 + 0] == 0xFEDCBA98u && (uint32_t)qw[3 * 32 + 1] == 0x0FEDCBA9u);
    CHECK((uint32_t)qz[0] == 0x87654321u); /* v2: the zeros themselves */
    c.v2 = false;
    CHECK_OK(sm_gptq_hf_pack(&c, 32, 32, codes, zeros, qw, qz));
    CHECK((uint32_t)qz[0] == 0x76543210u && (uint32_t)qz[1] == 0x0EDCBA98u); /* v1: zero - 1 */

    /* 3 bits, 32 x 32: code 7 at input 10 (bits 30..32) and 5 at input 21 (bits 63..65) of
     * output 0 -> words 0xC0000000, 0x80000001, 0x00000002 (AutoGPTQ's straddling codes) */
    c = cfg(3, -1, true);
    memset(codes, 0, sizeof codes);
    codes[10] = 7;
    codes[21] = 5;
    for (int o = 0; o < 32; o++) zeros[o] = 4;
    zeros[10] = 7;
    CHECK_OK(sm_gptq_hf_pack(&c, 32, 32, codes, zeros, qw, qz));
    CHECK((uint32_t)qw[0 * 32] == 0xC0000000u && (uint32_t)qw[1 * 32] == 0x80000001u && (uint32_t)qw[2 * 32] == 2u);
    bool rest0 = true;
    for (int k = 0; k < 3 * 32; k++)
        if (k % 32) rest0 &= qw[k] == 0;
    CHECK(rest0);
    /* zeros 4 = 100b at bits 3o; zero 10 = 7 straddles: bits 30,31 of word 0 and bit 0 of word 1 */
    CHECK((uint32_t)qz[0] == 0xE4924924u && (uint32_t)qz[1] == 0x49249249u && (uint32_t)qz[2] == 0x92492492u);

    /* 2 and 8 bits */
    c = cfg(2, -1, true);
    memset(codes, 0, sizeof codes);
    for (int i = 0; i < 32; i++) codes[i] = (uint8_t)(i % 4);
    for (int o = 0; o < 32; o++) zeros[o] = 2;
    CHECK_OK(sm_gptq_hf_pack(&c, 32, 32, codes, zeros, qw, qz));
    CHECK((uint32_t)qw[0] == 0xE4E4E4E4u && (uint32_t)qw[32] == 0xE4E4E4E4u && qw[1] == 0);
    CHECK((uint32_t)qz[0] == 0xAAAAAAAAu && (uint32_t)qz[1] == 0xAAAAAAAAu);
    c = cfg(8, -1, false);
    memset(codes, 0, sizeof codes);
    for (int i = 0; i < 4; i++) codes[i] = (uint8_t)(0x10 * (i + 1));
    for (int o = 0; o < 32; o++) zeros[o] = 128;
    CHECK_OK(sm_gptq_hf_pack(&c, 32, 32, codes, zeros, qw, qz));
    CHECK((uint32_t)qw[0] == 0x40302010u && qw[32] == 0 && (uint32_t)qz[0] == 0x7F7F7F7Fu && (uint32_t)qz[7] == 0x7F7F7F7Fu);
}

/* The same pattern as the numpy transcription of AutoGPTQ's pack loops (v1 zero points). */
static void autogptq_hashes(void) {
    const struct { int bits; uint64_t qw, qz; } want[] = {
        {2, 0xd77488d558caad2eull, 0x01572e5dafd6103dull},
        {3, 0xf073b9effef10c12ull, 0x96ca9193ff05396aull},
        {4, 0xc2b3171d8897f2b7ull, 0x36e909340aba2affull},
        {8, 0x5417364515c67fc0ull, 0x79c15d4f226f29a7ull},
    };
    enum { OUT = 64, IN = 128, GS = 32, NG = IN / GS };
    uint8_t *codes = malloc(OUT * IN), *back = malloc(OUT * IN);
    int32_t zeros[NG * OUT], zback[NG * OUT];
    int32_t *qw = malloc(sizeof(int32_t) * OUT * IN), *qz = malloc(sizeof(int32_t) * NG * OUT);
    for (size_t t = 0; t < sizeof want / sizeof want[0]; t++) {
        const int bits = want[t].bits, maxq = (1 << bits) - 1;
        sm_gptq_hf_config c = cfg(bits, GS, false);
        for (int o = 0; o < OUT; o++)
            for (int i = 0; i < IN; i++) codes[o * IN + i] = (uint8_t)((o * 7 + i * 3 + (i * o) % 5) % (maxq + 1));
        for (int g = 0; g < NG; g++)
            for (int o = 0; o < OUT; o++) zeros[g * OUT + o] = 1 + (g * 3 + o * 5) % maxq;
        int64_t ng, qws[2], qzs[2];
        CHECK_OK(sm_gptq_hf_shapes(&c, OUT, IN, &ng, qws, qzs));
        CHECK(ng == NG && qws[0] == IN * bits / 32 && qws[1] == OUT && qzs[0] == NG && qzs[1] == OUT * bits / 32);
        CHECK_OK(sm_gptq_hf_pack(&c, OUT, IN, codes, zeros, qw, qz));
        CHECK_MSG(fnv1a(qw, sizeof(int32_t) * (size_t)(qws[0] * qws[1])) == want[t].qw, "%d-bit qweight", bits);
        CHECK_MSG(fnv1a(qz, sizeof(int32_t) * (size_t)(qzs[0] * qzs[1])) == want[t].qz, "%d-bit qzeros", bits);
        /* round trips, v1 and v2 */
        for (int v2 = 0; v2 < 2; v2++) {
            c.v2 = v2;
            CHECK_OK(sm_gptq_hf_pack(&c, OUT, IN, codes, zeros, qw, qz));
            CHECK_OK(sm_gptq_hf_unpack(&c, OUT, IN, qw, qz, back, zback));
            CHECK_MSG(!memcmp(codes, back, OUT * IN) && !memcmp(zeros, zback, sizeof zeros), "%d bits v%d", bits, v2 + 1);
        }
        /* v2 also holds zero point 0; v1 refuses it */
        zeros[5] = 0;
        c.v2 = true;
        CHECK_OK(sm_gptq_hf_pack(&c, OUT, IN, codes, zeros, qw, qz));
        CHECK_OK(sm_gptq_hf_unpack(&c, OUT, IN, qw, qz, back, zback));
        CHECK(!memcmp(zeros, zback, sizeof zeros));
        c.v2 = false;
        CHECK_FAILS_WITH(sm_gptq_hf_pack(&c, OUT, IN, codes, zeros, qw, qz), "zero point 0");
    }
    free(codes);
    free(back);
    free(qw);
    free(qz);
}

/* GPTQModel exports v2 -> v1 by subtracting 0x11..11 from whole words, so a zero point 0
 * borrows from its neighbour; reading adds it back the same way. */
static void v1_borrowed_zeros(void) {
    sm_gptq_hf_config c = cfg(4, -1, false);
    uint8_t back[32 * 32];
    int32_t v2zeros[32], qz[4], qw[4 * 32] = {0}, z[32];
    for (int o = 0; o < 32; o++) v2zeros[o] = o % 8 == 0 ? 0 : o % 8 == 7 ? 15 : o % 8 == 1 ? 5 : 1;
    for (int k = 0; k < 4; k++) {
        uint32_t v2word = 0;
        for (int o = 0; o < 8; o++) v2word |= (uint32_t)v2zeros[8 * k + o] << (4 * o);
        qz[k] = (int32_t)(v2word - 0x11111111u);
    }
    CHECK_OK(sm_gptq_hf_unpack(&c, 32, 32, qw, qz, back, z));
    CHECK(!memcmp(z, v2zeros, sizeof z));
    /* AutoGPTQ's own v1 (per-field zero - 1, no zero 0) reads back the same way */
    for (int o = 0; o < 32; o++) v2zeros[o] = o % 15 + 1;
    memset(qz, 0, sizeof qz);
    for (int o = 0; o < 32; o++) qz[o / 8] |= (int32_t)((uint32_t)(v2zeros[o] - 1) << (4 * (o % 8)));
    CHECK_OK(sm_gptq_hf_unpack(&c, 32, 32, qw, qz, back, z));
    CHECK(!memcmp(z, v2zeros, sizeof z));
}

static void config_json(void) {
    const char *text = "{\"bits\": 4, \"group_size\": 128, \"damp_percent\": 0.1, \"desc_act\": true, "
                       "\"static_groups\": false, \"sym\": false, \"true_sequential\": true, "
                       "\"quant_method\": \"gptq\", \"checkpoint_format\": \"gptq_v2\"}";
    cJSON *j = cJSON_Parse(text);
    sm_gptq_hf_config c;
    CHECK_OK(sm_gptq_hf_config_parse(j, "config.json", &c));
    CHECK(c.bits == 4 && c.group_size == 128 && c.desc_act && !c.sym && c.v2 && c.damp_percent == 0.1);
    cJSON *back = sm_gptq_hf_config_to_json(&c);
    sm_gptq_hf_config d;
    CHECK_OK(sm_gptq_hf_config_parse(back, "back", &d));
    CHECK(!memcmp(&c, &d, sizeof c));
    CHECK(!strcmp(cJSON_GetObjectItem(back, "checkpoint_format")->valuestring, "gptq_v2"));
    cJSON_Delete(back);
    cJSON_Delete(j);
    /* defaults: AutoGPTQ's quantize_config.json without checkpoint_format is v1; sym true */
    j = cJSON_Parse("{\"bits\": 3, \"group_size\": -1}");
    CHECK_OK(sm_gptq_hf_config_parse(j, "quantize_config.json", &c));
    CHECK(c.bits == 3 && c.group_size == -1 && c.sym && !c.v2 && !c.desc_act);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"bits\": 4, \"format\": \"gptq_v2\"}");
    CHECK_OK(sm_gptq_hf_config_parse(j, "x", &c));
    CHECK(c.v2);
    cJSON_Delete(j);
    const struct { const char *json, *needle; } bad[] = {
        {"{\"bits\": 5}", "5 bits"},
        {"{\"group_size\": 128}", "missing \"bits\""},
        {"{\"bits\": 4, \"group_size\": 0}", "group_size 0"},
        {"{\"bits\": 4, \"quant_method\": \"hqq\"}", "not GPTQ"},
        {"{\"bits\": 4, \"checkpoint_format\": \"marlin\"}", "marlin"},
        {"{\"bits\": 4, \"pack_dtype\": \"int16\"}", "int16"},
        {"{\"bits\": \"4\"}", "integer"},
        {"{\"bits\": 4, \"sym\": 1}", "true or false"},
        {"[4]", "object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        j = cJSON_Parse(bad[i].json);
        CHECK_FAILS_WITH(sm_gptq_hf_config_parse(j, "cfg", &c), bad[i].needle);
        cJSON_Delete(j);
    }
}

/* GPTQ (act-order, asym, 3 and 4 bits) -> pack -> safetensors file -> read -> dequantize ==
 * W-hat exactly; and the checks on inconsistent tensors. */
static void gptq_to_checkpoint(void) {
    enum { OUT = 64, IN = 256, NT = 300 };
    uint64_t s = 42;
    float *x = malloc(sizeof(float) * NT * IN), *w = malloc(sizeof(float) * OUT * IN);
    for (int i = 0; i < NT * IN; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((int)(s >> 40) % 2001 - 1000) / 1000.0f * (1 + (i % IN) % 7);
    }
    for (int i = 0; i < OUT * IN; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((int)(s >> 40) % 2001 - 1000) / 20000.0f;
    }
    sm_hessian *h = sm_hessian_new(IN);
    CHECK_OK(sm_hessian_add(h, x, NT, IN));
    const int bits_list[2] = {4, 3};
    for (int t = 0; t < 2; t++) {
        sm_gptq_opts o;
        sm_gptq_opts_default(&o);
        o.bits = bits_list[t];
        o.group_size = 64;
        o.sym = false;
        o.act_order = true;
        o.v1_zero = true;
        sm_gptq_hinv *p;
        sm_gptq_result r;
        CHECK_OK(sm_gptq_prepare(sm_hessian_matrix(h), IN, &o, &p));
        CHECK_OK(sm_gptq_quantize(p, w, OUT, &o, &r));
        sm_gptq_hinv_free(p);
        if (!r.deq) continue;
        sm_gptq_hf_config c = cfg(o.bits, o.group_size, false);
        c.sym = false;
        c.desc_act = true;
        int64_t ng, qws[2], qzs[2];
        CHECK_OK(sm_gptq_hf_shapes(&c, OUT, IN, &ng, qws, qzs));
        CHECK(ng == r.n_groups);
        int32_t *qw = malloc(sizeof(int32_t) * (size_t)(qws[0] * qws[1]));
        int32_t *qz = malloc(sizeof(int32_t) * (size_t)(qzs[0] * qzs[1]));
        CHECK_OK(sm_gptq_hf_pack(&c, OUT, IN, r.codes, r.zeros, qw, qz));
        /* write a checkpoint shard */
        const char *path = tl_tmp("gptq.safetensors");
        sm_st_writer *wr = sm_st_writer_new();
        const int64_t ssh[2] = {ng, OUT}, gsh[1] = {IN};
        CHECK_OK(sm_st_writer_add(wr, "l.qweight", SM_TYPE_I32, 2, qws));
        CHECK_OK(sm_st_writer_add(wr, "l.qzeros", SM_TYPE_I32, 2, qzs));
        CHECK_OK(sm_st_writer_add(wr, "l.scales", SM_TYPE_F16, 2, ssh));
        CHECK_OK(sm_st_writer_add(wr, "l.g_idx", SM_TYPE_I32, 1, gsh));
        CHECK_OK(sm_st_writer_begin(wr, path));
        CHECK_OK(sm_st_writer_write(wr, qw, sizeof(int32_t) * (size_t)(qws[0] * qws[1])));
        CHECK_OK(sm_st_writer_write(wr, qz, sizeof(int32_t) * (size_t)(qzs[0] * qzs[1])));
        CHECK_OK(sm_st_writer_write(wr, r.scales, 2 * (size_t)(ng * OUT)));
        CHECK_OK(sm_st_writer_write(wr, r.g_idx, 4 * IN));
        CHECK_OK(sm_st_writer_finish(wr));
        sm_ckpt *ck;
        CHECK_OK(sm_ckpt_open(path, &ck));
        const sm_tensor *tq = sm_ckpt_find(ck, "l.qweight"), *tz = sm_ckpt_find(ck, "l.qzeros"),
                        *ts = sm_ckpt_find(ck, "l.scales"), *tg = sm_ckpt_find(ck, "l.g_idx");
        float *deq = malloc(sizeof(float) * OUT * IN);
        int64_t of = 0, inf = 0;
        CHECK_OK(sm_gptq_hf_dequantize(&c, tq, tz, ts, tg, deq, &of, &inf));
        CHECK(of == OUT && inf == IN);
        CHECK_MSG(!memcmp(deq, r.deq, sizeof(float) * OUT * IN), "%d bits: dequantized checkpoint != W-hat", o.bits);
        /* v2 of the same */
        c.v2 = true;
        CHECK_OK(sm_gptq_hf_pack(&c, OUT, IN, r.codes, r.zeros, qw, qz));
        sm_tensor tz2 = *tz;
        tz2.data = qz;
        CHECK_OK(sm_gptq_hf_dequantize(&c, tq, &tz2, ts, tg, deq, &of, &inf));
        CHECK(!memcmp(deq, r.deq, sizeof(float) * OUT * IN));
        /* inconsistencies */
        sm_tensor bad = *tg;
        bad.shape[0] = IN - 1;
        CHECK_FAILS_WITH(sm_gptq_hf_dequantize(&c, tq, &tz2, ts, &bad, deq, &of, &inf), "l.g_idx");
        int32_t *gbad = malloc(4 * IN);
        memcpy(gbad, r.g_idx, 4 * IN);
        gbad[17] = (int32_t)ng;
        bad = *tg;
        bad.data = gbad;
        CHECK_FAILS_WITH(sm_gptq_hf_dequantize(&c, tq, &tz2, ts, &bad, deq, &of, &inf), "g_idx[17]");
        bad = *ts;
        bad.nbytes -= 2;
        CHECK_FAILS_WITH(sm_gptq_hf_dequantize(&c, tq, &tz2, &bad, tg, deq, &of, &inf), "bytes");
        bad = *tq;
        bad.type = SM_TYPE_F32;
        CHECK_FAILS_WITH(sm_gptq_hf_dequantize(&c, &bad, &tz2, ts, tg, deq, &of, &inf), "expected I32");
        sm_gptq_hf_config c8 = c;
        c8.bits = 8;
        CHECK_FAILS_WITH(sm_gptq_hf_dequantize(&c8, tq, &tz2, ts, tg, deq, &of, &inf), "dimension");
        free(gbad);
        free(deq);
        sm_ckpt_close(ck);
        free(qw);
        free(qz);
        sm_gptq_result_free(&r);
    }
    /* shapes that do not fill words */
    sm_gptq_hf_config c = cfg(3, 128, true);
    int64_t ng, a[2], b[2];
    CHECK_FAILS_WITH(sm_gptq_hf_shapes(&c, 48, 256, &ng, a, b), "output features");
    CHECK_FAILS_WITH(sm_gptq_hf_shapes(&c, 32, 48, &ng, a, b), "input features");
    CHECK_OK(sm_gptq_hf_shapes(&c, 32, 288, &ng, a, b));
    CHECK(ng == 3 && a[0] == 27 && a[1] == 32 && b[0] == 3 && b[1] == 3);
    sm_hessian_free(h);
    free(x);
    free(w);
}

/* The fuzz seeds are well-formed inputs of fuzz_gptq_hf (layout in formats/fuzz_gptq_hf.c):
 * their config parses and their tensors dequantize. */
static void fuzz_seeds(void) {
    const char *src = getenv("SMELT_SOURCE_DIR");
    const char *names[] = {"b4_g32_v1.bin", "b3_desc_v2.bin", "b8_nog_bf16.bin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fuzz-seeds/gptq_hf/%s", src ? src : "..", names[i]);
        size_t n;
        uint8_t *data = (uint8_t *)tl_slurp(path, &n);
        CHECK_MSG(data != NULL, "%s", path);
        if (!data) continue;
        uint8_t *nl = memchr(data, '\n', n);
        cJSON *j = nl ? cJSON_ParseWithLength((const char *)data, (size_t)(nl - data)) : NULL;
        sm_gptq_hf_config c;
        CHECK_OK(sm_gptq_hf_config_parse(j, names[i], &c));
        cJSON_Delete(j);
        uint32_t h[4];
        memcpy(h, nl + 1, sizeof h);
        const uint8_t *p = nl + 21;
        const int64_t in = (int64_t)h[1] * 32 / c.bits;
        sm_tensor qw = {.name = "qweight", .type = SM_TYPE_I32, .n_dims = 2, .shape = {h[1], h[0]}, .data = p,
                        .nbytes = (uint64_t)h[1] * h[0] * 4};
        p += qw.nbytes;
        sm_tensor qz = {.name = "qzeros", .type = SM_TYPE_I32, .n_dims = 2, .shape = {h[2], h[3]}, .data = p,
                        .nbytes = (uint64_t)h[2] * h[3] * 4};
        p += qz.nbytes;
        sm_tensor sc = {.name = "scales", .type = nl[17] ? SM_TYPE_BF16 : SM_TYPE_F16, .n_dims = 2,
                        .shape = {h[2], h[0]}, .data = p, .nbytes = (uint64_t)h[2] * h[0] * 2};
        p += sc.nbytes;
        sm_tensor gi = {.name = "g_idx", .type = SM_TYPE_I32, .n_dims = 1, .shape = {in}, .data = p,
                        .nbytes = (uint64_t)in * 4};
        const bool has_g = nl[18] == 1;
        CHECK((size_t)(p - data) + (has_g ? gi.nbytes : 0) == n);
        float *w = malloc(sizeof(float) * (size_t)(h[0] * in));
        int64_t of, inf;
        CHECK_OK(sm_gptq_hf_dequantize(&c, &qw, &qz, &sc, has_g ? &gi : NULL, w, &of, &inf));
        CHECK(of == h[0] && inf == in);
        free(w);
        free(data);
    }
}

static sm_gptq_hf_config awq_config(const char *json, const char *needle) {
    cJSON *j = cJSON_Parse(json);
    sm_gptq_hf_config c;
    if (needle) CHECK_FAILS_WITH(sm_gptq_hf_config_parse(j, "config.json", &c), needle);
    else CHECK_OK(sm_gptq_hf_config_parse(j, "config.json", &c));
    cJSON_Delete(j);
    return c;
}

/* AutoAWQ gemm checkpoints: tests/data/awq-gemm/linear.safetensors was made by
 * scripts/make_awq_fixture.py, which packs as AutoAWQ's WQLinear_GEMM.from_linear and
 * dequantizes as its dequantize_gemm (torch, independent of smelt): smelt's reader gives the
 * same floats, and its packer rebuilds the same words. */
static void awq_gemm_oracle(void) {
    enum { OUT = 48, IN = 256, GS = 64 };
    const char *src = getenv("SMELT_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/awq-gemm/linear.safetensors", src ? src : "..");
    sm_gptq_hf_config c = awq_config(
        "{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":64,\"zero_point\":true,\"version\":\"GEMM\"}", NULL);
    CHECK(c.awq && c.bits == 4 && c.group_size == GS && !c.sym);
    /* the config round-trips through its JSON */
    cJSON *back = sm_gptq_hf_config_to_json(&c);
    sm_gptq_hf_config d;
    CHECK_OK(sm_gptq_hf_config_parse(back, "back", &d));
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    cJSON_Delete(back);
    /* AutoAWQ's own key names; defaults: zero_point true, version gemm */
    d = awq_config("{\"quant_method\":\"awq\",\"w_bit\":4,\"q_group_size\":64}", NULL);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    awq_config("{\"quant_method\":\"awq\",\"bits\":4,\"version\":\"gemv\"}", "version \"gemv\"");
    awq_config("{\"quant_method\":\"awq\",\"bits\":8}", "8 bits");
    awq_config("{\"quant_method\":\"awq\",\"bits\":4,\"zero_point\":false}", "zero_point false");
    awq_config("{\"quant_method\":\"awq\",\"bits\":4,\"version\":3}", "\"version\" must be a string");
    awq_config("{\"quant_method\":\"squeezellm\",\"bits\":4}", "not GPTQ or AWQ");

    sm_ckpt *ck;
    CHECK_OK(sm_ckpt_open(path, &ck));
    if (!ck) return;
    const sm_tensor *tq = sm_ckpt_find(ck, "l.qweight"), *tz = sm_ckpt_find(ck, "l.qzeros"),
                    *ts = sm_ckpt_find(ck, "l.scales"), *te = sm_ckpt_find(ck, "l.expected");
    CHECK(tq && tz && ts && te && te->type == SM_TYPE_F32);
    float *deq = malloc(sizeof(float) * OUT * IN);
    int64_t of = 0, inf = 0;
    CHECK_OK(sm_gptq_hf_dequantize(&c, tq, tz, ts, NULL, deq, &of, &inf));
    CHECK(of == OUT && inf == IN);
    int diff = 0;
    for (int k = 0; k < OUT * IN; k++) {
        float e;
        memcpy(&e, (const char *)te->data + 4 * (size_t)k, 4);
        diff += deq[k] != e;
    }
    CHECK_MSG(diff == 0, "%d of %d values differ from AutoAWQ's dequantize_gemm", diff, OUT * IN);
    /* unpack, pack: AutoAWQ's words again */
    uint8_t *codes = malloc(OUT * IN);
    int32_t zeros[(IN / GS) * OUT], qw[IN * OUT / 8], qz[(IN / GS) * OUT / 8];
    CHECK_OK(sm_gptq_hf_unpack(&c, OUT, IN, tq->data, tz->data, codes, zeros));
    CHECK_OK(sm_gptq_hf_pack(&c, OUT, IN, codes, zeros, qw, qz));
    CHECK(memcmp(qw, tq->data, sizeof qw) == 0 && memcmp(qz, tz->data, sizeof qz) == 0);
    /* g_idx is not part of the layout; shapes */
    CHECK_FAILS_WITH(sm_gptq_hf_dequantize(&c, tq, tz, ts, tq, deq, &of, &inf), "no g_idx");
    int64_t ng, a[2], b[2];
    CHECK_FAILS_WITH(sm_gptq_hf_shapes(&c, 44, 256, &ng, a, b), "multiple of 8");
    CHECK_FAILS_WITH(sm_gptq_hf_shapes(&c, 48, 96, &ng, a, b), "multiple of group_size 64");
    CHECK_OK(sm_gptq_hf_shapes(&c, 40, 192, &ng, a, b));
    CHECK(ng == 3 && a[0] == 192 && a[1] == 5 && b[0] == 3 && b[1] == 5);
    sm_tensor bad = *ts;
    bad.shape[0] = 3;
    CHECK_FAILS_WITH(sm_gptq_hf_dequantize(&c, tq, tz, &bad, NULL, deq, &of, &inf), "dimension 0");
    free(codes);
    free(deq);
    sm_ckpt_close(ck);
}

void run_tests(void) {
    TEST(hand_examples);
    TEST(autogptq_hashes);
    TEST(v1_borrowed_zeros);
    TEST(config_json);
    TEST(gptq_to_checkpoint);
    TEST(fuzz_seeds);
    TEST(awq_gemm_oracle);
}
