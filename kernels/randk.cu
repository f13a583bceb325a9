// randk.cu -- random-k with a shared seed: the k coordinates with the smallest
// counter-RNG keys hash(key(seed, step), i), ties to the lower index. The keys depend on
// (seed, step) only, so every rank selects the same coordinates and only values travel.
//   randk_{f32,f64}_hist / _count / _write   as in topk.cu, score = ~hash(key, i)
//   randk_keys                                the keys themselves (tests, debugging)
// NumPy twin: hpctrain/compress/randk.py.
#include "select.cuh"

HT_SELECT_ENTRIES(randk_f32, float, HT_MODE_RAND)
HT_SELECT_ENTRIES(randk_f64, double, HT_MODE_RAND)

extern "C" __global__ void randk_keys(ht_u64 key, ht_u64 n, ht_u64* out) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = ht_hash(key, i);
}
