lib_libshrink_la_SOURCES += kernels/kernels.h kernels/cpu/matvec.c kernels/cpu/qmatvec.c kernels/cpu/qdot_i8.c kernels/cpu/qdot_x8.c \
	kernels/cpu/qx_pack.c kernels/cpu/qx_dequant.c kernels/cpu/f16.c kernels/cpu/cpu_features.c \
	kernels/cpu/sgemm.c
