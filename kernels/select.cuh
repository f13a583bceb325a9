// select.cuh -- score-based selection shared by topk.cu (score = |g + u|) and
// randk.cu (score = ~hash(key, i), i.e. the k smallest hash keys).
//
// Selection = radix select of the k-th largest score (radix_hist, 8 bits per pass,
// driven from the host) + an order-preserving compaction (select_count, select_write)
// that keeps every score > thr and the first `need` scores == thr in index order, so
// ties go to the lower index exactly as in the NumPy reference. select_write is also
// the fused memory update: it writes the sent (index, value) pairs and, when mem_out is
// given, the new memory u <- (g + u) - sent in the same pass.
#pragma once
#include "common.cuh"

#define HT_MODE_ABS 0
#define HT_MODE_RAND 1

template <typename T>
__device__ __forceinline__ T ht_value(const T* x, const T* u, ht_u64 i) {
    return u ? ht_add(x[i], u[i]) : x[i];
}

template <typename T, int MODE>
__device__ __forceinline__ ht_u64 ht_score(const T* x, const T* u, ht_u64 i, ht_u64 key) {
    if (MODE == HT_MODE_ABS) return ht_abs_score(ht_value(x, u, i));
    return ~ht_hash(key, i);
}

// hist[b] += #{i : (score_i & mask) == prefix and byte `shift` of score_i == b}.
// Grid-stride loop; hist has 256 zeroed counters.
template <typename T, int MODE>
__device__ void ht_radix_hist(const T* x, const T* u, ht_u64 n, ht_u64 key, ht_u64 prefix,
                              ht_u64 mask, int shift, unsigned long long* hist) {
    __shared__ unsigned int sh[256];
    for (int t = threadIdx.x; t < 256; t += blockDim.x) sh[t] = 0u;
    __syncthreads();
    ht_u64 stride = (ht_u64)gridDim.x * blockDim.x;
    for (ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        ht_u64 s = ht_score<T, MODE>(x, u, i, key);
        if ((s & mask) == prefix) atomicAdd(&sh[(s >> shift) & 255ULL], 1u);
    }
    __syncthreads();
    for (int t = threadIdx.x; t < 256; t += blockDim.x)
        if (sh[t]) atomicAdd(&hist[t], (unsigned long long)sh[t]);
}

// Per block of HT_BLOCK elements: how many scores are > thr and == thr.
template <typename T, int MODE>
__device__ void ht_select_count(const T* x, const T* u, ht_u64 n, ht_u64 key, ht_u64 thr,
                                ht_i64* gt_blk, ht_i64* eq_blk) {
    ht_u64 i = (ht_u64)blockIdx.x * HT_BLOCK + threadIdx.x;
    bool gt = false, eq = false;
    if (i < n) {
        ht_u64 s = ht_score<T, MODE>(x, u, i, key);
        gt = s > thr;
        eq = s == thr;
    }
    int cg = __syncthreads_count(gt);
    int ce = __syncthreads_count(eq);
    if (threadIdx.x == 0) {
        gt_blk[blockIdx.x] = cg;
        eq_blk[blockIdx.x] = ce;
    }
}

// Keep score > thr, and score == thr while its rank among the ties is < need. Block b
// starts its ties at eq_off[b] and its output at out_off[b] (exclusive prefix sums of
// select_count's results, computed on the device by the loader). Writes idx_out/val_out
// (val_out may be null: random-k with a shared seed sends values only when asked) and
// mem_out[i] = kept ? 0 : value (may alias u; null = no memory).
template <typename T, int MODE>
__device__ void ht_select_write(const T* x, const T* u, ht_u64 n, ht_u64 key, ht_u64 thr,
                                ht_i64 need, const ht_i64* eq_off, const ht_i64* out_off,
                                ht_i64* idx_out, T* val_out, T* mem_out) {
    __shared__ ht_u32 warp_sums[HT_BLOCK / 32];
    __shared__ ht_u32 total;
    ht_u64 i = (ht_u64)blockIdx.x * HT_BLOCK + threadIdx.x;
    bool valid = i < n;
    T v = (T)0;
    bool gt = false, eq = false;
    if (valid) {
        if (val_out || mem_out) v = ht_value(x, u, i);  // random-k indices only: x is null
        ht_u64 s = ht_score<T, MODE>(x, u, i, key);
        gt = s > thr;
        eq = s == thr;
    }
    ht_i64 tie_rank = eq_off[blockIdx.x] + (ht_i64)ht_block_excl_scan(eq, warp_sums, &total);
    bool keep = gt || (eq && tie_rank < need);
    ht_i64 pos = out_off[blockIdx.x] + (ht_i64)ht_block_excl_scan(keep, warp_sums, &total);
    if (keep) {
        idx_out[pos] = (ht_i64)i;
        if (val_out) val_out[pos] = v;
    }
    if (valid && mem_out) mem_out[i] = keep ? (T)0 : v;
}

// Entry points for one (dtype, mode): NAME_hist, NAME_count, NAME_write.
#define HT_SELECT_ENTRIES(NAME, T, MODE)                                                     \
    extern "C" __global__ void NAME##_hist(const T* x, const T* u, ht_u64 n, ht_u64 key,     \
                                           ht_u64 prefix, ht_u64 mask, int shift,            \
                                           unsigned long long* hist) {                       \
        ht_radix_hist<T, MODE>(x, u, n, key, prefix, mask, shift, hist);                     \
    }                                                                                        \
    extern "C" __global__ void NAME##_count(const T* x, const T* u, ht_u64 n, ht_u64 key,    \
                                            ht_u64 thr, ht_i64* gt_blk, ht_i64* eq_blk) {    \
        ht_select_count<T, MODE>(x, u, n, key, thr, gt_blk, eq_blk);                         \
    }                                                                                        \
    extern "C" __global__ void NAME##_write(const T* x, const T* u, ht_u64 n, ht_u64 key,    \
                                            ht_u64 thr, ht_i64 need, const ht_i64* eq_off,   \
                                            const ht_i64* out_off, ht_i64* idx_out,          \
                                            T* val_out, T* mem_out) {                        \
        ht_select_write<T, MODE>(x, u, n, key, thr, need, eq_off, out_off, idx_out, val_out, \
                                 mem_out);                                                   \
    }
