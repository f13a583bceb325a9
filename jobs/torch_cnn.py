"""The PyTorch twin of ``--model cnn`` (two 3x3 convolutions of 32 and 64 channels, each
with ReLU and 2x2 max-pooling, a 128-unit hidden layer), for the torch adapter and the
DDP baseline:

    mpiexec -n 2 hpctrain train --model torch:jobs/torch_cnn.py:make_cnn --dataset fashion-mnist
"""

import torch


def make_cnn(input_shape=(1, 28, 28), n_classes=10):
    """The network for samples of ``input_shape`` (c, h, w) and ``n_classes`` classes."""
    c, h, w = input_shape
    h2, w2 = ((h - 2) // 2 - 2) // 2, ((w - 2) // 2 - 2) // 2
    return torch.nn.Sequential(
        torch.nn.Conv2d(c, 32, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * h2 * w2, 128), torch.nn.ReLU(), torch.nn.Linear(128, n_classes))
