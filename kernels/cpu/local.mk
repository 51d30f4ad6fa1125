lib_libshrink_la_SOURCES += kernels/kernels.h kernels/cpu/matvec.c kernels/cpu/qmatvec.c kernels/cpu/qdot_i8.c kernels/cpu/f16.c
