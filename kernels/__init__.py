"""CUDA C++ kernel sources of hpctrain (package data; loaded by hpctrain.compress.cuda)."""
