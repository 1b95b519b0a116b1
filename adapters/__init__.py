"""Adapters: the shipped implementations of the stream_core ports (fakes and real backends)."""
