/* TEMPORARY until the codecs branch is merged: no block-type dequantizers yet. */
#include "quantize/quantize.h"
int sm_dequantize_row(sm_type type, const void *src, float *dst, int64_t n) {
    (void)src; (void)dst; (void)n;
    return sm_error("no dequantizer for %s yet", sm_type_name(type));
}
