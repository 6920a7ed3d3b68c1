"""Benchmark clients, each a module run as ``python -m benchmarks.clients.NAME``."""
