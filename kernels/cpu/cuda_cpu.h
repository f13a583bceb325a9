// cuda_cpu.h -- the CUDA execution model on the CPU, for testing kernels/*.cu unchanged.
//
// Force-included (g++ -include cuda_cpu.h) in front of a kernel file; see
// hpctrain/cudasim/ (build + launch through ctypes) and docs/gpu.md ("CPU execution
// harness"). What it provides:
//   * __global__/__device__/__host__/__forceinline__/__launch_bounds__ as plain C++;
//     __CUDACC__ and __CUDA_ARCH__ are defined, so the *device* branches of the kernel
//     sources are the ones compiled (e.g. __fadd_rn, __double_as_longlong);
//   * threadIdx/blockIdx/blockDim/gridDim per CUDA thread (each thread of a block is a
//     fiber; all fibers of a block run on one OS thread, a block at a time);
//   * __shared__ = one copy per OS thread (= per resident block): `static thread_local`;
//   * __syncthreads(_count/_and/_or) as real barriers over the block's fibers, warp
//     intrinsics (__ballot_sync, __any_sync, __all_sync, __syncwarp, __shfl_sync) as
//     barriers over the 32 lanes of a warp, atomics on real (__atomic) atomics;
//   * the device's correctly rounded float/double arithmetic: build with
//     -ffp-contract=off and without -ffast-math (SSE2 on x86-64: IEEE binary32/64).
// The runtime (runtime.cpp) is compiled without instrumentation; the kernel file is
// compiled with -fsanitize=thread *instrumentation only* (no TSan runtime): its
// __tsan_read/__tsan_write hooks are implemented by runtime.cpp, which checks every
// access against the red zones around the launch's buffers (out-of-bounds access) and,
// in the shuffled schedule, switches to another thread there (randomized interleaving).
#pragma once
#define __CUDACC__ 1
#define __CUDA_ARCH__ 900
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <cstddef>
#include <type_traits>
#include <utility>

#ifdef HTCPU_SCAN  // the build's preprocessing pass finds the kernels by this mark
#define __global__ HTCPU_GLOBAL_MARK
#else
#define __global__
#endif
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static thread_local
#define __constant__ static const

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int a = 1, unsigned int b = 1, unsigned int c = 1) : x(a), y(b), z(c) {}
};

extern "C" {
const uint3* htcpu_thread_idx(void);
const uint3* htcpu_block_idx(void);
const uint3* htcpu_block_dim(void);
const uint3* htcpu_grid_dim(void);
void htcpu_syncthreads(void);
int htcpu_syncthreads_op(int op, int pred);              // op 0 count, 1 and, 2 or
unsigned int htcpu_ballot(unsigned int mask, int pred);  // warp barrier + OR of bits
void htcpu_syncwarp(unsigned int mask);
unsigned long long htcpu_shfl(unsigned int mask, unsigned long long v, int src, int width);
void htcpu_threadfence(void);
unsigned int htcpu_atomic_u32(int op, unsigned int* p, unsigned int v, unsigned int cmp);
unsigned long long htcpu_atomic_u64(int op, unsigned long long* p, unsigned long long v,
                                    unsigned long long cmp);
int htcpu_atomic_i32(int op, int* p, int v, int cmp);
long long htcpu_atomic_i64(int op, long long* p, long long v, long long cmp);
float htcpu_atomic_add_f32(float* p, float v);
double htcpu_atomic_add_f64(double* p, double v);
}

#define threadIdx (*htcpu_thread_idx())
#define blockIdx (*htcpu_block_idx())
#define blockDim (*htcpu_block_dim())
#define gridDim (*htcpu_grid_dim())
#define warpSize 32

// ------------------------------------------------------------------ barriers, warps
inline void __syncthreads() { htcpu_syncthreads(); }
inline int __syncthreads_count(int p) { return htcpu_syncthreads_op(0, p != 0); }
inline int __syncthreads_and(int p) { return htcpu_syncthreads_op(1, p != 0); }
inline int __syncthreads_or(int p) { return htcpu_syncthreads_op(2, p != 0); }
inline void __threadfence() { htcpu_threadfence(); }
inline void __threadfence_block() { htcpu_threadfence(); }
inline unsigned int __ballot_sync(unsigned int m, int p) { return htcpu_ballot(m, p != 0); }
inline int __any_sync(unsigned int m, int p) { return htcpu_ballot(m, p != 0) != 0u; }
inline int __all_sync(unsigned int m, int p) { return htcpu_ballot(m, p != 0) == (htcpu_ballot(m, 1)); }
inline void __syncwarp(unsigned int m = 0xFFFFFFFFu) { htcpu_syncwarp(m); }
template <typename T>
inline T __shfl_sync(unsigned int m, T v, int src, int width = 32) {
    static_assert(sizeof(T) <= 8, "__shfl_sync: 8 bytes at most");
    unsigned long long b = 0; memcpy(&b, &v, sizeof(T));
    b = htcpu_shfl(m, b, src, width);
    T r; memcpy(&r, &b, sizeof(T)); return r;
}
inline unsigned int __activemask() { return 0xFFFFFFFFu; }

// ------------------------------------------------------------------ integer intrinsics
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
inline int __clzll(long long x) { return x ? __builtin_clzll((unsigned long long)x) : 64; }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
    unsigned int r = 0; for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i); return r;
}

// ------------------------------------------------------------------ float intrinsics
// IEEE round-to-nearest-even: what the host does without contraction or fast-math.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __double2float_rn(double a) { return (float)a; }
inline long long __double_as_longlong(double v) { long long b; memcpy(&b, &v, 8); return b; }
inline double __longlong_as_double(long long b) { double v; memcpy(&v, &b, 8); return v; }
inline unsigned int __float_as_uint(float v) { unsigned int b; memcpy(&b, &v, 4); return b; }
inline float __uint_as_float(unsigned int b) { float v; memcpy(&v, &b, 4); return v; }
inline int __float_as_int(float v) { int b; memcpy(&b, &v, 4); return b; }
inline float __int_as_float(int b) { float v; memcpy(&v, &b, 4); return v; }

// ------------------------------------------------------------------ atomics
// op: 0 add, 1 sub, 2 exch, 3 min, 4 max, 5 and, 6 or, 7 xor, 8 cas (cmp)
#define HTCPU_ATOMICS(T, FN)                                                              \
    inline T atomicAdd(T* p, T v) { return (T)FN(0, p, v, 0); }                           \
    inline T atomicSub(T* p, T v) { return (T)FN(1, p, v, 0); }                           \
    inline T atomicExch(T* p, T v) { return (T)FN(2, p, v, 0); }                          \
    inline T atomicMin(T* p, T v) { return (T)FN(3, p, v, 0); }                           \
    inline T atomicMax(T* p, T v) { return (T)FN(4, p, v, 0); }                           \
    inline T atomicAnd(T* p, T v) { return (T)FN(5, p, v, 0); }                           \
    inline T atomicOr(T* p, T v) { return (T)FN(6, p, v, 0); }                            \
    inline T atomicXor(T* p, T v) { return (T)FN(7, p, v, 0); }                           \
    inline T atomicCAS(T* p, T c, T v) { return (T)FN(8, p, v, c); }
HTCPU_ATOMICS(unsigned int, htcpu_atomic_u32)
HTCPU_ATOMICS(unsigned long long, htcpu_atomic_u64)
HTCPU_ATOMICS(int, htcpu_atomic_i32)
HTCPU_ATOMICS(long long, htcpu_atomic_i64)
inline float atomicAdd(float* p, float v) { return htcpu_atomic_add_f32(p, v); }
inline double atomicAdd(double* p, double v) { return htcpu_atomic_add_f64(p, v); }

// ------------------------------------------------------------------ launch glue
// For each kernel K the build appends HTCPU_EXPORT(K): htl_K (launch) and hts_K (its
// parameter signature, one "kind size" per parameter, for the Python side's checks).
struct htcpu_launch_cfg {
    unsigned int grid[3], block[3];
};
extern "C" int htcpu_run(const htcpu_launch_cfg* cfg, void (*thunk)(void*), void* ctx);

template <typename T>
inline T htcpu_arg(const unsigned long long* s) { T v; memcpy(&v, s, sizeof(T)); return v; }

template <typename... A>
struct htcpu_call {
    void (*fn)(A...);
    const unsigned long long* slots;
    template <size_t... I>
    void go(std::index_sequence<I...>) { fn(htcpu_arg<A>(slots + I)...); }
    static void thunk(void* self) { static_cast<htcpu_call*>(self)->go(std::index_sequence_for<A...>{}); }
};
template <typename... A>
inline int htcpu_launch(void (*fn)(A...), const htcpu_launch_cfg* cfg, const unsigned long long* slots) {
    htcpu_call<A...> c{fn, slots};
    return htcpu_run(cfg, &htcpu_call<A...>::thunk, &c);
}

template <typename T>
constexpr char htcpu_kind() {
    return std::is_pointer<T>::value ? 'P' : std::is_floating_point<T>::value ? 'f'
           : std::is_signed<T>::value ? 'i' : 'u';
}
template <typename T>
struct htcpu_elem { typedef char type; };
template <typename T>
struct htcpu_elem<T*> { typedef typename std::remove_cv<T>::type type; };
// One parameter as 3 chars: kind (P pointer, f, i, u), then for pointers the element's
// kind, else '-'; then the size in bytes as a digit (pointer: element size).
template <typename T>
inline void htcpu_sig1(char* out) {
    typedef typename htcpu_elem<T>::type E;
    if (std::is_pointer<T>::value) {
        out[0] = 'P'; out[1] = htcpu_kind<E>(); out[2] = (char)('0' + sizeof(E));
    } else {
        out[0] = htcpu_kind<T>(); out[1] = '-'; out[2] = (char)('0' + sizeof(T));
    }
}
template <typename... A>
inline const char* htcpu_signature(void (*)(A...)) {
    static char buf[3 * sizeof...(A) + 1];
    char* p = buf;
    int dummy[] = {0, (htcpu_sig1<A>(p), p += 3, 0)...};
    (void)dummy;
    *p = 0;
    return buf;
}
#define HTCPU_EXPORT(K)                                                                       \
    extern "C" __attribute__((visibility("default"))) int htl_##K(const htcpu_launch_cfg* c,   \
                                                                 const unsigned long long* s) { \
        return htcpu_launch(K, c, s);                                                         \
    }                                                                                         \
    extern "C" __attribute__((visibility("default"))) const char* hts_##K(void) {             \
        return htcpu_signature(K);                                                            \
    }
