shrinkinclude_HEADERS += lib/shrink/shrink.h lib/shrink/base.h lib/shrink/tensor.h lib/shrink/config.h \
	lib/shrink/io.h lib/shrink/text.h lib/shrink/kv.h lib/shrink/model.h lib/shrink/eval.h lib/shrink/quant.h lib/shrink/quantize.h
shrinkinclude_HEADERS += lib/shrink/grad.h lib/shrink/sense.h lib/shrink/alloc.h
