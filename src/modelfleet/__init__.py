"""modelfleet: register and serve many machine-learning models from one command line."""

from .domain.errors import FleetError
from .version import __version__


def __getattr__(name):  # keep `import modelfleet` cheap for replicas: the SDK loads on first use
    if name == "Fleet":
        from .client import Fleet
        return Fleet
    raise AttributeError(name)


__all__ = ["Fleet", "FleetError", "__version__"]
