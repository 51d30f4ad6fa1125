# CUDA kernels: compiled with nvcc only when configure found it (auto, or --enable-cuda).
# libtool does not know nvcc, so the rule writes the .lo description itself.
if ENABLE_CUDA
NVCCFLAGS = -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -Xcompiler -fPIC \
	-I$(top_srcdir)/kernels -I$(top_srcdir)/lib/shrink
CUDA_SOURCES = kernels/cuda/device.cu
CUDA_LOS = $(CUDA_SOURCES:.cu=.lo)
lib_libshrink_la_LIBADD += $(CUDA_LOS)
lib_libshrink_la_DEPENDENCIES = $(CUDA_LOS)
CLEANFILES = $(CUDA_LOS) $(CUDA_SOURCES:.cu=.o)
.cu.lo:
	$(AM_V_GEN)mkdir -p $(@D)/.libs && \
	$(NVCC) $(NVCCFLAGS) -c $< -o $(@D)/.libs/$(*F).o && cp $(@D)/.libs/$(*F).o $*.o && \
	printf "# %s - a libtool object file\npic_object='.libs/%s.o'\nnon_pic_object='%s.o'\n" $(@F) $(*F) $(*F) > $@
SUFFIXES = .cu .lo
endif
EXTRA_DIST += kernels/cuda/device.cu kernels/cuda/cuda.h
