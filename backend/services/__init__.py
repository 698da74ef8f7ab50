"""Backend services: self-contained helpers (offline place lookup, ...) used by the API."""
