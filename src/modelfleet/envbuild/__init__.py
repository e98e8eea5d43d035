"""Virtual environments built with uv from a shared cache (a build tool, used by assets/environments)."""
