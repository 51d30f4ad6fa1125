# lib/sense: sensitivity (Hutchinson traces, proxy Hessian, activation statistics, measured KL, Pareto
# frontier, calibration file), the training pass it differentiates (lib/model/train*.c, backward.c),
# shrink-calibrate, and their tests.
lib_libshrink_la_SOURCES += lib/model/train_params.c lib/model/train.c lib/model/train_impl.h \
	lib/model/train_ops.c lib/model/train_ops.h lib/model/train_attention.c lib/model/backward.c \
	lib/sense/sense_impl.h lib/sense/windows.c lib/sense/hvp.c lib/sense/hutchinson.c lib/sense/pareto.c \
	lib/sense/qdq.c lib/sense/layerstats.c lib/sense/kl.c lib/sense/calibrate.c lib/sense/calib_json.c \
	lib/sense/calib_files.c lib/sense/calib_read.c

bin_PROGRAMS += tools/shrink-calibrate
tools_shrink_calibrate_SOURCES = tools/shrink-calibrate.c tools/cli.c tools/cli.h
dist_man_MANS += man/shrink-calibrate.1
dist_noinst_SCRIPTS += scripts/plot-pareto

if HAVE_CRITERION
check_PROGRAMS += tests/unit/test_grad tests/unit/test_sense
tests_unit_test_grad_SOURCES = tests/unit/test_grad.c
tests_unit_test_grad_LDADD = $(LDADD) $(CRITERION_LIBS)
tests_unit_test_sense_SOURCES = tests/unit/test_sense.c
tests_unit_test_sense_LDADD = $(LDADD) $(CRITERION_LIBS)
TESTS += tests/unit/test_grad tests/unit/test_sense
endif

# test helper for the NumPy references (gradient, Hessian-vector products, traces) and timings
check_PROGRAMS += tests/ref/grad_tool
tests_ref_grad_tool_SOURCES = tests/ref/grad_tool.c
TESTS += tests/ref/test_grad_ref.py tests/ref/test_hessian_ref.py tests/cli/test_calibrate.sh
EXTRA_DIST += tests/ref/grad_ref.py
