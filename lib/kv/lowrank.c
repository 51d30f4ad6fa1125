/* lowrank.c: rank-r approximation of a small dense matrix (one KV head's
 * quantization residual, T tokens x d channels) by subspace (power) iteration,
 * as GEAR does, but re-orthonormalising every iteration (modified Gram-Schmidt,
 * applied twice) for float32 safety. Start vectors come from a fixed-seed
 * splitmix64 stream: the result depends only on the matrix. The matrices are
 * 64 x 128-sized, so plain loops beat a BLAS call; the result is checked against
 * LAPACK's SVD in tests/unit/test_kv.c. It does not compute singular values or
 * guarantee convergence: the caller picks the iteration count. */
#include <math.h>
#include <string.h>

#include "kv_impl.h"

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double dot(const float *a, const float *b, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* rows [r, n]: make the rows orthonormal in order; a row (nearly) in the span of the earlier ones becomes zero */
static void orthonormalize(float *rows, int r, int n)
{
	for (int k = 0; k < r; k++) {
		float *v = rows + (size_t)k * n;
		double before = sqrt(dot(v, v, n));
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < k; i++) {
				const float *u = rows + (size_t)i * n;
				float proj = (float)dot(u, v, n);
				for (int j = 0; j < n; j++)
					v[j] -= proj * u[j];
			}
		double after = sqrt(dot(v, v, n));
		float inv = after > 1e-6 * before && after > 0 ? (float)(1 / after) : 0;
		for (int j = 0; j < n; j++)
			v[j] *= inv;
	}
}

void shrink_lowrank_right(const float *R, int T, int d, int r, const float *qt, float *pt)
{
	memset(pt, 0, (size_t)r * d * sizeof *pt);
	for (int t = 0; t < T; t++) {
		const float *row = R + (size_t)t * d;
		for (int k = 0; k < r; k++) {
			float q = qt[(size_t)k * T + t];
			float *p = pt + (size_t)k * d;
			for (int j = 0; j < d; j++)
				p[j] += q * row[j];
		}
	}
}

static void left(const float *R, int T, int d, int r, const float *pt, float *qt)
{
	for (int t = 0; t < T; t++)
		for (int k = 0; k < r; k++)
			qt[(size_t)k * T + t] = (float)dot(R + (size_t)t * d, pt + (size_t)k * d, d);
}

void shrink_lowrank_fit(const float *R, int T, int d, int r, int iters, float *qt, float *pt)
{
	uint64_t seed = 0x6765617200000000ull; /* "gear" */
	for (size_t i = 0; i < (size_t)r * d; i++)
		pt[i] = (float)((splitmix64(&seed) >> 11) * 0x1p-53 * 2 - 1);
	for (int it = 0; it < iters; it++) {
		orthonormalize(pt, r, d);
		left(R, T, d, r, pt, qt);
		orthonormalize(qt, r, T);
		shrink_lowrank_right(R, T, d, r, qt, pt);
	}
}
