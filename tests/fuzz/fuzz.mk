# fuzz.mk: standalone clang build of the libFuzzer targets, apart from the
# autotools build (scripts/fuzz runs it from the top of the tree):
#   make -f tests/fuzz/fuzz.mk O=build-fuzz [TARGETS...]
# The library is compiled with ASan + UBSan and coverage instrumentation into
# one static archive (the linker takes only what a target uses); each
# tests/fuzz/fuzz_X.c links against it into $(O)/fuzz_X. The CPU kernels (all
# of kernels/cpu, and library files that test CPU features) are compiled by gcc
# without instrumentation: clang 14 lacks some of the feature names. OpenMP comes from LLVM's libomp.
O ?= build-fuzz
CC = clang
SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
CFLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter \
	-fopenmp $(SAN)
PKGS = libcjson zlib libpcre2-8 gsl
CPPFLAGS = -I$(O) -Ilib -Ilib/shrink -Ikernels $(shell pkg-config --cflags $(PKGS)) \
	-I/usr/include/x86_64-linux-gnu/openblas-pthread
LIBS = $(shell pkg-config --libs $(PKGS)) -llapacke -lopenblas -lglpk -lm

GCC_SRC = $(wildcard kernels/cpu/*.c) $(shell grep -l __builtin_cpu_supports lib/*/*.c)
LIB_SRC = $(filter-out $(GCC_SRC),$(wildcard lib/*/*.c))
LIB_OBJ = $(patsubst %.c,$(O)/obj/%.o,$(LIB_SRC)) $(patsubst %.c,$(O)/obj-gcc/%.o,$(GCC_SRC))
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(patsubst tests/fuzz/%.c,$(O)/%,$(FUZZ_SRC))

all: $(FUZZ_BIN)

$(O)/config.h:
	@mkdir -p $(O)
	echo '#define PACKAGE_VERSION "fuzz"' > $@

$(O)/obj/%.o: %.c $(O)/config.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(O)/obj-gcc/%.o: %.c $(O)/config.h
	@mkdir -p $(dir $@)
	gcc $(CPPFLAGS) -std=gnu11 -g -O2 -fopenmp -MMD -MP -c -o $@ $<

$(O)/libshrink-fuzz.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(O)/fuzz_%: $(O)/obj/tests/fuzz/fuzz_%.o $(O)/obj/tests/fuzz/util.o $(O)/libshrink-fuzz.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

-include $(shell find $(O)/obj $(O)/obj-gcc -name '*.d' 2>/dev/null)
.PHONY: all
.SECONDARY:
