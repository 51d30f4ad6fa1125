/* cpu_features.c: which instruction sets this CPU has, asked once. The
 * kernels pick their AVX2/FMA/F16C or VNNI versions from these answers and
 * fall back to plain C; every version gives the same results (the tests
 * compare them), so the answers change speed only. */
#include "kernels.h"

enum { F16C = 1, AVX2 = 2, VNNI = 4 };

#if defined(__x86_64__) || defined(__i386__)
static int detect(void)
{
	__builtin_cpu_init();
	int f = 0;
	if (__builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c"))
		f |= F16C;
	if ((f & F16C) && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		f |= AVX2;
	if ((f & AVX2) && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
		f |= VNNI;
	return f;
}
#else
static int detect(void)
{
	return 0;
}
#endif

/* threads racing on the first call store the same answer */
static int features(void)
{
	static int cached = -1;
	int f = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	if (f < 0) {
		f = detect();
		__atomic_store_n(&cached, f, __ATOMIC_RELAXED);
	}
	return f;
}

int shrink_cpu_avx2(void)
{
	return (features() & AVX2) != 0;
}

int shrink_cpu_f16c(void)
{
	return (features() & F16C) != 0;
}

int shrink_cpu_vnni(void)
{
	return (features() & VNNI) != 0;
}
