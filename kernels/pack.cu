// pack.cu -- b-bit codes (b in {1, 2, 4, 8}) <-> bytes. Code i lives in byte i*b/8 at
// bit offset (i*b) % 8 (little-endian within the byte); the last byte is zero-padded.
//   pack_bits    one thread per output byte
//   unpack_bits  one thread per code
// NumPy twin: hpctrain/compress/pack.py.
#include "common.cuh"

extern "C" __global__ void pack_bits(const ht_u8* codes, ht_u64 n, int bits, ht_u8* out, ht_u64 nout) {
    ht_u64 o = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= nout) return;
    ht_u32 per = 8u / (ht_u32)bits, mask = (1u << bits) - 1u, byte = 0u;
    for (ht_u32 j = 0; j < per; ++j) {
        ht_u64 i = o * per + j;
        if (i < n) byte |= ((ht_u32)codes[i] & mask) << (j * (ht_u32)bits);
    }
    out[o] = (ht_u8)byte;
}

extern "C" __global__ void unpack_bits(const ht_u8* packed, ht_u64 n, int bits, ht_u8* codes) {
    ht_u64 i = (ht_u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    ht_u32 per = 8u / (ht_u32)bits, mask = (1u << bits) - 1u;
    codes[i] = (ht_u8)(((ht_u32)packed[i / per] >> ((ht_u32)(i % per) * (ht_u32)bits)) & mask);
}
