"""Benchmarks of the utd-stream core (``python -m bench``): numbers to read, not tests."""
