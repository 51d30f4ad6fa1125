/* llama2c.c: placeholder until implemented. */
#include "shrink/shrink.h"
shrink_status shrink_read_llama2c(const char *path, shrink_model_file *mf, shrink_error *err) { (void)mf; return shrink_fail(err, SHRINK_EINPUT, "%s: todo", path); }
