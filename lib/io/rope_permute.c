/* rope_permute.c: placeholder until implemented. */
#include "shrink/shrink.h"

