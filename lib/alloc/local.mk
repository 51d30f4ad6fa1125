# lib/alloc: mixed-precision allocation under a size budget (integer programme, dynamic-programme check).
lib_libshrink_la_SOURCES += lib/alloc/alloc_impl.h lib/alloc/knapsack.c lib/alloc/knapsack_ilp.c \
	lib/alloc/knapsack_dp.c lib/alloc/objective.c lib/alloc/allocate.c
