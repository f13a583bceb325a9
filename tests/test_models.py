"""Softmax regression: gradient check against central finite differences (float64)."""

import numpy as np
import pytest

from hpctrain.errors import ConfigError
from hpctrain.models import SoftmaxRegression, get_model


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_softmax_gradient_matches_finite_differences(wd):
    rng = np.random.default_rng(0)
    d, c, b = 6, 4, 9
    m = SoftmaxRegression(d, c)
    params = rng.standard_normal(m.size)
    x = rng.standard_normal((b, d))
    y = rng.integers(0, c, size=b)
    grad = np.zeros_like(params)
    m.loss_grad(params, x, y, grad, wd)
    num = np.zeros_like(params)
    h = 1e-6
    scratch = np.zeros_like(params)
    for i in range(params.size):
        p = params.copy(); p[i] += h
        lp = m.loss_grad(p, x, y, scratch, wd)
        p[i] -= 2 * h
        lm = m.loss_grad(p, x, y, scratch, wd)
        num[i] = (lp - lm) / (2 * h)
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_loss_is_cross_entropy_of_softmax():
    rng = np.random.default_rng(1)
    m = SoftmaxRegression(3, 5)
    params = rng.standard_normal(m.size)
    x = rng.standard_normal((4, 3))
    y = np.array([0, 4, 2, 2])
    w, b = params[:15].reshape(3, 5), params[15:]
    logits = x @ w + b
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expect = -np.log(p[np.arange(4), y]).mean()
    assert m.loss_grad(params, x, y, np.zeros_like(params)) == pytest.approx(expect, rel=1e-12)
    total, correct = m.evaluate(params, x, y, batch=3)
    assert total == pytest.approx(expect * 4, rel=1e-12)
    assert correct == int((logits.argmax(1) == y).sum())


def test_unknown_model():
    with pytest.raises(ConfigError, match="unknown model 'cnn'"):
        get_model("cnn", 3, 2)
