// qsgd.cu -- QSGD (Alistarh et al. 2017): sign + one of s levels of the bucket's l2 norm.
//   qsgd_encode_{f32,f64}  codes[i] = level | sign << (bits-1), one thread per coordinate;
//                          r = (|x| / norm) * s, level = floor(r) + (u < frac(r)), u the
//                          counter-RNG uniform hash32(key, i) * 2^-32; norm 0 or NaN r -> level 0
//   qsgd_decode_{f32,f64}  out[i] = +-(norm * (level / s))
// The bucket norms come from buckets.cu (bucket_stats kind 1). s = 2^(bits-1) - 1.
// NumPy twin: hpctrain/compress/qsgd.py.
#include "common.cuh"

template <typename T>
__device__ void ht_qsgd_encode(const T* x, ht_u64 n, ht_u64 bucket, const T* norms, int bits, ht_u64 key,
                               ht_u8* codes) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ht_u32 s = (1u << (bits - 1)) - 1u;
    T S = (T)s, v = x[i], nrm = norms[i / bucket];
    T r = nrm > (T)0 ? ht_mul(ht_div(ht_abs(v), nrm), S) : (T)0;
    r = r > (T)0 ? r : (T)0;  // also NaN -> 0
    r = r > S ? S : r;
    T fl = ht_floor(r);
    T frac = ht_sub(r, fl);
    ht_u32 level = (ht_u32)fl + (ht_uniform32(key, i) < (double)frac ? 1u : 0u);
    level = level > s ? s : level;
    codes[i] = (ht_u8)(level | ((v < (T)0 ? 1u : 0u) << (bits - 1)));
}

template <typename T>
__device__ void ht_qsgd_decode(const ht_u8* codes, ht_u64 n, ht_u64 bucket, const T* norms, int bits, T* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ht_u32 s = (1u << (bits - 1)) - 1u, c = codes[i];
    T q = ht_mul(norms[i / bucket], ht_div((T)(c & s), (T)s));
    out[i] = (c >> (bits - 1)) & 1u ? -q : q;
}

extern "C" __global__ void qsgd_encode_f32(const float* x, ht_u64 n, ht_u64 bucket, const float* norms, int bits,
                                           ht_u64 key, ht_u8* codes) {
    ht_qsgd_encode<float>(x, n, bucket, norms, bits, key, codes);
}
extern "C" __global__ void qsgd_encode_f64(const double* x, ht_u64 n, ht_u64 bucket, const double* norms, int bits,
                                           ht_u64 key, ht_u8* codes) {
    ht_qsgd_encode<double>(x, n, bucket, norms, bits, key, codes);
}
extern "C" __global__ void qsgd_decode_f32(const ht_u8* codes, ht_u64 n, ht_u64 bucket, const float* norms, int bits,
                                           float* out) {
    ht_qsgd_decode<float>(codes, n, bucket, norms, bits, out);
}
extern "C" __global__ void qsgd_decode_f64(const ht_u8* codes, ht_u64 n, ht_u64 bucket, const double* norms,
                                           int bits, double* out) {
    ht_qsgd_decode<double>(codes, n, bucket, norms, bits, out);
}
