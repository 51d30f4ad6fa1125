/* limits.c: the ceilings for untrusted input (see base.h). One process-wide
 * copy holding the defaults until a program sets its own (the programs read
 * SHRINK_MAX_* from the environment: tools/cli.c; the library reads none). */
#include "shrink/base.h"

static shrink_limits current = {
    .header_bytes = 100000000ull,
    .tensors = 1ull << 20,
    .metadata = 1ull << 20,
    .array_len = 1ull << 26,
    .text_bytes = 4ull << 30,
};

const shrink_limits *shrink_limits_get(void)
{
	return &current;
}

void shrink_limits_set(const shrink_limits *l)
{
	current = *l;
}
