"""Shared multi-model workers: the pool and the server's end of each worker's socket."""
