/* utf8.c: placeholder until implemented. */
#include "shrink/shrink.h"

