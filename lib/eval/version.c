/* version.c: the library version string (from configure). */
#include "config.h"
#include "shrink/shrink.h"

const char *shrink_version(void)
{
	return PACKAGE_VERSION;
}
