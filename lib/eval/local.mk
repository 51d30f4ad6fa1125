lib_libshrink_la_SOURCES += lib/eval/perplexity.c lib/eval/version.c
