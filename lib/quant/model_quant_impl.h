/* model_quant_impl.h: pieces shared by the whole-model quantization driver
 * (model_quant.c) and its GPTQ pass (gptq_model.c). Internal to lib/quant. */
#ifndef SHRINK_MODEL_QUANT_IMPL_H
#define SHRINK_MODEL_QUANT_IMPL_H

#include "shrink/quantize.h"

/* The whole tensor as float32 (malloc'd), whatever its stored dtype. */
shrink_status mq_tensor_f32(const shrink_tensor *t, float **out, shrink_error *err);
/* Quantize w [rows, cols] per the plan entry (RTN, or GPTQ when H is given),
 * write its parts, and optionally return the dequantized matrix in deq. */
shrink_status mq_quantize_put(shrink_container_writer *wr, const shrink_plan_entry *e, const float *w, const double *H,
			      const shrink_quantize_params *p, float *deq, shrink_error *err);
const shrink_plan_entry *mq_plan_find(const shrink_quant_plan *plan, const char *name);
/* GPTQ over the layers, writing every layer linear of the plan. */
shrink_status mq_gptq_layers(const shrink_model *m, const shrink_quant_plan *plan, const shrink_quantize_params *p,
			     shrink_container_writer *wr, bool *written, shrink_error *err);

#endif
