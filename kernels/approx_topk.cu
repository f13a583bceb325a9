// approx_topk.cu -- approximate top-k's sample of scores (the selection passes are topk.cu's).
//   approx_topk_sample_{f32,f64}  |g + u| at m hashed positions (with replacement)
// NumPy twin: hpctrain/compress/approx_topk.py.
#include "select.cuh"

// out[j] = |x[pos_j] + u[pos_j]| with pos_j = hash(key, j) mod n (with replacement).
template <typename T>
__device__ void ht_sample_abs(const T* x, const T* u, ht_u64 n, ht_u64 key, ht_u64 m, T* out) {
    ht_u64 j = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    ht_u64 pos = ht_hash(key, j) % n;
    out[j] = ht_abs(ht_value(x, u, pos));
}

extern "C" __global__ void approx_topk_sample_f32(const float* x, const float* u, ht_u64 n, ht_u64 key,
                                           ht_u64 m, float* out) {
    ht_sample_abs<float>(x, u, n, key, m, out);
}
extern "C" __global__ void approx_topk_sample_f64(const double* x, const double* u, ht_u64 n,
                                           ht_u64 key, ht_u64 m, double* out) {
    ht_sample_abs<double>(x, u, n, key, m, out);
}
