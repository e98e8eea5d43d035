"""The modelfleet version: the one place it is written (pyproject.toml reads it from here).

A module of its own so that code below the package root (server, exporter, cli) can name the
version without importing `modelfleet` itself, which would point an import back up.
"""

__version__ = "0.1.0"
