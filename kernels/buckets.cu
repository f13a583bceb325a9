// buckets.cu -- per-bucket statistics shared by the bucketed quantizers (minmax, qsgd, sign).
//   bucket_stats_{f32,f64}  one thread per bucket: kind 0 min/max (s0, s1) in index order;
//                           kind 1 l2 norm (float64 sum of squares, sqrt, cast); kind 2
//                           mean |x| (float64 sum / count). The float64 sums run in 64
//                           interleaved lanes (lane k: elements k, k + 64, ... in order),
//                           lane k joins group k % 8 (lanes g, g + 8, ..., g + 56 in order),
//                           then groups 0..7 in order: the NumPy twin's contiguous passes.
// NumPy twin: hpctrain/compress/minmax.py (bucket_stats).
#include "common.cuh"

#define HT_LANES 64   // minmax.py LANES
#define HT_GROUPS 8   // minmax.py GROUPS

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
        double lane[HT_LANES];
        for (int k = 0; k < HT_LANES; ++k) lane[k] = 0.0;
        for (ht_u64 i = lo; i < hi; ++i) {
            double v = (double)x[i];
            int k = (int)((i - lo) % HT_LANES);
            lane[k] = kind == 1 ? ht_add(lane[k], ht_mul(v, v)) : ht_add(lane[k], ht_abs(v));
        }
        double group[HT_GROUPS];
        for (int g = 0; g < HT_GROUPS; ++g) {
            double s = lane[g];
            for (int k = g + HT_GROUPS; k < HT_LANES; k += HT_GROUPS) s = ht_add(s, lane[k]);
            group[g] = s;
        }
        double acc = group[0];
        for (int g = 1; g < HT_GROUPS; ++g) acc = ht_add(acc, group[g]);
        double r = kind == 1 ? ht_sqrt(acc) : ht_div(acc, (double)(hi - lo));
        s0[b] = ht_cast(r, (T)0);
    }
}

#define HT_STATS_ENTRIES(SUF, T)                                                              \
    extern "C" __global__ void bucket_stats_##SUF(const T* x, ht_u64 n, ht_u64 bucket, int kind, \
                                                  T* s0, T* s1) {                              \
        ht_bucket_stats<T>(x, n, bucket, kind, s0, s1);                                       \
    }

HT_STATS_ENTRIES(f32, float)
HT_STATS_ENTRIES(f64, double)
