"""Parameter counts written out by hand, independent of hpctrain's models."""


def mlp_params(d, h, c):
    """W1 (d x h) + b1 (h) + W2 (h x c) + b2 (c)."""
    return d * h + h + h * c + c
