"""YAML manifests -> a validated `Model` (pure: reads files, touches nothing else).

The loader is imported on first use: reading the lab's stored objects (manifests.store,
treejson) does not import the YAML parser and the schema."""
from __future__ import annotations

__all__ = ["STDIN", "load_model", "read_documents", "read_sources"]


def __getattr__(name: str):
    if name in __all__:
        from . import load

        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
