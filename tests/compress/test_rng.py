"""Counter RNG: known answers from an independent pure-Python splitmix64, ranges, streams."""

import numpy as np

from hpctrain.compress.rng import counter_key, hash_u64, mix64, sample_positions, uniform

M = 2**64 - 1


def splitmix_ref(key, i):
    """Independent scalar reference: splitmix64 finalizer of key + (i+1)*golden."""
    z = (key + (i + 1) * 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def test_splitmix64_known_answer():
    # splitmix64 seeded with 0 (state += golden, then finalize): published first output.
    assert mix64(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    assert splitmix_ref(0, 0) == 0xE220A8397B1DCDAF


def test_hash_matches_scalar_reference():
    for key in (0, 12345, counter_key(1, 2, 3, 4), M):
        got = hash_u64(key, 10, 200)
        ref = np.array([splitmix_ref(key, i) for i in range(10, 210)], dtype=np.uint64)
        assert np.array_equal(got, ref)


def test_uniform_range_and_moments():
    u = uniform(counter_key(0, 0, 0, 1), 200_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    # mean 1/2 with sigma sqrt(1/12/n): 5 sigma bound
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    assert np.all((u * 2.0**53) == np.floor(u * 2.0**53))  # 53-bit lattice


def test_keys_separate_streams():
    keys = {counter_key(0, s, r, t) for s in range(5) for r in range(5) for t in range(4)}
    assert len(keys) == 100


def test_sample_positions_in_range():
    pos = sample_positions(99, 10_000, 37)
    assert pos.dtype == np.uint64 and pos.max() < 37 and np.unique(pos).size == 37
    assert sample_positions(1, 5, 0).size == 0


def lowbias32_ref(key, i):
    """Independent scalar reference of the quantizers' 32-bit stream."""
    x = (((key ^ (key >> 32)) & 0xFFFFFFFF) + (i + 1) * 0x9E3779B9) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash32_matches_scalar_reference_and_is_uniform():
    from hpctrain.compress.rng import hash32, uniform32

    for key in (0, 12345, counter_key(1, 2, 3, 4), M):
        got = hash32(key, 7, 300)
        assert np.array_equal(got, np.array([lowbias32_ref(key, i) for i in range(7, 307)], dtype=np.uint32))
    u = uniform32(counter_key(0, 0, 0, 1), 200_000)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / u.size)
    assert np.all((u * 2.0**32) == np.floor(u * 2.0**32))  # 32-bit lattice
    # lowbias32 is a bijection: distinct counters give distinct words
    assert np.unique(hash32(99, 0, 1 << 20)).size == 1 << 20
