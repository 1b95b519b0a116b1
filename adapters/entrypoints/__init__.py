"""adapters/entrypoints."""
