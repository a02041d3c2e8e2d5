"""``crunchctl batch``: items through loaders into multi-row figures."""
