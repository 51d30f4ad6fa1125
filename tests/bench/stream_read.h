/* stream_read.h: the benchmark's read floor (stream_read.cu). */
#ifndef SHRINK_BENCH_STREAM_READ_H
#define SHRINK_BENCH_STREAM_READ_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Read `bytes` (a multiple of 16, else cudaErrorInvalidValue) at p once and do nothing with them;
 * dependent != 0 launches it as the library launches its GEMVs (kernels/cuda/pdl.cuh). sink: 4
 * device bytes. */
cudaError_t bench_stream_read(const void *p, size_t bytes, unsigned *sink, int dependent, int n_sms,
			      cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
