"""The engine service: one orchestration over ports, embedded by the reference server
and by the in-memory fake engine alike."""

__all__: list[str] = []
