"""The data plane: gateway, routing snapshots, admission, V2 routes, connections."""
