// fp16.cu -- cast to IEEE half with round-to-nearest-even (software, bit-identical to
// NumPy's astype(float16); no cuda_fp16.h needed) and back (exact).
//   to_half_{f32,f64}    uint16 half bits
//   from_half_{f32,f64}  exact widening
// NumPy twin: hpctrain/compress/fp16.py.
#include "common.cuh"

extern "C" __global__ void to_half_f32(const float* x, ht_u64 n, ht_u16* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = ht_double_to_half((double)x[i]);
}
extern "C" __global__ void to_half_f64(const double* x, ht_u64 n, ht_u16* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = ht_double_to_half(x[i]);
}
extern "C" __global__ void from_half_f32(const ht_u16* h, ht_u64 n, float* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (float)ht_half_to_double(h[i]);
}
extern "C" __global__ void from_half_f64(const ht_u16* h, ht_u64 n, double* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = ht_half_to_double(h[i]);
}
