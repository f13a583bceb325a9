// minmax.cu -- the survey's stochastic uniform b-bit quantizer (eq 3.1), min/max or norm knobs.
//   minmax_encode_{f32,f64}  codes[i] = stochastic rounding of x[i] to the bucket's knobs;
//                            the uniform is hash32(key, i) * 2^-32 (counter RNG, rng.py)
//   minmax_decode_{f32,f64}  lo + code * delta (two correctly rounded ops)
// The bucket statistics are buckets.cu's. NumPy twin: hpctrain/compress/minmax.py.
#include "common.cuh"

template <typename T>
__device__ void ht_quantize(const T* x, ht_u64 n, ht_u64 bucket, int scaling, const T* s0,
                            const T* s1, ht_u32 levels, ht_u64 key, ht_u8* codes) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ht_u64 b = i / bucket;
    T lo, delta;
    ht_knobs<T>(scaling, s0[b], scaling == 0 ? s1[b] : (T)0, levels, &lo, &delta);
    codes[i] = (ht_u8)ht_quantize_one<T>(x[i], lo, delta, levels, ht_uniform32(key, i));
}

template <typename T>
__device__ void ht_dequantize(const ht_u8* codes, ht_u64 n, ht_u64 bucket, int scaling,
                              const T* s0, const T* s1, ht_u32 levels, T* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ht_u64 b = i / bucket;
    T lo, delta;
    ht_knobs<T>(scaling, s0[b], scaling == 0 ? s1[b] : (T)0, levels, &lo, &delta);
    out[i] = ht_dequantize_one<T>((ht_u32)codes[i], lo, delta);
}

#define HT_MINMAX_ENTRIES(SUF, T)                                                             \
    extern "C" __global__ void minmax_encode_##SUF(const T* x, ht_u64 n, ht_u64 bucket,        \
                                                   int scaling, const T* s0, const T* s1,     \
                                                   ht_u32 levels, ht_u64 key, ht_u8* codes) { \
        ht_quantize<T>(x, n, bucket, scaling, s0, s1, levels, key, codes);                    \
    }                                                                                         \
    extern "C" __global__ void minmax_decode_##SUF(const ht_u8* codes, ht_u64 n, ht_u64 bucket, \
                                                   int scaling, const T* s0, const T* s1,     \
                                                   ht_u32 levels, T* out) {                   \
        ht_dequantize<T>(codes, n, bucket, scaling, s0, s1, levels, out);                     \
    }

HT_MINMAX_ENTRIES(f32, float)
HT_MINMAX_ENTRIES(f64, double)
