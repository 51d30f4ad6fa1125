/* cuda.h: host-callable entry points of kernels/cuda (built with --enable-cuda). */
#ifndef SHRINK_KERNELS_CUDA_H
#define SHRINK_KERNELS_CUDA_H
#ifdef __cplusplus
extern "C" {
#endif
int shrink_cuda_device_count(void);
#ifdef __cplusplus
}
#endif
#endif
