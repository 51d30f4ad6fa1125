/* error.c: the error record and overflow-checked size arithmetic. */
#include <stdio.h>
#include <string.h>

#include "shrink/base.h"

shrink_status shrink_fail(shrink_error *err, shrink_status code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

shrink_status shrink_fail_prefix(shrink_error *err, const char *fmt, ...)
{
	if (!err)
		return SHRINK_EINTERNAL;
	char prefix[512], old[sizeof err->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	snprintf(err->msg, sizeof err->msg, "%s%s", prefix, old);
	return err->code;
}

void shrink_error_clear(shrink_error *err)
{
	if (err) {
		err->code = SHRINK_OK;
		err->msg[0] = '\0';
	}
}

int shrink_mul_size(size_t a, size_t b, size_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}

int shrink_add_size(size_t a, size_t b, size_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}
