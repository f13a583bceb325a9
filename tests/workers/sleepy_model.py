"""A ``python:`` model (softmax regression) whose rank SLEEPY_RANK sleeps inside its step
SLEEPY_STEP for SLEEPY_SECONDS (environment variables), for the stall inspector's test."""

import os
import time

import numpy as np


class Sleepy:
    def __init__(self, input_shape, n_classes, rank):
        self.d, self.c, self.rank = int(np.prod(input_shape)), int(n_classes), rank
        self.params = np.zeros(self.d * self.c + self.c, dtype=np.float32)
        self.grad = np.zeros_like(self.params)
        self.steps = 0

    def _scores(self, x):
        w = self.params[: self.d * self.c].reshape(self.d, self.c)
        return x @ w + self.params[self.d * self.c:]

    def loss_and_grad(self, x, y):
        self.steps += 1
        if self.rank == int(os.environ.get("SLEEPY_RANK", "-1")) and self.steps == int(os.environ.get("SLEEPY_STEP", "3")):
            time.sleep(float(os.environ.get("SLEEPY_SECONDS", "0")))
        s = self._scores(x)
        s = s - s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        n = x.shape[0]
        loss = float(-np.log(p[np.arange(n), y] + 1e-12).mean())
        p[np.arange(n), y] -= 1
        p /= n
        self.grad[: self.d * self.c] = (x.T @ p).ravel()
        self.grad[self.d * self.c:] = p.sum(axis=0)
        return loss

    def predict(self, x):
        return self._scores(x)


def make(input_shape, n_classes, rank):
    return Sleepy(input_shape, n_classes, rank)
