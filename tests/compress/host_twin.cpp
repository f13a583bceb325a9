// Host build of kernels/common.cuh (the per-element math every kernel uses), so that
// test_host_twin.py can compare it with the NumPy reference bit for bit without a GPU.
// Usage: host_twin MODE IN OUT [args...]; arrays are raw little-endian binaries.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "common.cuh"

template <typename T>
static std::vector<T> load(const char* path) {
    std::vector<T> v;
    FILE* f = std::fopen(path, "rb");
    if (!f) { std::perror(path); std::exit(2); }
    std::fseek(f, 0, SEEK_END);
    long n = std::ftell(f) / (long)sizeof(T);
    std::fseek(f, 0, SEEK_SET);
    v.resize(n);
    if (n && std::fread(v.data(), sizeof(T), n, f) != (size_t)n) std::exit(3);
    std::fclose(f);
    return v;
}
template <typename T>
static void save(const char* path, const std::vector<T>& v) {
    FILE* f = std::fopen(path, "wb");
    if (!f) { std::perror(path); std::exit(2); }
    if (!v.empty()) std::fwrite(v.data(), sizeof(T), v.size(), f);
    std::fclose(f);
}

// quantize: IN holds x, s0, s1 (per element) as T; args: scaling levels key.
template <typename T>
static void quant(const char* in, const char* out, int scaling, unsigned levels, ht_u64 key) {
    std::vector<T> all = load<T>(in);
    size_t n = all.size() / 3;
    std::vector<ht_u8> codes(n);
    std::vector<T> deq(n);
    for (size_t i = 0; i < n; ++i) {
        T lo, delta;
        ht_knobs<T>(scaling, all[n + i], all[2 * n + i], levels, &lo, &delta);
        ht_u32 c = ht_quantize_one<T>(all[i], lo, delta, levels, ht_uniform32(key, i));
        codes[i] = (ht_u8)c;
        deq[i] = ht_dequantize_one<T>(c, lo, delta);
    }
    save(out, codes);
    std::string o2 = std::string(out) + ".deq";
    save(o2.c_str(), deq);
}

int main(int argc, char** argv) {
    if (argc < 4) return 1;
    std::string mode = argv[1];
    const char *in = argv[2], *out = argv[3];
    if (mode == "hash32") {
        ht_u64 key = std::strtoull(argv[4], 0, 10), n = std::strtoull(argv[5], 0, 10);
        std::vector<ht_u32> v(n);
        for (ht_u64 i = 0; i < n; ++i) v[i] = ht_hash32(ht_key32(key), i);
        save(out, v);
    } else if (mode == "hash" || mode == "uniform") {
        ht_u64 key = std::strtoull(argv[4], 0, 10), n = std::strtoull(argv[5], 0, 10);
        if (mode == "hash") {
            std::vector<ht_u64> v(n);
            for (ht_u64 i = 0; i < n; ++i) v[i] = ht_hash(key, i);
            save(out, v);
        } else {
            std::vector<double> v(n);
            for (ht_u64 i = 0; i < n; ++i) v[i] = ht_uniform(key, i);
            save(out, v);
        }
    } else if (mode == "half64") {
        std::vector<double> x = load<double>(in);
        std::vector<ht_u16> h(x.size());
        for (size_t i = 0; i < x.size(); ++i) h[i] = ht_double_to_half(x[i]);
        save(out, h);
    } else if (mode == "half32") {
        std::vector<float> x = load<float>(in);
        std::vector<ht_u16> h(x.size());
        for (size_t i = 0; i < x.size(); ++i) h[i] = ht_double_to_half((double)x[i]);
        save(out, h);
    } else if (mode == "unhalf") {
        std::vector<ht_u16> h = load<ht_u16>(in);
        std::vector<double> x(h.size());
        for (size_t i = 0; i < h.size(); ++i) x[i] = ht_half_to_double(h[i]);
        save(out, x);
    } else if (mode == "abs32" || mode == "abs64") {
        if (mode == "abs32") {
            std::vector<float> x = load<float>(in);
            std::vector<ht_u64> s(x.size());
            for (size_t i = 0; i < x.size(); ++i) s[i] = ht_abs_score(x[i]);
            save(out, s);
        } else {
            std::vector<double> x = load<double>(in);
            std::vector<ht_u64> s(x.size());
            for (size_t i = 0; i < x.size(); ++i) s[i] = ht_abs_score(x[i]);
            save(out, s);
        }
    } else if (mode == "quant32" || mode == "quant64") {
        int scaling = std::atoi(argv[4]);
        unsigned levels = (unsigned)std::atoi(argv[5]);
        ht_u64 key = std::strtoull(argv[6], 0, 10);
        if (mode == "quant32") quant<float>(in, out, scaling, levels, key);
        else quant<double>(in, out, scaling, levels, key);
    } else {
        return 1;
    }
    return 0;
}
