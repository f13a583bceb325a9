"""Every layer and the whole cnn / resnet8: hand-written backward against central finite
differences in float64 (relative error <= 1e-6), plus forward passes against independent
NumPy references (direct convolution loops, PyTorch where installed)."""

import numpy as np
import pytest

from hpctrain.errors import ConfigError
from hpctrain.models import build_model
from hpctrain.models.layers import (AvgPool, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool,
                                    ReLU, Residual)
from hpctrain.models.sequential import Sequential, _block

TOL = 1e-6
H = 1e-6


class _Holder:
    seed, rank = 3, 1
    step_counter = np.array([7])


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b), 1e-30))


def _layer_check(layer, in_shape, batch=3, seed=0):
    """d(sum(out * R))/d(x) and d/d(params) against central differences, every coordinate."""
    rng = np.random.default_rng(seed)
    out_shape = layer.build(in_shape)
    layer.set_context(_Holder(), 0)
    for child in getattr(layer, "children", []):
        child.set_context(_Holder(), 1)
    if isinstance(layer, BatchNorm):
        layer.allocate_state(np, np.float64)
    for child in getattr(layer, "children", []):
        if isinstance(child, BatchNorm):
            child.allocate_state(np, np.float64)
    p = rng.standard_normal(layer.n_params)
    x = rng.standard_normal((batch,) + tuple(in_shape))
    r = rng.standard_normal((batch,) + tuple(out_shape))

    def f(pp, xx):
        return float((layer.forward(pp, xx, True) * r).sum())

    f(p, x)
    g = np.zeros_like(p)
    dx = layer.backward(p, g, r.copy())
    num_x = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros(x.size); e[i] = H
        e = e.reshape(x.shape)
        num_x.flat[i] = (f(p, x + e) - f(p, x - e)) / (2 * H)
    num_p = np.zeros_like(p)
    for i in range(p.size):
        e = np.zeros(p.size); e[i] = H
        num_p[i] = (f(p + e, x) - f(p - e, x)) / (2 * H)
    assert dx.shape == x.shape
    assert _rel(dx, num_x) <= TOL, _rel(dx, num_x)
    if p.size:
        assert _rel(g, num_p) <= TOL, _rel(g, num_p)
    return layer, p, x


LAYERS = [
    ("conv3x3", lambda: Conv2d(4, 3), (6, 6, 2)),
    ("conv_stride2_pad1", lambda: Conv2d(3, 3, 2, 1), (7, 7, 2)),
    ("conv1x1_nobias", lambda: Conv2d(3, 1, 2, 0, bias=False), (6, 6, 2)),
    ("maxpool2", lambda: MaxPool(2), (6, 6, 3)),
    ("maxpool2_odd", lambda: MaxPool(2), (5, 5, 2)),
    ("maxpool3", lambda: MaxPool(3), (6, 6, 2)),
    ("avgpool2", lambda: AvgPool(2), (5, 4, 2)),
    ("gap", lambda: GlobalAvgPool(), (3, 4, 2)),
    ("relu", lambda: ReLU(), (4, 4, 2)),
    ("flatten", lambda: Flatten(), (3, 3, 2)),
    ("linear", lambda: Linear(5), (7,)),
    ("linear_from_image", lambda: Linear(4), (3, 3, 2)),
    ("dropout", lambda: Dropout(0.4), (4, 4, 2)),
    ("batchnorm_image", lambda: BatchNorm(), (3, 3, 4)),
    ("batchnorm_features", lambda: BatchNorm(), (6,)),
    ("residual_identity", lambda: _block(2, 2, 1), (4, 4, 2)),
    ("residual_projection", lambda: _block(2, 4, 2), (5, 5, 2)),
]


@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[n for n, _, _ in LAYERS])
def test_layer_gradient_float64(name, make, shape):
    _layer_check(make(), shape)


def _conv_reference(x, w, b, stride, pad):
    """Direct loops over output positions (NHWC, weight (k, k, cin, cout))."""
    xp_ = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = w.shape[0]
    oh = (xp_.shape[1] - k) // stride + 1
    ow = (xp_.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
    for i in range(oh):
        for j in range(ow):
            patch = xp_[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            out[:, i, j, :] = np.einsum("buvc,uvco->bo", patch, w) + b
    return out


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 2)])
def test_conv_forward_matches_direct_loops(stride, pad):
    rng = np.random.default_rng(1)
    layer = Conv2d(5, 3, stride, pad)
    layer.build((7, 6, 3))
    p = rng.standard_normal(layer.n_params)
    x = rng.standard_normal((2, 7, 6, 3))
    w = p[: 3 * 3 * 3 * 5].reshape(3, 3, 3, 5)
    np.testing.assert_allclose(layer.forward(p, x, False), _conv_reference(x, w, p[3 * 3 * 3 * 5 :], stride, pad),
                               rtol=1e-12, atol=1e-12)


def test_pools_forward_match_numpy():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, 5, 3))
    mp, ap = MaxPool(2), AvgPool(2)
    mp.build((5, 5, 3)), ap.build((5, 5, 3))
    ref = x[:, :4, :4, :].reshape(2, 2, 2, 2, 2, 3)
    np.testing.assert_array_equal(mp.forward(None, x, False), ref.max(axis=(2, 4)))
    np.testing.assert_allclose(ap.forward(None, x, False), ref.mean(axis=(2, 4)), rtol=1e-14)


def test_maxpool_tie_goes_to_one_input():
    mp = MaxPool(2)
    mp.build((2, 2, 1))
    x = np.zeros((1, 2, 2, 1))
    mp.forward(None, x, True)
    dx = mp.backward(None, None, np.ones((1, 1, 1, 1)))
    assert dx.sum() == 1.0 and dx[0, 0, 0, 0] == 1.0


def test_batchnorm_running_stats_match_pytorch_formula():
    rng = np.random.default_rng(3)
    bn = BatchNorm()
    bn.build((4,))
    bn.allocate_state(np, np.float64)
    p = np.concatenate([np.ones(4), np.zeros(4)])
    xs = [rng.standard_normal((8, 4)) * 2 + 1 for _ in range(3)]
    rm, rv = np.zeros(4), np.ones(4)
    for x in xs:
        bn.forward(p, x, True)
        rm = 0.9 * rm + 0.1 * x.mean(0)
        rv = 0.9 * rv + 0.1 * x.var(0, ddof=1)
    np.testing.assert_allclose(bn.state["running_mean"], rm, rtol=1e-12)
    np.testing.assert_allclose(bn.state["running_var"], rv, rtol=1e-12)
    out = bn.forward(p, xs[0], False)
    np.testing.assert_allclose(out, (xs[0] - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)


def test_dropout_mask_is_a_function_of_seed_step_rank_layer():
    d = Dropout(0.5)
    d.build((1000,))
    h = _Holder()
    d.set_context(h, 2)
    x = np.ones((1, 1000))
    a = d.forward(None, x, True)
    b = d.forward(None, x, True)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 2.0}
    assert abs((a == 0).mean() - 0.5) < 5 * 0.5 / np.sqrt(1000)  # 5 sigma
    h2 = _Holder()
    h2.step_counter = np.array([8])
    d.set_context(h2, 2)
    assert (d.forward(None, x, True) != a).any()
    np.testing.assert_array_equal(d.forward(None, x, False), x)


def _model_check(spec, shape, n_classes=4, batch=4, seed=0, wd=1e-3, n_coords=40):
    """Whole-model gradient: three random directions and ``n_coords`` coordinates."""
    rng = np.random.default_rng(seed)
    m = build_model(spec, shape, n_classes, seed=seed)
    p = m.init_params(np, np.float64, seed)
    x = rng.standard_normal((batch, int(np.prod(shape))))
    y = rng.integers(0, n_classes, batch)

    def loss(q):
        m.step_counter[0] = 5  # the same dropout masks for every evaluation
        return m.loss_grad(q, x, y, np.zeros_like(q), wd)

    m.step_counter[0] = 5
    g = np.zeros_like(p)
    m.loss_grad(p, x, y, g, wd)
    for _ in range(3):
        v = rng.standard_normal(p.size)
        v /= np.linalg.norm(v)
        num = (loss(p + H * v) - loss(p - H * v)) / (2 * H)
        assert abs(num - g @ v) <= TOL * max(abs(num), np.abs(g).max() * 1e-3), (num, g @ v)
    idx = rng.choice(p.size, size=min(n_coords, p.size), replace=False)
    num = np.zeros(idx.size)
    for j, i in enumerate(idx):
        e = np.zeros(p.size); e[i] = H
        num[j] = (loss(p + e) - loss(p - e)) / (2 * H)
    assert _rel(g[idx], num) <= TOL, _rel(g[idx], num)
    return m, g


def test_cnn_whole_model_gradient():
    m, g = _model_check("cnn", (1, 28, 28), n_classes=10, batch=3)
    assert m.size == 3 * 3 * 32 + 32 + 3 * 3 * 32 * 64 + 64 + 1600 * 128 + 128 + 128 * 10 + 10
    assert np.count_nonzero(g) > 0.5 * g.size  # every layer got a gradient


def test_resnet8_whole_model_gradient():
    m, g = _model_check("resnet8", (1, 8, 8), n_classes=4, batch=4)
    assert any("running_var" in k for k in m.state_dict())


def test_spec_with_dropout_and_bn_gradient():
    _model_check("conv:4:3:1:1,bn,relu,maxpool:2,dropout:0.3,linear:6,relu,linear:4", (2, 6, 6))


def test_cnn_matches_pytorch_forward_and_backward():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    m = build_model("conv:3:3:1:1,relu,maxpool:2,flatten,linear:5", (2, 6, 6), 5)
    p = m.init_params(np, np.float64, 0)
    p += 0.1 * rng.standard_normal(p.size)
    x = rng.standard_normal((4, 72))
    y = rng.integers(0, 5, 4)
    g = np.zeros_like(p)
    loss = m.loss_grad(p, x, y, g)
    w = torch.tensor(p[:54].reshape(3, 3, 2, 3).transpose(3, 2, 0, 1).copy(), requires_grad=True)
    b = torch.tensor(p[54:57].copy(), requires_grad=True)
    lw = torch.tensor(p[57:57 + 27 * 5].reshape(27, 5).copy(), requires_grad=True)
    lb = torch.tensor(p[57 + 27 * 5 :].copy(), requires_grad=True)
    xt = torch.tensor(x.reshape(4, 2, 6, 6))
    h = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(xt, w, b, padding=1)), 2)
    h = h.permute(0, 2, 3, 1).reshape(4, -1)  # NHWC flatten, as hpctrain's
    out = torch.nn.functional.cross_entropy(h @ lw + lb, torch.tensor(y))
    out.backward()
    assert loss == pytest.approx(float(out), rel=1e-12)
    np.testing.assert_allclose(g[:54].reshape(3, 3, 2, 3), w.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g[57:57 + 135].reshape(27, 5), lw.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spec,match", [
    ("conv:32:3,relu,foo:3,linear:10", r"bad token 3 'foo:3': unknown layer"),
    ("conv:32,relu,linear:10", r"bad token 1 'conv:32': expected conv:CHANNELS:KERNEL"),
    ("linear:x", r"bad token 1 'linear:x'"),
    ("dropout:1.5,linear:10", r"bad token 1 'dropout:1.5'"),
    ("relu,,linear:10", r"token 2 is empty"),
    ("relu:3,linear:10", r"relu takes no arguments"),
    ("flatten,linear:7", r"ends with output shape \(7,\).*10 classes"),
    ("conv:4:30,linear:10", r"layer 1 \(conv\): conv kernel 30 does not fit"),
    ("nosuchmodel", r"unknown model 'nosuchmodel'"),
])
def test_bad_specs_name_the_token(spec, match):
    with pytest.raises(ConfigError, match=match):
        build_model(spec, (1, 28, 28), 10)


def test_cnn_needs_images():
    with pytest.raises(ConfigError, match="model cnn needs image data"):
        build_model("cnn", (64,), 10)


def test_layer_slices_are_contiguous_and_in_order():
    m = build_model("cnn", (1, 28, 28), 10)
    ends = [0] + [b for _, b in m.layer_slices]
    assert [a for a, _ in m.layer_slices] == ends[:-1] and ends[-1] == m.size
    p = m.init_params(np, np.float32, 0)
    assert p.flags.c_contiguous and p.dtype == np.float32 and p.size == m.size
