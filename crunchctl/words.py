"""Wording every room shares: a count with its noun in the right number ("1 item", "2 items")."""

from __future__ import annotations


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and its noun: ``count(1, "entry", "entries")`` is "1 entry"; the plural
    defaults to the singular with an "s"."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"
