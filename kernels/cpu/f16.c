/* f16.c: placeholder until implemented. */
#include "shrink/shrink.h"

