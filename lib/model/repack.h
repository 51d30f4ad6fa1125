/* repack.h: load-time copies of quantized weights in the CPU kernels'
 * interleaved layout (internal to lib/model). */
#ifndef SHRINK_MODEL_REPACK_H
#define SHRINK_MODEL_REPACK_H

#include "kernels.h"
#include "shrink/model.h"
#include "shrink/quant.h"

/* Repack every 4/8-bit quantized tensor of m that the interleaved kernels
 * take (SHRINK_EIO when memory is short). */
shrink_status repack_model(const shrink_model *m, shrink_error *err);
/* Forget and free the copies made for m's tensors. */
void repack_release(const shrink_model *m);
/* The kernels' view of a matrix in the container layout. */
shrink_kq repack_kq_of(const shrink_qmatrix *m);
/* The copy of a quantized tensor's matrix (t->data), or NULL. */
const shrink_kqx *repack_find(const shrink_qmatrix *m);

#endif
