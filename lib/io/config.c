/* config.c: placeholder until implemented. */
#include "shrink/shrink.h"

