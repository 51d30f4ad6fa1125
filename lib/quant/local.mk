# lib/quant: quantization schemes, packing, RTN, GPTQ
lib_libshrink_la_SOURCES += lib/quant/quant_impl.h lib/quant/scheme.c lib/quant/pack.c lib/quant/group.c \
	lib/quant/rtn.c lib/quant/gptq_impl.h lib/quant/gptq.c lib/quant/gptq_plan.c lib/quant/gptq_sweep.c \
	lib/quant/hessian.c lib/quant/plan.c lib/quant/model_quant_impl.h lib/quant/model_quant.c lib/quant/gptq_model.c

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_quant
tests_unit_test_quant_SOURCES = tests/unit/test_quant.c
tests_unit_test_quant_LDADD = $(LDADD) $(CRITERION_LIBS)
TESTS += tests/unit/test_quant
endif

TESTS += tests/ref/test_quant_ref.py
check_PROGRAMS += tests/ref/quant_tool
tests_ref_quant_tool_SOURCES = tests/ref/quant_tool.c
EXTRA_DIST += tests/ref/quant_ref.py
