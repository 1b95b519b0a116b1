"""utd-stream reference engine: the server-side half that drives a LiveKit deployment.

Kept import-light on purpose: submodules (``livekit_process``, ``livekit_control``) pull in
``livekit`` / ``aiohttp`` only when imported, so ``import engine`` stays cheap and I/O-free.
"""
