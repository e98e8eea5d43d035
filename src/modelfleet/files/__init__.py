"""How modelfleet writes, hashes and stamps files: atomic writes and locks, sha256s, log lines."""
