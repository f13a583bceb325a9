// common.cuh -- shared device math for every kernels/*.cu file.
//
// Everything here is bit-for-bit identical to the NumPy reference in
// hpctrain/compress/ (rng.py, minmax.py, fp16.py):
//   * the counter-based generators (splitmix64 finalizer of key + (i+1)*golden, and
//     the quantizers' 32-bit lowbias32 stream),
//   * correctly rounded float arithmetic (explicit _rn intrinsics: no FMA contraction),
//   * float -> half conversion with round-to-nearest-even (a port of NumPy's rules).
// The functions are __host__ __device__ so tests/compress/test_host_twin.py can compile
// this header with a host C++ compiler and compare it with NumPy on a CPU-only machine.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define HT_HD __host__ __device__ __forceinline__
#else
#define HT_HD static inline
#include <string.h>
#include <math.h>
#endif

typedef unsigned long long ht_u64;
typedef long long ht_i64;
typedef unsigned int ht_u32;
typedef unsigned short ht_u16;
typedef unsigned char ht_u8;

#define HT_GOLDEN 0x9E3779B97F4A7C15ULL
#define HT_BLOCK 256

// ---------------------------------------------------------------- counter RNG
HT_HD ht_u64 ht_mix64(ht_u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// 64 random bits for counter i of the stream named by key (see rng.counter_key).
HT_HD ht_u64 ht_hash(ht_u64 key, ht_u64 i) { return ht_mix64(key + (i + 1ULL) * HT_GOLDEN); }

// Uniform double in [0, 1) with 53 random bits (exact: an integer times 2^-53).
HT_HD double ht_uniform(ht_u64 key, ht_u64 i) {
    return (double)(ht_hash(key, i) >> 11) * (1.0 / 9007199254740992.0);
}

// The quantizers' cheaper 32-bit stream (rng.hash32): lowbias32 of k32 + (i+1)*golden32
// (mod 2^32), k32 = the halves of the key xored; uniform = bits * 2^-32 (exact).
#define HT_GOLDEN32 0x9E3779B9u
HT_HD ht_u32 ht_key32(ht_u64 key) { return (ht_u32)(key ^ (key >> 32)); }
HT_HD ht_u32 ht_hash32(ht_u32 k32, ht_u64 i) {
    ht_u32 x = k32 + ((ht_u32)i + 1u) * HT_GOLDEN32;
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}
HT_HD double ht_uniform32(ht_u64 key, ht_u64 i) {
    return (double)ht_hash32(ht_key32(key), i) * (1.0 / 4294967296.0);
}

// ---------------------------------------------------------------- bit views
HT_HD ht_u64 ht_bits(double v) {
#ifdef __CUDA_ARCH__
    return (ht_u64)__double_as_longlong(v);
#else
    ht_u64 b; memcpy(&b, &v, 8); return b;
#endif
}
HT_HD ht_u64 ht_bits(float v) {
#ifdef __CUDA_ARCH__
    return (ht_u64)__float_as_uint(v);
#else
    ht_u32 b; memcpy(&b, &v, 4); return (ht_u64)b;
#endif
}
HT_HD double ht_from_bits_f64(ht_u64 b) {
#ifdef __CUDA_ARCH__
    return __longlong_as_double((long long)b);
#else
    double v; memcpy(&v, &b, 8); return v;
#endif
}
HT_HD float ht_from_bits_f32(ht_u64 b) {
#ifdef __CUDA_ARCH__
    return __uint_as_float((ht_u32)b);
#else
    ht_u32 w = (ht_u32)b; float v; memcpy(&v, &w, 4); return v;
#endif
}

// Order-preserving score of |v|: the bits of v with the sign cleared. For finite values
// a larger |v| gives a larger score, and -0.0 and +0.0 score the same.
HT_HD ht_u64 ht_abs_score(float v) { return ht_bits(v) & 0x7FFFFFFFULL; }
HT_HD ht_u64 ht_abs_score(double v) { return ht_bits(v) & 0x7FFFFFFFFFFFFFFFULL; }
HT_HD float ht_abs(float v) { return ht_from_bits_f32(ht_abs_score(v)); }
HT_HD double ht_abs(double v) { return ht_from_bits_f64(ht_abs_score(v)); }

// ------------------------------------------- correctly rounded arithmetic (no FMA)
#ifdef __CUDA_ARCH__
HT_HD float ht_add(float a, float b) { return __fadd_rn(a, b); }
HT_HD float ht_sub(float a, float b) { return __fsub_rn(a, b); }
HT_HD float ht_mul(float a, float b) { return __fmul_rn(a, b); }
HT_HD float ht_div(float a, float b) { return __fdiv_rn(a, b); }
HT_HD double ht_add(double a, double b) { return __dadd_rn(a, b); }
HT_HD double ht_sub(double a, double b) { return __dsub_rn(a, b); }
HT_HD double ht_mul(double a, double b) { return __dmul_rn(a, b); }
HT_HD double ht_div(double a, double b) { return __ddiv_rn(a, b); }
HT_HD double ht_sqrt(double a) { return __dsqrt_rn(a); }
HT_HD float ht_floor(float a) { return floorf(a); }
HT_HD double ht_floor(double a) { return floor(a); }
HT_HD float ht_to_f32(double a) { return __double2float_rn(a); }
#else
HT_HD float ht_add(float a, float b) { return a + b; }
HT_HD float ht_sub(float a, float b) { return a - b; }
HT_HD float ht_mul(float a, float b) { return a * b; }
HT_HD float ht_div(float a, float b) { return a / b; }
HT_HD double ht_add(double a, double b) { return a + b; }
HT_HD double ht_sub(double a, double b) { return a - b; }
HT_HD double ht_mul(double a, double b) { return a * b; }
HT_HD double ht_div(double a, double b) { return a / b; }
HT_HD double ht_sqrt(double a) { return sqrt(a); }
HT_HD float ht_floor(float a) { return floorf(a); }
HT_HD double ht_floor(double a) { return floor(a); }
HT_HD float ht_to_f32(double a) { return (float)a; }
#endif
HT_HD float ht_cast(double a, float) { return ht_to_f32(a); }
HT_HD double ht_cast(double a, double) { return a; }

// ------------------------------------------------------ b-bit stochastic rounding
// Knobs lo + c*delta, c = 0..levels. Returns the code of x (eq 3.1 of the survey):
// t = (x - lo)/delta clamped to [0, levels] (NaN, from a range that overflows to inf,
// counts as 0); round up with probability frac(t).
template <typename T>
HT_HD ht_u32 ht_quantize_one(T x, T lo, T delta, ht_u32 levels, double u) {
    T L = (T)levels;
    T t = delta > (T)0 ? ht_div(ht_sub(x, lo), delta) : (T)0;
    t = t > (T)0 ? t : (T)0;  // also NaN -> 0: inf/inf when the bucket's range overflows
    t = t > L ? L : t;
    T fl = ht_floor(t);
    T frac = ht_sub(t, fl);
    ht_u32 code = (ht_u32)fl + (u < (double)frac ? 1u : 0u);
    return code > levels ? levels : code;
}

template <typename T>
HT_HD T ht_dequantize_one(ht_u32 code, T lo, T delta) { return ht_add(lo, ht_mul((T)code, delta)); }

// Bucket knobs: scaling 0 = min/max (s0 = min, s1 = max); 1 = norm (s0 = ||x||_2, knobs
// symmetric in [-norm, norm]).
template <typename T>
HT_HD void ht_knobs(int scaling, T s0, T s1, ht_u32 levels, T* lo, T* delta) {
    if (scaling == 0) {
        *lo = s0;
        *delta = ht_div(ht_sub(s1, s0), (T)levels);
    } else {
        *lo = -s0;
        *delta = ht_div(ht_add(s0, s0), (T)levels);
    }
}

// ------------------------------------------------------------------- fp16 casts
// Round a double to the nearest IEEE half (ties to even); a float goes through double
// exactly, so one routine serves both (double rounding cannot occur: the widening is exact).
HT_HD ht_u16 ht_double_to_half(double d) {
    ht_u64 b = ht_bits(d);
    ht_u16 sign = (ht_u16)((b >> 48) & 0x8000u);
    ht_u64 exp = (b >> 52) & 0x7FFULL;
    ht_u64 man = b & 0xFFFFFFFFFFFFFULL;
    if (exp == 0x7FFULL) {
        if (man == 0) return (ht_u16)(sign | 0x7C00u);
        ht_u16 r = (ht_u16)(0x7C00u + (man >> 42));
        if (r == 0x7C00u) r++;
        return (ht_u16)(sign + r);
    }
    long long e = (long long)exp - 1023 + 15;
    if (e >= 31) return (ht_u16)(sign | 0x7C00u);
    if (e >= 1) {
        ht_u64 m = man >> 42, rem = man & ((1ULL << 42) - 1ULL), half = 1ULL << 41;
        ht_u64 h = ((ht_u64)e << 10) + m;
        if (rem > half || (rem == half && (m & 1ULL))) h += 1;
        return (ht_u16)(sign + h);  // a carry rolls into the exponent (up to inf): correct
    }
    if (exp == 0) return sign;  // double subnormal or zero: far below half's range
    ht_u64 sig = man | (1ULL << 52);
    long long shift = 1051 - (long long)exp;  // value = sig * 2^-shift in units of 2^-24
    if (shift > 62) return sign;
    ht_u64 m = sig >> shift, rem = sig & ((1ULL << shift) - 1ULL), half = 1ULL << (shift - 1);
    if (rem > half || (rem == half && (m & 1ULL))) m += 1;
    return (ht_u16)(sign + m);
}

HT_HD double ht_half_to_double(ht_u16 h) {
    ht_u64 sign = ((ht_u64)(h & 0x8000u)) << 48;
    ht_u64 e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 31) return ht_from_bits_f64(sign | (0x7FFULL << 52) | (m << 42));
    if (e == 0) {
        double v = (double)m * (1.0 / 16777216.0);  // exact: m * 2^-24
        return sign ? -v : v;
    }
    return ht_from_bits_f64(sign | ((e - 15 + 1023) << 52) | (m << 42));
}

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
// ------------------------------------------------------------- block-level scan
// Exclusive prefix count of `flag` over the threads of a block of HT_BLOCK threads, in
// thread order (= index order). Every thread of the block must call it. `total` gets the
// block's count.
__device__ __forceinline__ ht_u32 ht_block_excl_scan(bool flag, ht_u32* warp_sums, ht_u32* total) {
    ht_u32 lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    ht_u32 ballot = __ballot_sync(0xFFFFFFFFu, flag);
    ht_u32 in_warp = __popc(ballot & ((1u << lane) - 1u));
    if (lane == 0) warp_sums[warp] = __popc(ballot);
    __syncthreads();
    if (threadIdx.x == 0) {
        ht_u32 acc = 0;
        for (ht_u32 w = 0; w < (blockDim.x >> 5); ++w) {
            ht_u32 c = warp_sums[w];
            warp_sums[w] = acc;
            acc += c;
        }
        *total = acc;
    }
    __syncthreads();
    ht_u32 r = warp_sums[warp] + in_warp;
    __syncthreads();
    return r;
}
#endif
