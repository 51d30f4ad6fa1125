lib_libshrink_la_SOURCES += lib/model/load.c lib/model/state.c lib/model/state_impl.h lib/model/forward.c \
	lib/model/attention.c lib/model/ops.c lib/model/ops.h lib/model/repack.c lib/model/repack.h lib/model/sample.c lib/model/threads.c
# The model's GPU backend: always compiled (without CUDA it reports that it is not built).
lib_libshrink_la_SOURCES += lib/model/cuda_backend.h lib/model/weights_cuda.c lib/model/forward_cuda.c \
	lib/model/kv_cuda.c
# Benchmark (not run by make check): what a decode step costs beyond the model's kernels
# (logits copied back, host argmax, sampler); scripts/bench-cuda -m decode runs it.
noinst_PROGRAMS += tests/bench/bench_decode
tests_bench_bench_decode_SOURCES = tests/bench/bench_decode.c
