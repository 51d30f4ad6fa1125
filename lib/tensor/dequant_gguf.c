/* dequant_gguf.c: placeholder until implemented. */
#include "shrink/shrink.h"
shrink_status shrink_dequant_row(shrink_dtype t, const void *src, int64_t first, int64_t n, float *dst, shrink_error *err) { (void)t; (void)src; (void)first; (void)n; (void)dst; return shrink_fail(err, SHRINK_EINPUT, "dequant not implemented"); }
