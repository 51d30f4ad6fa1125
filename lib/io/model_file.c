/* model_file.c: placeholder until implemented. */
#include "shrink/shrink.h"

