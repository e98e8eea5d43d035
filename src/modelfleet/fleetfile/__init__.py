"""Fleet files: load, plan, apply, export (the declarative workflow)."""
