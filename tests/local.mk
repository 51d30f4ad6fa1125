# Unit tests (Criterion), reference tests (Python/NumPy) and CLI tests (sh).
TEST_EXTENSIONS = .sh .py
SH_LOG_COMPILER = $(SHELL)
PY_LOG_COMPILER = python3
AM_TESTS_ENVIRONMENT = \
	SHRINK_BUILD='$(abs_top_builddir)'; SHRINK_SRC='$(abs_top_srcdir)'; \
	SHRINK_DATA='$(abs_top_srcdir)/../shared/data'; export SHRINK_BUILD SHRINK_SRC SHRINK_DATA;

if HAVE_CRITERION
UNIT_LIBS = $(LDADD) $(CRITERION_LIBS)
check_PROGRAMS += tests/unit/test_base tests/unit/test_tensor tests/unit/test_io tests/unit/test_text \
	tests/unit/test_model tests/unit/test_kernels
tests_unit_test_base_SOURCES = tests/unit/test_base.c
tests_unit_test_base_LDADD = $(UNIT_LIBS)
tests_unit_test_tensor_SOURCES = tests/unit/test_tensor.c
tests_unit_test_tensor_LDADD = $(UNIT_LIBS)
tests_unit_test_io_SOURCES = tests/unit/test_io.c
tests_unit_test_io_LDADD = $(UNIT_LIBS)
tests_unit_test_text_SOURCES = tests/unit/test_text.c
tests_unit_test_text_LDADD = $(UNIT_LIBS)
tests_unit_test_model_SOURCES = tests/unit/test_model.c
tests_unit_test_model_LDADD = $(UNIT_LIBS)
tests_unit_test_kernels_SOURCES = tests/unit/test_kernels.c
tests_unit_test_kernels_LDADD = $(UNIT_LIBS)
check_PROGRAMS += tests/unit/test_alloc
tests_unit_test_alloc_SOURCES = tests/unit/test_alloc.c
tests_unit_test_alloc_LDADD = $(UNIT_LIBS)
TESTS += tests/unit/test_alloc
TESTS += tests/unit/test_base tests/unit/test_tensor tests/unit/test_io tests/unit/test_text tests/unit/test_model \
	tests/unit/test_kernels
endif

# helper that dumps logits for the reference tests
check_PROGRAMS += tests/ref/logits tests/ref/dump_tensor
tests_ref_logits_SOURCES = tests/ref/logits.c
tests_ref_dump_tensor_SOURCES = tests/ref/dump_tensor.c

TESTS += tests/ref/test_forward.py tests/ref/test_gguf_dequant.py \
	tests/cli/test_run.sh tests/cli/test_eval.sh tests/cli/test_bad_input.sh tests/cli/test_quantize.sh tests/cli/test_man.sh \
	tests/cli/test_alloc.sh tests/cli/test_crash.sh tests/cuda/test_device.sh
EXTRA_DIST += $(TESTS) tests/ref/reference.py tests/ref/modelgen.py tests/cli/lib.sh tests/cli/make_bad_inputs.py \
	tests/fuzz
