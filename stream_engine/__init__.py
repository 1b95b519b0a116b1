"""utd-stream reference engine: the core's engine service served over HTTP, SQL and LiveKit.

``utd-stream engine`` (or ``python -m stream_engine``) runs it. Kept import-light on
purpose: submodules pull in ``aiohttp``, ``sqlalchemy`` and ``livekit`` only when imported.
"""
