"""The "did you mean" of every message about an unknown name: one wording, one notion of close."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(name: str, options: Iterable[str]) -> str | None:
    """The option ``name`` is most likely a typo of (difflib's ratio of at least 0.6), or None."""
    found = difflib.get_close_matches(name, list(options), n=1)
    return found[0] if found else None


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a message that goes on after it; empty when nothing is close."""
    close = closest(name, options)
    return f" (did you mean '{close}'?)" if close else ""
