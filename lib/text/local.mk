lib_libshrink_la_SOURCES += lib/text/tokenizer.c lib/text/tokenizer_impl.h lib/text/spm.c lib/text/bpe.c \
	lib/text/pretok.c lib/text/decode.c lib/text/utf8.c lib/text/utf8.h lib/text/hash.c lib/text/queue.c \
	lib/text/partition.c
