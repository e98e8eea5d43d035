"""Replicas as processes on this machine: the backend, the zygote's client, reaping."""
