/* safetensors.c: placeholder until implemented. */
#include "shrink/shrink.h"
shrink_status shrink_safetensors_load(const char *path, shrink_tensor_set *set, char **metadata, shrink_error *err) { (void)set; (void)metadata; return shrink_fail(err, SHRINK_EINPUT, "%s: todo", path); }
