"""Models on one flat parameter buffer: the choices of ``--model``.

==============================  ==========================================================
``--model``                     what it builds
==============================  ==========================================================
``softmax``                     multinomial logistic regression (convex; any data set)
``mlp``                         one ReLU hidden layer of ``--hidden`` units
``cnn``                         two 3x3 convolutions (32, 64) + ReLU + 2x2 max-pool, then
                                128 hidden units (image data: IDX or HDF5 (n, c, h, w))
``resnet8``                     3 stages of one residual basic block each, batch norm
SPEC                            a layer string, e.g. ``conv:32:3,relu,maxpool:2,flatten,
                                linear:128,relu,linear:10`` (tokens: see ``SPEC_TOKENS``)
``python:PATH_OR_MODULE:NAME``  your own model on the flat-buffer protocol
                                (:mod:`hpctrain.models.external`, docs/models.md)
``torch:PATH_OR_MODULE:NAME``   any ``torch.nn.Module`` (CPU; extra ``torch``)
==============================  ==========================================================

Every model offers ``size``, ``init_params(xp, dtype, seed)``,
``loss_grad(params, x, y, grad, weight_decay) -> loss``, ``evaluate(params, x, y)``,
``param_views(params=None) -> [(name, view)]`` (its parameters as named, shaped views
of the flat buffer, in buffer order; checkpoints record the names and shapes) and, when
it has model state, ``state_dict()`` (name -> array, updated in place) that checkpoints
carry under ``model/<name>``.
"""

import numpy as np

from ..errors import ConfigError
from .classic import MLP, MODELS, SoftmaxRegression, get_model
from .sequential import CNN_SPEC, SPEC_TOKENS, Sequential, cnn_layers, parse_spec, resnet8_layers

__all__ = ["SoftmaxRegression", "MLP", "Sequential", "get_model", "build_model", "model_state", "param_layout",
           "MODELS", "NATIVE_MODELS", "parse_spec", "CNN_SPEC", "SPEC_TOKENS"]

#: named native networks (besides the classic softmax/mlp)
NATIVE_MODELS = {"cnn": cnn_layers, "resnet8": resnet8_layers}


def _image_shape(name, input_shape):
    if len(input_shape) != 3:
        raise ConfigError(f"model {name} needs image data (IDX images or HDF5 x of shape (n, c, h, w)); this data "
                          f"set gives samples of shape {tuple(input_shape)}")
    return input_shape


def build_model(spec, input_shape, n_classes, *, hidden=128, seed=0, rank=0, dtype="float32", threads=0,
                device="cpu"):
    """The model named by ``spec`` (the --model value) for samples of ``input_shape``.

    Args:
        spec: softmax | mlp | cnn | resnet8 | a layer string | python:REF | torch:REF.
        input_shape: one sample's shape ((c, h, w) for images, (d,) otherwise).
        n_classes: number of classes.
        hidden: hidden units of ``mlp``.
        seed, rank: initialisation and the dropout masks' key.
        dtype, threads, device: for the external adapters.

    Raises:
        ConfigError: unknown name, bad layer token, factory problems, shape mismatch.
    """
    input_shape = tuple(int(v) for v in input_shape)
    n_features = int(np.prod(input_shape))
    if spec in MODELS:
        return get_model(spec, n_features, n_classes, **({"hidden": hidden} if spec == "mlp" else {}))
    if spec in NATIVE_MODELS:
        return Sequential(NATIVE_MODELS[spec](n_classes), _image_shape(spec, input_shape), n_classes, spec, seed, rank)
    kind, sep, ref = spec.partition(":")
    if sep and kind == "python":
        from .external import PythonModel, call_factory, load_factory

        factory, label = load_factory("python", ref)
        obj = call_factory(factory, label, input_shape=input_shape, n_classes=int(n_classes), seed=int(seed),
                           rank=int(rank), dtype=np.dtype(dtype).name, device=device)
        return PythonModel(obj, label, input_shape, n_classes, dtype)
    if sep and kind == "torch":
        from .torch_adapter import load_torch_model

        return load_torch_model(ref, input_shape, n_classes, seed, rank, dtype, threads, device)
    if "," not in spec and ":" not in spec and spec.strip().lower() not in SPEC_TOKENS:
        raise ConfigError(f"unknown model {spec!r}; choose from softmax, mlp, cnn, resnet8, a layer string "
                          f"(e.g. {CNN_SPEC.format(classes=n_classes)}), python:PATH:FACTORY or torch:PATH:FACTORY")
    return Sequential(parse_spec(spec), input_shape, n_classes, spec, seed, rank)


def param_layout(model, params=None):
    """[(name, shape)] of the model's parameter views: what a checkpoint belongs to."""
    return [(name, tuple(int(v) for v in view.shape)) for name, view in model.param_views(params)]


def model_state(model):
    """The model's checkpointed state (name -> array); empty for stateless models."""
    fn = getattr(model, "state_dict", None)
    return dict(fn()) if fn is not None else {}


def probe_output(model, params, x):
    """Run the model on two rows of ``x`` in evaluation mode, so a mismatch between its
    output and the labels is one clear error before training starts."""
    fn = getattr(model, "logits", None)
    if fn is not None and x.shape[0]:
        fn(params, x[:2])
