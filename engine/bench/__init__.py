"""Benchmarks: ``python -m engine.bench <mode> …``; each mode is a module with ``main(argv) -> int``."""
