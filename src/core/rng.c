/*
 * rng.c: deterministic random numbers owned by the caller (xoshiro256** seeded by splitmix64),
 * so the same seed gives the same samples, templates and merges on every machine.
 */
#include <math.h>

#include "xledit.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void xle_rng_seed(xle_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t xle_rng_next(xle_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double xle_rng_uniform(xle_rng *rng) { return (double)(xle_rng_next(rng) >> 11) * 0x1.0p-53; }

float xle_rng_normal(xle_rng *rng) {
    /* Box-Muller; u1 in (0, 1] so the log is finite. */
    double u1 = 1.0 - xle_rng_uniform(rng);
    double u2 = xle_rng_uniform(rng);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
