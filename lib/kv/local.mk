lib_libshrink_la_SOURCES += lib/kv/kv.c lib/kv/kv_impl.h lib/kv/kv_float.c lib/kv/kv_spec.c lib/kv/kv_quant.c \
	lib/kv/kv_outliers.c lib/kv/lowrank.c lib/kv/kv_kivi.c lib/kv/kv_gear.c lib/kv/kv_decode.c \
	lib/kv/kv_stream.c

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_kv
tests_unit_test_kv_SOURCES = tests/unit/test_kv.c
tests_unit_test_kv_LDADD = $(LDADD) $(CRITERION_LIBS)
TESTS += tests/unit/test_kv
endif

noinst_PROGRAMS += tests/bench/bench_kv
tests_bench_bench_kv_SOURCES = tests/bench/bench_kv.c
