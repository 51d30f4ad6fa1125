lib_libshrink_la_SOURCES += lib/kv/kv.c lib/kv/kv_impl.h lib/kv/kv_float.c
