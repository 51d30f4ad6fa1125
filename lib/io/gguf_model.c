/* gguf_model.c: placeholder until implemented. */
#include "shrink/shrink.h"
shrink_status shrink_read_gguf_model(const char *path, shrink_model_file *mf, shrink_error *err) { (void)mf; return shrink_fail(err, SHRINK_EINPUT, "%s: todo", path); }
