/* utf8.c: UTF-8 sequence lengths, strict validation, decode and encode.
 * Written by hand because the rules are short and the encoder and decoder need
 * them byte by byte; it does not know about Unicode properties. */
#include "utf8.h"

int shrink_utf8_seq_len(unsigned char lead)
{
	static const unsigned char by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	return by_high_nibble[lead >> 4];
}

int shrink_utf8_need(unsigned char lead)
{
	if (lead < 0x80)
		return 1;
	if (lead >= 0xC2 && lead <= 0xDF)
		return 2;
	if (lead >= 0xE0 && lead <= 0xEF)
		return 3;
	if (lead >= 0xF0 && lead <= 0xF4)
		return 4;
	return 0;
}

int shrink_utf8_cont_ok(unsigned char lead, int pos, unsigned char b)
{
	unsigned char lo = 0x80, hi = 0xBF;
	if (pos == 1) {
		if (lead == 0xE0)
			lo = 0xA0;
		else if (lead == 0xED)
			hi = 0x9F;
		else if (lead == 0xF0)
			lo = 0x90;
		else if (lead == 0xF4)
			hi = 0x8F;
	}
	return b >= lo && b <= hi;
}

static int valid_len(const unsigned char *s, size_t n_bytes)
{
	int need = shrink_utf8_need(s[0]);
	if (need == 0 || (size_t)need > n_bytes)
		return 0;
	for (int i = 1; i < need; i++)
		if (!shrink_utf8_cont_ok(s[0], i, s[i]))
			return 0;
	return need;
}

size_t shrink_utf8_check(const char *s, size_t n_bytes)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n_bytes) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		int len = valid_len(u + i, n_bytes - i);
		if (!len)
			return i;
		i += (size_t)len;
	}
	return n_bytes;
}

int shrink_utf8_decode(const char *s, size_t n_bytes, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	if (n_bytes == 0)
		return 0;
	int len = valid_len(u, n_bytes);
	static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
	if (!len)
		return 0;
	uint32_t c = u[0] & lead_mask[len];
	for (int i = 1; i < len; i++)
		c = (c << 6) | (u[i] & 0x3F);
	*cp = c;
	return len;
}

int shrink_utf8_encode(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xC0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xE0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (unsigned char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (unsigned char)(0xF0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (unsigned char)(0x80 | (cp & 0x3F));
	return 4;
}
