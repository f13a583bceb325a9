"""Benchmarks: collectives (nccl-tests-style tables), compression operators, alpha-beta fit."""
