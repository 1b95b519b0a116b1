"""Runnable examples (each a script: ``python -m examples.<name> --help``)."""
