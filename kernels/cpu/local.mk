lib_libshrink_la_SOURCES += kernels/kernels.h kernels/cpu/matvec.c kernels/cpu/qmatvec.c kernels/cpu/f16.c
