"""Stan sources from templates, and the cache of compiled models."""
