"""Ray compute: the backend, the actor, the agent process, clusters started or attached."""
