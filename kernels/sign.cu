// sign.cu -- 1-bit sign + mean-|x| scale per bucket.
//   sign_encode_{f32,f64}  1 where x < 0 (so -0.0 encodes as +)
//   sign_decode_{f32,f64}  code ? -scale : scale
// The scales are buckets.cu's (kind 2). NumPy twin: hpctrain/compress/sign.py.
#include "common.cuh"

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

#define HT_SIGN_ENTRIES(SUF, T)                                                               \
    extern "C" __global__ void sign_encode_##SUF(const T* x, ht_u64 n, ht_u8* codes) {         \
        ht_sign_codes<T>(x, n, codes);                                                        \
    }                                                                                         \
    extern "C" __global__ void sign_decode_##SUF(const ht_u8* codes, ht_u64 n, ht_u64 bucket,  \
                                                 const T* scale, T* out) {                    \
        ht_sign_decode<T>(codes, n, bucket, scale, out);                                      \
    }

HT_SIGN_ENTRIES(f32, float)
HT_SIGN_ENTRIES(f64, double)
