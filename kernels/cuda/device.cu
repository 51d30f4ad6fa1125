// device.cu: CUDA device probing (the GPU backend grows from here).
#include <cuda_runtime.h>
#include "cuda/cuda.h"

extern "C" int shrink_cuda_device_count(void)
{
	int n = 0;
	if (cudaGetDeviceCount(&n) != cudaSuccess)
		return 0;
	return n;
}
