/* hf_dir.c: placeholder until implemented. */
#include "shrink/shrink.h"
shrink_status shrink_read_hf_dir(const char *dir, shrink_model_file *mf, shrink_error *err) { (void)mf; return shrink_fail(err, SHRINK_EINPUT, "%s: todo", dir); }
