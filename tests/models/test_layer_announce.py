"""The native Sequential's backward announces each finished layer (``on_layer``): last
layer first, each layer's gradient already final (weight decay included) when announced,
and the loss and gradient bit-identical to a backward without announcements."""

import numpy as np
import pytest

from hpctrain.models import build_model


@pytest.mark.parametrize("spec,shape", [("cnn", (1, 12, 12)), ("resnet8", (3, 8, 8)),
                                        ("conv:4:3,bn,relu,maxpool:2,flatten,dropout:0.3,linear:8,relu,linear:4",
                                         (2, 9, 9))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_on_layer_announces_final_gradients_in_reverse_order(spec, shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, int(np.prod(shape)))).astype(dtype)
    y = rng.integers(0, 4, 6)
    runs = {}
    for announce in (False, True):
        model = build_model(spec, shape, 4)
        params = model.init_params(np, dtype, seed=1)
        grad = np.full_like(params, np.nan)  # every element must be written
        seen, snaps = [], {}

        def on_layer(i):
            seen.append(i)
            a, b = model.layer_slices[i]
            snaps[i] = grad[a:b].copy()

        loss = model.loss_grad(params, x, y, grad, weight_decay=1e-2, on_layer=on_layer if announce else None)
        runs[announce] = (loss, grad, seen, snaps, model)
    (loss0, g0, _, _, _), (loss1, g1, seen, snaps, model) = runs[False], runs[True]
    assert loss0 == loss1
    np.testing.assert_array_equal(g0, g1)
    assert not np.isnan(g1).any()
    assert seen == list(reversed(range(len(model.layers))))
    for i, snap in snaps.items():  # final when announced
        a, b = model.layer_slices[i]
        np.testing.assert_array_equal(snap, g1[a:b])
