"""The functional core: Model -> Plan (pure; imports nothing of the project but the model)."""
from .cluster import make_plan

__all__ = ["make_plan"]
