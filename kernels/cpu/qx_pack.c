/* qx_pack.c: repack a 4- or 8-bit matrix from the container layout (row after
 * row) into the interleaved layout of kernels.h (tiles of 8 rows, 4 bytes of
 * each row side by side). Done once per tensor at every model load: plain C,
 * with a shortcut for whole blocks, which are nearly all of them. */
#include <string.h>

#include "kernels.h"
#include "shrink/tensor.h"

#define BLK 32
#define TILE 8

static size_t round64(size_t n)
{
	return (n + 63) / 64 * 64;
}

int shrink_kernel_qx_ok(const shrink_kq *w)
{
	return shrink_kernel_linear_q_i8_ok(w);
}

static void sizes(const shrink_kq *w, shrink_kqx *x, size_t *n_q, size_t *n_s, size_t *n_z)
{
	x->bits = w->bits, x->group = w->group;
	x->rows = w->rows, x->cols = w->cols, x->n_groups = w->n_groups;
	x->n_tiles = (w->rows + TILE - 1) / TILE;
	x->n_blocks = (w->cols + BLK - 1) / BLK;
	x->blocks_per_group = w->n_groups == 1 ? x->n_blocks : w->group / BLK;
	x->block_bytes = (size_t)w->bits * BLK;
	*n_q = round64((size_t)x->n_tiles * (size_t)x->n_blocks * x->block_bytes);
	*n_s = round64((size_t)x->n_tiles * (size_t)w->n_groups * TILE * sizeof(uint16_t));
	*n_z = w->zeros ? round64((size_t)x->n_tiles * (size_t)w->n_groups * TILE) : 0;
}

size_t shrink_kernel_qx_bytes(const shrink_kq *w)
{
	shrink_kqx x;
	size_t n_q, n_s, n_z;
	sizes(w, &x, &n_q, &n_s, &n_z);
	return n_q + n_s + n_z;
}

/* row r's block b as the bytes its chunks hold, in chunk order (4 per
 * chunk): 8-bit, codes in column order; 4-bit, byte i the code of column i
 * in the low nibble and of column 16+i in the high one. Past the last column
 * the codes are 0. */
static void block_bytes(const shrink_kq *w, int64_t r, int64_t b, uint8_t *out)
{
	const uint8_t *row = w->q + (size_t)r * w->row_bytes;
	int64_t c0 = b * BLK;
	if (c0 + BLK <= w->cols) { /* whole blocks: no column checks */
		if (w->bits == 8) {
			memcpy(out, row + c0, BLK);
			return;
		}
		const uint8_t *p = row + c0 / 2; /* byte m: columns 2m, 2m+1 */
		for (int m = 0; m < 8; m++) {
			out[2 * m] = (uint8_t)((p[m] & 15) | (p[8 + m] & 15) << 4);
			out[2 * m + 1] = (uint8_t)((p[m] >> 4) | (p[8 + m] & 0xf0));
		}
		return;
	}
	uint8_t codes[BLK];
	for (int j = 0; j < BLK; j++) {
		int64_t c = c0 + j;
		codes[j] = c >= w->cols ? 0 : w->bits == 8 ? row[c] : (row[c / 2] >> (4 * (c & 1))) & 15;
	}
	for (int i = 0; i < w->bits * 4; i++)
		out[i] = w->bits == 8 ? codes[i] : (uint8_t)(codes[i] | codes[16 + i] << 4);
}

/* row k of a tile into one block: chunk ch gets 4 bytes of the row's block */
static void place_block(int bits, const uint8_t *bytes, int k, uint8_t *blk)
{
	for (int ch = 0; ch < bits; ch++)
		memcpy(blk + ch * 32 + k * 4, bytes + 4 * ch, 4);
}

static void pack_tile(const shrink_kq *w, const shrink_kqx *x, int64_t tile, uint8_t *q, uint16_t *s, uint8_t *z)
{
	uint8_t bytes[BLK];
	for (int k = 0; k < TILE; k++) {
		int64_t r = tile * TILE + k;
		if (r >= w->rows)
			break; /* padding rows keep the zeros of the memset */
		for (int64_t b = 0; b < x->n_blocks; b++) {
			block_bytes(w, r, b, bytes);
			place_block(w->bits, bytes, k, q + (size_t)b * x->block_bytes);
		}
		for (int64_t g = 0; g < w->n_groups; g++) {
			s[g * TILE + k] = w->scales[r * w->n_groups + g];
			if (z)
				z[g * TILE + k] = w->zeros[r * w->n_groups + g];
		}
	}
}

void shrink_kernel_qx_pack(const shrink_kq *w, void *mem, shrink_kqx *out)
{
	size_t n_q, n_s, n_z;
	sizes(w, out, &n_q, &n_s, &n_z);
	memset(mem, 0, n_q + n_s + n_z);
	uint8_t *q = mem;
	uint16_t *s = (uint16_t *)(q + n_q);
	uint8_t *z = w->zeros ? (uint8_t *)s + n_s : NULL;
	out->q = q, out->scales = s, out->zeros = z;
	size_t tq = (size_t)out->n_blocks * out->block_bytes, ts = (size_t)w->n_groups * TILE;
#pragma omp parallel for schedule(static)
	for (int64_t t = 0; t < out->n_tiles; t++)
		pack_tile(w, out, t, q + (size_t)t * tq, s + (size_t)t * ts, z ? z + (size_t)t * ts : NULL);
}
