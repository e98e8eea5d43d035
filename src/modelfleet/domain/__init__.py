"""Pure rules, no I/O: names, traffic, placement, model types, the error tree."""
