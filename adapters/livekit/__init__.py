"""adapters/livekit."""
