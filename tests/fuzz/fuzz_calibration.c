/* fuzz_calibration.c: the calibration JSON of shrink-calibrate read back
 * (shrink_calibration_parse): fields, ranges, the bits x groups grid, shapes. */
#include "shrink/sense.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	shrink_calibration c;
	shrink_error err;
	shrink_status st = shrink_calibration_parse((const char *)data, size, "fuzz.json", &c, &err);
	fuzz_expect_message(st, &err);
	if (st == SHRINK_OK)
		shrink_calibration_free(&c);
	return 0;
}
