"""Observability: the two hooks, Prometheus metrics, request stats, the access log."""
