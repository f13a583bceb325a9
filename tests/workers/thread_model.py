"""A ``python:`` model whose factory starts a non-daemon thread that never ends."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sleepy_model import Sleepy  # noqa: E402


def make(input_shape, n_classes, rank):
    threading.Thread(target=lambda: time.sleep(10**6), name="user-loop").start()
    return Sleepy(input_shape, n_classes, rank)
