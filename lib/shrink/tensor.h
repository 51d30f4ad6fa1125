/* tensor.h: dtypes, shapes and named tensors.
 * A shrink_tensor is a view: shape outermost-first (row-major, as in
 * safetensors / PyTorch), data either borrowed from a mapping or owned.
 * GGUF block-quantized types are kept as their own dtypes so readers need not
 * convert; shrink_dequant_row() turns any row into float32. */
#ifndef SHRINK_TENSOR_H
#define SHRINK_TENSOR_H

#include <stdbool.h>
#include "base.h"

typedef enum {
	SHRINK_F32,
	SHRINK_F16,
	SHRINK_BF16,
	SHRINK_F64,
	SHRINK_I8,
	SHRINK_U8,
	SHRINK_I16,
	SHRINK_U16,
	SHRINK_I32,
	SHRINK_U32,
	SHRINK_I64,
	SHRINK_U64,
	SHRINK_BOOL,
	/* GGUF block types (dequantized on load) */
	SHRINK_Q4_0,
	SHRINK_Q4_1,
	SHRINK_Q5_0,
	SHRINK_Q5_1,
	SHRINK_Q8_0,
	SHRINK_Q2_K,
	SHRINK_Q3_K,
	SHRINK_Q4_K,
	SHRINK_Q5_K,
	SHRINK_Q6_K,
	/* integer-quantized matrix of the shrink container: data points to a
	 * shrink_qmatrix (quant.h) whose arrays live in the file's mapping */
	SHRINK_QPACKED,
	SHRINK_DTYPE_COUNT
} shrink_dtype;

#define SHRINK_MAX_DIMS 4
#define SHRINK_NAME_MAX 160

typedef struct {
	char name[SHRINK_NAME_MAX];
	shrink_dtype dtype;
	int n_dims;
	int64_t shape[SHRINK_MAX_DIMS];
	const void *data;
	size_t n_bytes;
	void *owned; /* freed with the tensor when non-NULL (== data) */
} shrink_tensor;

const char *shrink_dtype_name(shrink_dtype t);
/* Elements per block and bytes per block (1 and element size for plain types). */
int shrink_dtype_block(shrink_dtype t, int *block_elems, int *block_bytes);
bool shrink_dtype_is_float(shrink_dtype t); /* F32/F16/BF16/F64 */
int64_t shrink_tensor_numel(const shrink_tensor *t);
/* Bytes needed for numel elements of dtype t; 0 on overflow or bad block multiple. */
size_t shrink_dtype_bytes(shrink_dtype t, int64_t numel);

float shrink_f16_to_f32(uint16_t h);
uint16_t shrink_f32_to_f16(float f);
float shrink_bf16_to_f32(uint16_t h);
uint16_t shrink_f32_to_bf16(float f);

/* Convert n elements starting at element index `first` (a multiple of the block
 * size for block types) of a tensor's data into float32. */
shrink_status shrink_dequant_row(shrink_dtype t, const void *src, int64_t first, int64_t n, float *dst,
				 shrink_error *err);

/* A named set of tensors plus the mappings that back them. */
typedef struct {
	shrink_tensor *tensors;
	size_t n, cap;
	shrink_mapping *maps;
	size_t n_maps;
} shrink_tensor_set;

void shrink_tensor_set_free(shrink_tensor_set *s);
shrink_tensor *shrink_tensor_set_add(shrink_tensor_set *s, shrink_error *err);
const shrink_tensor *shrink_tensor_set_find(const shrink_tensor_set *s, const char *name);
shrink_tensor *shrink_tensor_set_find_mut(shrink_tensor_set *s, const char *name);
shrink_status shrink_tensor_set_keep_mapping(shrink_tensor_set *s, shrink_mapping m, shrink_error *err);

#endif
