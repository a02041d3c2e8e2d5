"""``crunchctl watch``: the file-system observer, readiness, the single-watcher lock and the session."""
