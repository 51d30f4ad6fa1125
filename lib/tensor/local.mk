lib_libshrink_la_SOURCES += lib/tensor/dtype.c lib/tensor/tensor_set.c lib/tensor/dequant_gguf.c
