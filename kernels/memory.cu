// memory.cu -- error-feedback memory for dense operators (minmax, qsgd, sign, fp16).
// The sparse operators update memory inside their selection pass (select.cuh,
// *_write: u <- (g + u) - sent in one pass).
//   ef_add_{f32,f64}       p = g + u                      (the vector to compress)
//   ef_residual_{f32,f64}  u = p - q                      (q = decompress(compress(p)))
//   uniform_f64            counter-RNG uniforms (tests: bit-identity with rng.py)
// NumPy twin: Compressor.compress(memory=) in hpctrain/compress/base.py.
#include "common.cuh"

template <typename T>
__device__ void ht_ef_add(const T* g, const T* u, ht_u64 n, T* p) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) p[i] = ht_add(g[i], u[i]);
}
template <typename T>
__device__ void ht_ef_residual(const T* p, const T* q, ht_u64 n, T* u) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) u[i] = ht_sub(p[i], q[i]);
}

extern "C" __global__ void ef_add_f32(const float* g, const float* u, ht_u64 n, float* p) { ht_ef_add(g, u, n, p); }
extern "C" __global__ void ef_add_f64(const double* g, const double* u, ht_u64 n, double* p) { ht_ef_add(g, u, n, p); }
extern "C" __global__ void ef_residual_f32(const float* p, const float* q, ht_u64 n, float* u) { ht_ef_residual(p, q, n, u); }
extern "C" __global__ void ef_residual_f64(const double* p, const double* q, ht_u64 n, double* u) { ht_ef_residual(p, q, n, u); }

extern "C" __global__ void uniform_f64(ht_u64 key, ht_u64 n, double* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = ht_uniform(key, i);
}

extern "C" __global__ void uniform32_f64(ht_u64 key, ht_u64 n, double* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = ht_uniform32(key, i);
}
