// topk.cu -- magnitude selection: exact top-k (also the count/write passes of approx-topk
// and threshold, which select by |g + u| >= thr).
//
// Scores are |g + u| (u optional: error-feedback memory), compared as the bits of the
// absolute value, which order finite floats exactly. Entry points:
//   topk_{f32,f64}_hist   radix-select histogram pass (host finds the k-th largest)
//   topk_{f32,f64}_count  per-block counts of > thr and == thr
//   topk_{f32,f64}_write  fused selection + memory update (sent idx/val, u <- p - sent)
// NumPy twin: hpctrain/compress/topk.py.
#include "select.cuh"

HT_SELECT_ENTRIES(topk_f32, float, HT_MODE_ABS)
HT_SELECT_ENTRIES(topk_f64, double, HT_MODE_ABS)
