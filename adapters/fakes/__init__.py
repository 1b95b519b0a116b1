"""adapters/fakes."""
