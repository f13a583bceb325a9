// runtime.cpp -- scheduler, barriers, warps, atomics and memory checks behind cuda_cpu.h.
//
// A launch runs the grid's blocks one after another on the calling OS thread (or on
// `workers` OS threads, blocks taken from a shared counter). Inside a block every CUDA
// thread is a fiber with its own stack; a fiber runs until it reaches a barrier, a warp
// intrinsic, an atomic or (shuffled schedule only) a memory-access hook, and the
// scheduler then picks the next runnable fiber:
//   schedule 0 (in order)  fibers start and resume in thread order (FIFO);
//   schedule 1 (shuffled)  start and resume order drawn at random (seeded per block),
//                          and every atomic and every instrumented load/store switches
//                          to a random other thread with probability yield/65536.
// Barriers count exited threads as arrived (as the hardware does); a block whose live
// threads all wait on different barriers is reported as a deadlock.
// Memory checks: htcpu_set_redzones registers guard ranges around every buffer of the
// launch; any instrumented access (kernel code is built with -fsanitize=thread
// instrumentation, whose hooks are defined here) that touches one is reported with the
// buffer, offset, block and thread. This file itself is not instrumented.
#include <atomic>
#include <mutex>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <thread>
#include <vector>

struct uint3 { unsigned int x, y, z; };
struct htcpu_launch_cfg { unsigned int grid[3], block[3]; };

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace {

const size_t kStack = 64 * 1024;

// ------------------------------------------------------------------ context switch
#if defined(__x86_64__)
extern "C" void htcpu_ctx_swap(void** save_sp, void* new_sp);
asm(R"(
.text
.p2align 4
.type htcpu_ctx_swap,@function
htcpu_ctx_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size htcpu_ctx_swap, .-htcpu_ctx_swap
)");
#else
#error "cuda_cpu runtime: only x86-64 is supported (add a context switch for this CPU)"
#endif

struct Fiber {
    void* sp;
    char* stack;
    uint3 tid;
    int lane, warp;
    int state;  // 0 runnable/running, 1 block barrier, 2 warp barrier, 3 done
};

struct Warp {
    int arrived;
    unsigned int acc, mask;
    unsigned long long gen;
    unsigned int result[2];
    unsigned long long val[2][32];
};

struct Config {
    int schedule = 0;
    unsigned long long seed = 0;
    unsigned int yield = 0;  // per 65536
    int workers = 1;
    std::vector<unsigned long long> zones;  // lo, hi, arg, side (0 before, 1 after)
};
Config g_cfg;
std::mutex g_err_mu;
std::atomic<int> g_err_count{0};
char g_err[512];

void report(const char* msg) {
    std::lock_guard<std::mutex> lk(g_err_mu);
    if (g_err_count.fetch_add(1) == 0) snprintf(g_err, sizeof g_err, "%s", msg);
}

struct Worker {
    void* main_sp = nullptr;
    std::vector<Fiber> fibers;
    char* stacks = nullptr;
    size_t nstacks = 0;
    std::vector<int> runq;  // runnable fibers (not running); in order: runq[head..]
    size_t head = 0;
    int cur = -1;
    uint3 bid{0, 0, 0}, bdim{1, 1, 1}, gdim{1, 1, 1};
    unsigned long long rng = 0;
    int live = 0;
    // block barrier
    int b_arrived = 0, b_op = -1;
    long long b_acc = 0;
    unsigned long long b_gen = 0;
    int b_result[2] = {0, 0};
    std::vector<Warp> warps;
    void (*thunk)(void*) = nullptr;
    void* ctx = nullptr;
    bool in_block = false;
};
thread_local Worker* tw = nullptr;

unsigned long long mix64(unsigned long long z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
unsigned long long next_rand(Worker* w) {
    w->rng += 0x9E3779B97F4A7C15ULL;
    return mix64(w->rng);
}

Worker* worker() {
    if (!tw) tw = new Worker();  // one per OS thread, kept (stacks reused)
    return tw;
}

void to_scheduler(Worker* w) {
    Fiber& f = w->fibers[w->cur];
    htcpu_ctx_swap(&f.sp, w->main_sp);
}

void make_runnable(Worker* w, int i) {
    w->fibers[i].state = 0;
    w->runq.push_back(i);
}

// The running fiber goes back to the run queue and lets another one run.
void yield_now(Worker* w) {
    w->runq.push_back(w->cur);
    to_scheduler(w);
}

bool in_fiber() { return tw && tw->in_block && tw->cur >= 0; }

void maybe_yield() {
    Worker* w = tw;
    if (g_cfg.schedule == 1 && g_cfg.yield && w && w->in_block && w->cur >= 0 &&
        (unsigned int)(next_rand(w) & 0xFFFFu) < g_cfg.yield)
        yield_now(w);
}

void release_block_barrier(Worker* w) {
    w->b_result[w->b_gen & 1] = (int)w->b_acc;
    w->b_arrived = 0;
    w->b_acc = 0;
    w->b_op = -1;
    w->b_gen++;
    for (size_t i = 0; i < w->fibers.size(); ++i)
        if (w->fibers[i].state == 1) make_runnable(w, (int)i);
}

int live_in_mask(Worker* w, int warp, unsigned int mask) {
    int n = 0;
    size_t base = (size_t)warp * 32;
    for (int l = 0; l < 32; ++l) {
        size_t i = base + l;
        if (i < w->fibers.size() && (mask >> l & 1u) && w->fibers[i].state != 3) ++n;
    }
    return n;
}

void release_warp(Worker* w, int warp) {
    Warp& wp = w->warps[warp];
    wp.result[wp.gen & 1] = wp.acc;
    wp.arrived = 0;
    wp.acc = 0;
    wp.gen++;
    size_t base = (size_t)warp * 32;
    for (int l = 0; l < 32; ++l) {
        size_t i = base + l;
        if (i < w->fibers.size() && w->fibers[i].state == 2) make_runnable(w, (int)i);
    }
}

// Lane arrives at a warp-level barrier; returns the generation it completed in.
unsigned long long warp_arrive(unsigned int mask, int pred, unsigned long long v) {
    Worker* w = tw;
    Fiber& f = w->fibers[w->cur];
    Warp& wp = w->warps[f.warp];
    if (!(mask >> f.lane & 1u)) {
        char m[200];
        snprintf(m, sizeof m, "warp intrinsic: lane %d calls with mask 0x%08x that excludes it (block (%u,%u,%u))",
                 f.lane, mask, w->bid.x, w->bid.y, w->bid.z);
        report(m);
    }
    unsigned long long gen = wp.gen;
    wp.mask = mask;
    wp.arrived++;
    if (pred) wp.acc |= 1u << f.lane;
    wp.val[gen & 1][f.lane] = v;
    if (wp.arrived >= live_in_mask(w, f.warp, mask)) {
        release_warp(w, f.warp);
        // let the others run first in order, like lanes leaving the intrinsic together
        yield_now(w);
    } else {
        f.state = 2;
        to_scheduler(w);
    }
    return gen;
}

extern "C" void htcpu_fiber_main();

void run_block(Worker* w, unsigned int nthreads) {
    w->fibers.resize(nthreads);
    if (w->nstacks < nthreads) {
        if (w->stacks) munmap(w->stacks, w->nstacks * kStack);
        w->stacks = (char*)mmap(nullptr, nthreads * kStack, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (w->stacks == MAP_FAILED) { w->stacks = nullptr; w->nstacks = 0; report("cannot map fiber stacks"); return; }
        w->nstacks = nthreads;
    }
    w->warps.assign((nthreads + 31) / 32, Warp());
    for (auto& wp : w->warps) memset(&wp, 0, sizeof wp);
    w->runq.clear();
    w->head = 0;
    w->live = (int)nthreads;
    w->b_arrived = 0; w->b_acc = 0; w->b_op = -1; w->b_gen = 0;
    for (unsigned int i = 0; i < nthreads; ++i) {
        Fiber& f = w->fibers[i];
        f.tid.x = i % w->bdim.x;
        f.tid.y = (i / w->bdim.x) % w->bdim.y;
        f.tid.z = i / (w->bdim.x * w->bdim.y);
        f.lane = (int)(i & 31u);
        f.warp = (int)(i >> 5);
        f.state = 0;
        f.stack = w->stacks + (size_t)i * kStack;
        // initial frame: 6 callee-saved registers, then the entry "return address"
        // stagger the stack tops so that 256 fibers do not all map to the same cache sets
        unsigned long long* top = (unsigned long long*)(f.stack + kStack - (i % 61) * 64);
        top -= 2;                       // keep 16-byte alignment: [top] = 0, [top-1] slot
        top[1] = 0;
        top[0] = (unsigned long long)(void*)&htcpu_fiber_main;
        top -= 6;
        for (int r = 0; r < 6; ++r) top[r] = 0;
        f.sp = top;
        w->runq.push_back((int)i);
    }
    w->in_block = true;
    while (w->head < w->runq.size()) {
        int i;
        if (g_cfg.schedule == 1) {
            size_t pick = (size_t)(next_rand(w) % w->runq.size());
            i = w->runq[pick];
            w->runq[pick] = w->runq.back();
            w->runq.pop_back();
        } else {
            i = w->runq[w->head++];
            if (w->head == w->runq.size()) {
                w->runq.clear();
                w->head = 0;
            }
        }
        w->cur = i;
        htcpu_ctx_swap(&w->main_sp, w->fibers[i].sp);
        w->cur = -1;
    }
    w->in_block = false;
    if (w->live > 0) {
        int nb = 0, nw = 0;
        for (auto& f : w->fibers) nb += f.state == 1, nw += f.state == 2;
        char m[200];
        snprintf(m, sizeof m, "deadlock in block (%u,%u,%u): %d threads wait at __syncthreads, %d at a warp intrinsic",
                 w->bid.x, w->bid.y, w->bid.z, nb, nw);
        report(m);
    }
}

void run_blocks(const htcpu_launch_cfg* cfg, std::atomic<unsigned long long>* next, unsigned long long nblocks,
                void (*thunk)(void*), void* ctx) {
    Worker* w = worker();
    w->thunk = thunk;
    w->ctx = ctx;
    w->bdim = uint3{cfg->block[0], cfg->block[1], cfg->block[2]};
    w->gdim = uint3{cfg->grid[0], cfg->grid[1], cfg->grid[2]};
    unsigned int nthreads = cfg->block[0] * cfg->block[1] * cfg->block[2];
    for (;;) {
        unsigned long long b = next->fetch_add(1);
        if (b >= nblocks || g_err_count.load() > 0) break;
        w->bid.x = (unsigned int)(b % cfg->grid[0]);
        w->bid.y = (unsigned int)((b / cfg->grid[0]) % cfg->grid[1]);
        w->bid.z = (unsigned int)(b / ((unsigned long long)cfg->grid[0] * cfg->grid[1]));
        w->rng = mix64(g_cfg.seed ^ mix64(b + 1));
        run_block(w, nthreads);
    }
}

void check_access(const void* addr, size_t size, int write) {
    const std::vector<unsigned long long>& z = g_cfg.zones;
    if (!z.empty()) {
        unsigned long long a = (unsigned long long)addr, e = a + size;
        for (size_t k = 0; k + 3 < z.size(); k += 4) {
            if (a < z[k + 1] && e > z[k]) {
                Worker* w = tw;
                char m[300];
                long long off = z[k + 3] ? (long long)(a - z[k]) : -(long long)(z[k + 1] - a);
                snprintf(m, sizeof m,
                         "out-of-bounds %s of %zu bytes: kernel argument %llu, %lld bytes %s its buffer "
                         "(block (%u,%u,%u), thread (%u,%u,%u))",
                         write ? "write" : "read", size, z[k + 2], off < 0 ? -off : off,
                         z[k + 3] ? "past the end of" : "before the start of", w ? w->bid.x : 0, w ? w->bid.y : 0,
                         w ? w->bid.z : 0, in_fiber() ? w->fibers[w->cur].tid.x : 0,
                         in_fiber() ? w->fibers[w->cur].tid.y : 0, in_fiber() ? w->fibers[w->cur].tid.z : 0);
                report(m);
                break;
            }
        }
    }
    maybe_yield();
}

}  // namespace

extern "C" void htcpu_fiber_main() {
    Worker* w = tw;
    w->thunk(w->ctx);
    Fiber& f = w->fibers[w->cur];
    f.state = 3;
    w->live--;
    // an exited thread counts as arrived at every barrier
    if (w->b_arrived > 0 && w->b_arrived >= w->live) release_block_barrier(w);
    Warp& wp = w->warps[f.warp];
    if (wp.arrived > 0 && wp.arrived >= live_in_mask(w, f.warp, wp.mask)) release_warp(w, f.warp);
    htcpu_ctx_swap(&f.sp, w->main_sp);
    abort();  // never resumed
}

// ------------------------------------------------------------------ exports
EXPORT void htcpu_configure(int schedule, unsigned long long seed, unsigned int yield, int workers) {
    g_cfg.schedule = schedule;
    g_cfg.seed = seed;
    g_cfg.yield = yield;
    g_cfg.workers = workers < 1 ? 1 : workers;
}

// n records of (lo, hi, argument index, side) guard ranges for the next launches.
EXPORT void htcpu_set_redzones(const unsigned long long* z, int n) { g_cfg.zones.assign(z, z + 4 * (size_t)n); }

EXPORT int htcpu_error(char* buf, int len) {
    std::lock_guard<std::mutex> lk(g_err_mu);
    if (buf && len > 0) snprintf(buf, (size_t)len, "%s", g_err);
    return g_err_count.load();
}

EXPORT int htcpu_run(const htcpu_launch_cfg* cfg, void (*thunk)(void*), void* ctx) {
    {
        std::lock_guard<std::mutex> lk(g_err_mu);
        g_err_count.store(0);
        g_err[0] = 0;
    }
    for (int d = 0; d < 3; ++d)
        if (cfg->grid[d] == 0 || cfg->block[d] == 0) {
            report("launch with a zero grid or block dimension");
            return 1;
        }
    unsigned long long nthreads = (unsigned long long)cfg->block[0] * cfg->block[1] * cfg->block[2];
    if (nthreads > 1024 || cfg->block[2] > 64) {
        report("block larger than the device allows (1024 threads, z <= 64)");
        return 1;
    }
    unsigned long long nblocks = (unsigned long long)cfg->grid[0] * cfg->grid[1] * cfg->grid[2];
    std::atomic<unsigned long long> next{0};
    int nw = g_cfg.workers;
    if ((unsigned long long)nw > nblocks) nw = (int)nblocks;
    std::vector<std::thread> extra;
    for (int t = 1; t < nw; ++t) extra.emplace_back(run_blocks, cfg, &next, nblocks, thunk, ctx);
    run_blocks(cfg, &next, nblocks, thunk, ctx);
    for (auto& t : extra) t.join();
    return g_err_count.load() ? 1 : 0;
}

// ------------------------------------------------------------------ device-side API
EXPORT const uint3* htcpu_thread_idx() { return &tw->fibers[tw->cur].tid; }
EXPORT const uint3* htcpu_block_idx() { return &tw->bid; }
EXPORT const uint3* htcpu_block_dim() { return &tw->bdim; }
EXPORT const uint3* htcpu_grid_dim() { return &tw->gdim; }

EXPORT int htcpu_syncthreads_op(int op, int pred) {
    Worker* w = tw;
    unsigned long long gen = w->b_gen;
    if (w->b_arrived == 0) {
        w->b_op = op;
        w->b_acc = op == 1 ? 1 : 0;
    }
    w->b_arrived++;
    if (op == 0) w->b_acc += pred ? 1 : 0;
    else if (op == 1) w->b_acc = w->b_acc && pred;
    else if (op == 2) w->b_acc = w->b_acc || pred;
    if (w->b_arrived >= w->live) {
        release_block_barrier(w);
        yield_now(w);
    } else {
        w->fibers[w->cur].state = 1;
        to_scheduler(w);
    }
    return w->b_result[gen & 1];
}
EXPORT void htcpu_syncthreads() { htcpu_syncthreads_op(3, 0); }

EXPORT unsigned int htcpu_ballot(unsigned int mask, int pred) {
    unsigned long long gen = warp_arrive(mask, pred, 0);
    Worker* w = tw;
    return w->warps[w->fibers[w->cur].warp].result[gen & 1];
}
EXPORT void htcpu_syncwarp(unsigned int mask) { warp_arrive(mask, 0, 0); }
EXPORT unsigned long long htcpu_shfl(unsigned int mask, unsigned long long v, int src, int width) {
    unsigned long long gen = warp_arrive(mask, 0, v);
    Worker* w = tw;
    Fiber& f = w->fibers[w->cur];
    int seg = f.lane / width * width;
    return w->warps[f.warp].val[gen & 1][seg + (src % width + width) % width];
}
EXPORT void htcpu_threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <typename T>
static T atomic_op(int op, T* p, T v, T cmp) {
    check_access(p, sizeof(T), 1);
    maybe_yield();
    switch (op) {
        case 0: return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
        case 1: return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
        case 2: return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST);
        case 5: return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST);
        case 6: return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST);
        case 7: return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST);
        case 8: {
            T old = cmp;
            __atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            return old;
        }
        default: {  // 3 min, 4 max
            T old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
            for (;;) {
                T nv = op == 3 ? (v < old ? v : old) : (v > old ? v : old);
                if (__atomic_compare_exchange_n(p, &old, nv, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return old;
            }
        }
    }
}
EXPORT unsigned int htcpu_atomic_u32(int op, unsigned int* p, unsigned int v, unsigned int c) { return atomic_op(op, p, v, c); }
EXPORT unsigned long long htcpu_atomic_u64(int op, unsigned long long* p, unsigned long long v, unsigned long long c) {
    return atomic_op(op, p, v, c);
}
EXPORT int htcpu_atomic_i32(int op, int* p, int v, int c) { return atomic_op(op, p, v, c); }
EXPORT long long htcpu_atomic_i64(int op, long long* p, long long v, long long c) { return atomic_op(op, p, v, c); }
template <typename F, typename U>
static F atomic_add_float(F* p, F v) {
    check_access(p, sizeof(F), 1);
    maybe_yield();
    U* q = (U*)p;
    U old = __atomic_load_n(q, __ATOMIC_SEQ_CST);
    for (;;) {
        F of; memcpy(&of, &old, sizeof(F));
        F nf = of + v;
        U nu; memcpy(&nu, &nf, sizeof(F));
        if (__atomic_compare_exchange_n(q, &old, nu, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return of;
    }
}
EXPORT float htcpu_atomic_add_f32(float* p, float v) { return atomic_add_float<float, unsigned int>(p, v); }
EXPORT double htcpu_atomic_add_f64(double* p, double v) { return atomic_add_float<double, unsigned long long>(p, v); }

// ------------------------------------------------------------------ instrumentation hooks
// The kernel file is compiled with -fsanitize=thread; these replace the TSan runtime.
#define HOOK(N)                                                                          \
    EXPORT void __tsan_read##N(void* a) { check_access(a, N, 0); }                       \
    EXPORT void __tsan_write##N(void* a) { check_access(a, N, 1); }                      \
    EXPORT void __tsan_unaligned_read##N(void* a) { check_access(a, N, 0); }             \
    EXPORT void __tsan_unaligned_write##N(void* a) { check_access(a, N, 1); }
HOOK(1) HOOK(2) HOOK(4) HOOK(8) HOOK(16)
EXPORT void __tsan_read_range(void* a, unsigned long n) { check_access(a, n, 0); }
EXPORT void __tsan_write_range(void* a, unsigned long n) { check_access(a, n, 1); }
EXPORT void __tsan_func_entry(void*) {}
EXPORT void __tsan_func_exit() {}
EXPORT void __tsan_init() {}
EXPORT void __tsan_vptr_update(void*, void*) {}
EXPORT void __tsan_vptr_read(void*) {}
EXPORT void __tsan_ignore_thread_begin() {}
EXPORT void __tsan_ignore_thread_end() {}
