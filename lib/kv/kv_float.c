/* kv_float.c: placeholder until implemented. */
#include "shrink/shrink.h"

