"""modelfleet: register and serve many machine-learning models from one command line."""

__version__ = "0.1.0"

from .errors import FleetError  # noqa: E402


def __getattr__(name):  # keep `import modelfleet` cheap for replicas: the SDK loads on first use
    if name == "Fleet":
        from .sdk import Fleet
        return Fleet
    raise AttributeError(name)


__all__ = ["Fleet", "FleetError", "__version__"]
