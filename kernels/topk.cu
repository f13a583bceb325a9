// topk.cu -- magnitude selection: exact top-k, approximate top-k, threshold-k.
//
// Scores are |g + u| (u optional: error-feedback memory), compared as the bits of the
// absolute value, which order finite floats exactly. Entry points:
//   topk_{f32,f64}_hist   radix-select histogram pass (host finds the k-th largest)
//   topk_{f32,f64}_count  per-block counts of > thr and == thr
//   topk_{f32,f64}_write  fused selection + memory update (sent idx/val, u <- p - sent)
//   topk_sample_{f32,f64} |g + u| at m hashed positions (approximate top-k's sample)
// NumPy twin: hpctrain/compress/topk.py.
#include "select.cuh"

HT_SELECT_ENTRIES(topk_f32, float, HT_MODE_ABS)
HT_SELECT_ENTRIES(topk_f64, double, HT_MODE_ABS)

// out[j] = |x[pos_j] + u[pos_j]| with pos_j = hash(key, j) mod n (with replacement).
template <typename T>
__device__ void ht_sample_abs(const T* x, const T* u, ht_u64 n, ht_u64 key, ht_u64 m, T* out) {
    ht_u64 j = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= m) return;
    ht_u64 pos = ht_hash(key, j) % n;
    out[j] = ht_abs(ht_value(x, u, pos));
}

extern "C" __global__ void topk_sample_f32(const float* x, const float* u, ht_u64 n, ht_u64 key,
                                           ht_u64 m, float* out) {
    ht_sample_abs<float>(x, u, n, key, m, out);
}
extern "C" __global__ void topk_sample_f64(const double* x, const double* u, ht_u64 n,
                                           ht_u64 key, ht_u64 m, double* out) {
    ht_sample_abs<double>(x, u, n, key, m, out);
}
