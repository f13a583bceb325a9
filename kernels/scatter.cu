// scatter.cu -- sparse (index, value) pairs <-> dense buffers.
//   scatter_set_{f32,f64}  out[idx[j]] = val[j]   (decompress; out zeroed first)
//   scatter_add_{f32,f64}  out[idx[j]] += val[j]  (aggregate; indices in one payload are
//                          unique, so no atomics and the result is deterministic)
//   gather_{f32,f64}       val[j] = x[idx[j]]
// NumPy twin: hpctrain/compress/base.py (SparseCompressor.decompress/decompress_add).
#include "common.cuh"

template <typename T>
__device__ void ht_scatter_set(const ht_i64* idx, const T* val, ht_u64 k, T* out) {
    ht_u64 j = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < k) out[idx[j]] = val[j];
}
template <typename T>
__device__ void ht_scatter_add(const ht_i64* idx, const T* val, ht_u64 k, T* out) {
    ht_u64 j = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < k) out[idx[j]] = ht_add(out[idx[j]], val[j]);
}
template <typename T>
__device__ void ht_gather(const T* x, const ht_i64* idx, ht_u64 k, T* val) {
    ht_u64 j = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (j < k) val[j] = x[idx[j]];
}

extern "C" __global__ void scatter_set_f32(const ht_i64* idx, const float* val, ht_u64 k, float* out) { ht_scatter_set(idx, val, k, out); }
extern "C" __global__ void scatter_set_f64(const ht_i64* idx, const double* val, ht_u64 k, double* out) { ht_scatter_set(idx, val, k, out); }
extern "C" __global__ void scatter_add_f32(const ht_i64* idx, const float* val, ht_u64 k, float* out) { ht_scatter_add(idx, val, k, out); }
extern "C" __global__ void scatter_add_f64(const ht_i64* idx, const double* val, ht_u64 k, double* out) { ht_scatter_add(idx, val, k, out); }
extern "C" __global__ void gather_f32(const float* x, const ht_i64* idx, ht_u64 k, float* val) { ht_gather(x, idx, k, val); }
extern "C" __global__ void gather_f64(const double* x, const ht_i64* idx, ht_u64 k, double* val) { ht_gather(x, idx, k, val); }
