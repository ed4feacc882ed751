"""Names inside the flat metric keys of ``metrics.json``."""

from __future__ import annotations

__all__ = ["slug"]


def slug(name: str) -> str:
    """A class or lab name usable inside a flat metric key.

    >>> slug("Lab B (scanner 2)")
    'lab-b--scanner-2'
    """
    return "".join(ch if ch.isalnum() else "-" for ch in name.strip()).strip("-").lower() or "class"
