"""Buckets: layer-aligned views of the flat buffer in reverse layer order, small first bucket."""

import math

import numpy as np
import pytest

from hpctrain.buckets import DEFAULT_BUCKET_MIB, FIRST_BUCKET_MIB, make_buckets
from hpctrain.errors import ConfigError

MIB = 1 << 20


def _layers(sizes):
    off, out = 0, []
    for n in sizes:
        out.append((off, n))
        off += n
    return out


def test_buckets_tile_the_buffer_in_reverse_layer_order_without_splitting_layers():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 200_000, 40).tolist()
    layers = _layers(sizes)
    buckets = make_buckets(layers, 4, bucket_size=1.0)
    flat_layers = [i for b in buckets for i in b.layers]
    assert flat_layers == list(reversed(range(len(sizes))))  # every layer once, last layer first
    assert buckets[0].stop == sum(sizes) and buckets[-1].start == 0
    for a, b in zip(buckets, buckets[1:]):
        assert b.stop == a.start  # contiguous, descending
    for b in buckets:
        assert b.start == layers[b.layers[-1]][0] and b.stop == sum(layers[b.layers[0]])  # layer-aligned
        assert b.size == sum(sizes[i] for i in b.layers)


def test_first_bucket_small_then_bucket_size_and_big_layers_alone():
    sizes = [30_000] * 20 + [400_000] + [10_000] * 30  # float32: 117 KiB, 1.5 MiB, 39 KiB
    buckets = make_buckets(_layers(sizes), 4, bucket_size=0.5)
    assert buckets[0].size * 4 <= FIRST_BUCKET_MIB * MIB < (buckets[0].size + 10_000) * 4
    for b in buckets[1:]:
        if len(b.layers) > 1:
            assert b.size * 4 <= 0.5 * MIB
        else:
            assert b.size * 4 > 0.5 * MIB or b is buckets[-1] or b.layers[0] == 20
    assert any(b.layers == (20,) for b in buckets)  # the 1.5 MiB layer is a bucket of its own


def test_default_is_one_small_bucket_then_25_mib_or_a_quarter_of_a_small_model():
    assert DEFAULT_BUCKET_MIB == 25.0
    sizes = [1 << 20] * 40  # 40 layers of 4 MiB (float32): 160 MiB
    buckets = make_buckets(_layers(sizes), 4)
    assert buckets[0].layers == (39,)  # one layer (larger than 0.25 MiB) alone
    assert [len(b.layers) for b in buckets[1:]] == [6] * 6 + [3]  # 24 MiB per bucket
    small = make_buckets(_layers([10] + [100_000] * 8 + [10]), 4)  # 3 MiB: buckets of a quarter of it
    assert [b.layers for b in small] == [(9,), (8, 7), (6, 5), (4, 3), (2, 1), (0,)]  # 0.38 MiB layers
    tiny = make_buckets(_layers([1000, 70_000, 10]), 4)  # below the first bucket's size: still works
    assert [b.layers for b in tiny] == [(2,), (1,), (0,)]


@pytest.mark.parametrize("size", [0, -1, float("nan")])
def test_bucket_size_must_be_positive(size):
    with pytest.raises(ConfigError, match="bucket size"):
        make_buckets(_layers([100, 100]), 4, bucket_size=size)


def test_bucket_larger_than_the_model_is_refused_but_infinity_means_one_bucket():
    layers = _layers([1 << 20, 1 << 20])  # 8 MiB in float32
    with pytest.raises(ConfigError, match="larger than the model"):
        make_buckets(layers, 4, bucket_size=9)
    one = make_buckets(layers, 4, bucket_size=math.inf, first_size=math.inf)
    assert len(one) == 1 and one[0].size == 2 << 20


def test_layers_must_tile_the_buffer():
    with pytest.raises(ConfigError, match="previous layers end"):
        make_buckets([(0, 10), (12, 5)], 4, bucket_size=0.1)
    with pytest.raises(ConfigError, match="no parameters"):
        make_buckets([], 4)


def test_bucket_views_share_the_flat_buffer():
    flat = np.zeros(100, dtype=np.float32)
    for b in make_buckets(_layers([10, 40, 50]), 4, bucket_size=0.0001, first_size=0.0001):
        b.view(flat)[...] = b.index + 1
    assert flat[:10].tolist() == [3] * 10 and flat[10:50].tolist() == [2] * 40 and flat[50:].tolist() == [1] * 50
