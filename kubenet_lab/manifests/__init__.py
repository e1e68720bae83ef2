"""YAML manifests -> a validated `Model` (pure: reads files, touches nothing else)."""
from .load import STDIN, load_model, read_documents, read_sources

__all__ = ["STDIN", "load_model", "read_documents", "read_sources"]
