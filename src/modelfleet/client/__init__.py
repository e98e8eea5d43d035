"""The client: `Fleet` and one module per resource; it reaches the server only over HTTP."""

from .fleet import Fleet, load_fleet
from .resources import Resource

__all__ = ["Fleet", "Resource", "load_fleet"]
