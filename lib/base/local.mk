lib_libshrink_la_SOURCES += lib/base/error.c lib/base/mapping.c lib/base/text_file.c lib/base/sys.c lib/base/outfile.c lib/base/limits.c
UNIT_TESTS_BASE = tests/unit/test_base
