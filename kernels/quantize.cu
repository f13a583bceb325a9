// quantize.cu -- stochastic uniform b-bit quantization (survey eq 3.1) and sign + scale.
//   bucket_stats_{f32,f64}  one thread per bucket, sequential in index order:
//                           kind 0 min/max (s0, s1); kind 1 l2 norm (float64 sum of
//                           squares, sqrt, cast); kind 2 mean |x| (float64 sum / count)
//   quantize_{f32,f64}      codes[i] = stochastic rounding of x[i] to the bucket's knobs;
//                           the uniform is hash(key, i) (counter RNG, rng.py)
//   dequantize_{f32,f64}    lo + code * delta (two correctly rounded ops)
//   sign_codes_{f32,f64}    1 where x < 0 (so -0.0 encodes as +)
//   sign_decode_{f32,f64}   code ? -scale : scale
// NumPy twin: hpctrain/compress/quantize.py and sign.py.
#include "common.cuh"

template <typename T>
__device__ void ht_bucket_stats(const T* x, ht_u64 n, ht_u64 bucket, int kind, T* s0, T* s1) {
    ht_u64 b = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    ht_u64 nb = (n + bucket - 1) / bucket;
    if (b >= nb) return;
    ht_u64 lo = b * bucket, hi = lo + bucket < n ? lo + bucket : n;
    if (kind == 0) {
        T mn = x[lo], mx = x[lo];
        for (ht_u64 i = lo + 1; i < hi; ++i) {
            T v = x[i];
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
        }
        s0[b] = ht_add(mn, (T)0);  // canonical +0.0 (NumPy twin adds 0 too)
        s1[b] = ht_add(mx, (T)0);
    } else {
        double acc = 0.0;
        for (ht_u64 i = lo; i < hi; ++i) {
            double v = (double)x[i];
            acc = kind == 1 ? ht_add(acc, ht_mul(v, v)) : ht_add(acc, ht_abs(v));
        }
        double r = kind == 1 ? ht_sqrt(acc) : ht_div(acc, (double)(hi - lo));
        s0[b] = ht_cast(r, (T)0);
    }
}

template <typename T>
__device__ void ht_quantize(const T* x, ht_u64 n, ht_u64 bucket, int scaling, const T* s0,
                            const T* s1, ht_u32 levels, ht_u64 key, ht_u8* codes) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ht_u64 b = i / bucket;
    T lo, delta;
    ht_knobs<T>(scaling, s0[b], scaling == 0 ? s1[b] : (T)0, levels, &lo, &delta);
    codes[i] = (ht_u8)ht_quantize_one<T>(x[i], lo, delta, levels, ht_uniform(key, i));
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

template <typename T>
__device__ void ht_sign_codes(const T* x, ht_u64 n, ht_u8* codes) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) codes[i] = x[i] < (T)0 ? 1 : 0;
}
template <typename T>
__device__ void ht_sign_decode(const ht_u8* codes, ht_u64 n, ht_u64 bucket, const T* scale, T* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T s = scale[i / bucket];
    out[i] = codes[i] ? -s : s;
}

#define HT_QUANT_ENTRIES(SUF, T)                                                              \
    extern "C" __global__ void bucket_stats_##SUF(const T* x, ht_u64 n, ht_u64 bucket, int kind, \
                                                  T* s0, T* s1) {                              \
        ht_bucket_stats<T>(x, n, bucket, kind, s0, s1);                                       \
    }                                                                                         \
    extern "C" __global__ void quantize_##SUF(const T* x, ht_u64 n, ht_u64 bucket, int scaling, \
                                              const T* s0, const T* s1, ht_u32 levels,        \
                                              ht_u64 key, ht_u8* codes) {                     \
        ht_quantize<T>(x, n, bucket, scaling, s0, s1, levels, key, codes);                    \
    }                                                                                         \
    extern "C" __global__ void dequantize_##SUF(const ht_u8* codes, ht_u64 n, ht_u64 bucket,   \
                                                int scaling, const T* s0, const T* s1,        \
                                                ht_u32 levels, T* out) {                      \
        ht_dequantize<T>(codes, n, bucket, scaling, s0, s1, levels, out);                     \
    }                                                                                         \
    extern "C" __global__ void sign_codes_##SUF(const T* x, ht_u64 n, ht_u8* codes) {          \
        ht_sign_codes<T>(x, n, codes);                                                        \
    }                                                                                         \
    extern "C" __global__ void sign_decode_##SUF(const ht_u8* codes, ht_u64 n, ht_u64 bucket,  \
                                                 const T* scale, T* out) {                    \
        ht_sign_decode<T>(codes, n, bucket, scale, out);                                      \
    }

HT_QUANT_ENTRIES(f32, float)
HT_QUANT_ENTRIES(f64, double)
