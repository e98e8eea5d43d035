"""Ray clusters as processes and addresses: start, stop and inspect them, without importing ray.

Which computes a workspace has, and which one an endpoint means, is `modelfleet.computes`.
"""
