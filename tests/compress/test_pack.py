"""Bit packing: exact round trip for every b, documented byte layout, validation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hpctrain.compress.pack import pack_bits, packed_size, unpack_bits
from hpctrain.errors import ConfigError


@settings(max_examples=60, deadline=None)
@given(bits=st.sampled_from([1, 2, 4, 8]), data=st.data())
def test_round_trip(bits, data):
    n = data.draw(st.integers(0, 300))
    codes = np.array(data.draw(st.lists(st.integers(0, 2**bits - 1), min_size=n, max_size=n)), dtype=np.uint8)
    packed = pack_bits(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == packed_size(n, bits) == -(-n * bits // 8)
    assert np.array_equal(unpack_bits(packed, bits, n), codes)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_large_round_trip(bits):
    codes = np.random.default_rng(bits).integers(0, 2**bits, 1_000_003).astype(np.uint8)
    assert np.array_equal(unpack_bits(pack_bits(codes, bits), bits, codes.size), codes)


def test_layout_little_endian_within_byte():
    assert pack_bits(np.array([1, 0, 1, 1, 0, 0, 0, 1, 1], np.uint8), 1).tolist() == [0b10001101, 1]
    assert pack_bits(np.array([3, 0, 2, 1, 1], np.uint8), 2).tolist() == [0b01100011, 1]
    assert pack_bits(np.array([0xA, 0x5, 0xF], np.uint8), 4).tolist() == [0x5A, 0x0F]


@pytest.mark.parametrize("bits", [0, 3, 5, 16, 2.5, "4"])
def test_invalid_bits(bits):
    with pytest.raises(ConfigError, match="bits must be one of 1, 2, 4, 8"):
        pack_bits(np.zeros(4, np.uint8), bits)


def test_short_buffer_rejected():
    with pytest.raises(ValueError):
        unpack_bits(np.zeros(1, np.uint8), 2, 5)
