/* shrink.h: the whole public API of libshrink. */
#ifndef SHRINK_SHRINK_H
#define SHRINK_SHRINK_H

#include "alloc.h"
#include "base.h"
#include "config.h"
#include "eval.h"
#include "grad.h"
#include "io.h"
#include "kv.h"
#include "quant.h"
#include "quantize.h"
#include "sense.h"
#include "model.h"
#include "tensor.h"
#include "text.h"

const char *shrink_version(void);

#endif
