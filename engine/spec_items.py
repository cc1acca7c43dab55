"""Lists of YAML items (report charts, a step's expectations) checked item by item, so that validation can
report every bad item at its own line instead of stopping at the first."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class ItemSpecError(ValueError):
    """A malformed item; the message names the item and the key.

    ``index`` (the item), ``key`` (the key at fault, when one is) and ``detail`` (the message without the
    item's name) let validation place the problem on the item's own line.
    """

    def __init__(self, message: str, *, index: int | None = None, key: str | None = None,
                 detail: str | None = None):
        self.index, self.key, self.detail = index, key, detail if detail is not None else message
        super().__init__(message)


def item_problems(items: Sequence[Any], parse: Callable[[int, Any], T], name_of: Callable[[T], Hashable],
                  duplicate: Callable[[int, Any, T, int], ItemSpecError]
                  ) -> tuple[list[tuple[int, T]], list[ItemSpecError]]:
    """(the good items with their index, an error for each bad one). ``parse(i, item)`` raises ItemSpecError;
    an item whose ``name_of`` an earlier good item already has gets ``duplicate(i, item, parsed, earlier)``."""
    good: list[tuple[int, T]] = []
    errors: list[ItemSpecError] = []
    first_of: dict[Hashable, int] = {}
    for i, item in enumerate(items):
        try:
            parsed = parse(i, item)
        except ItemSpecError as exc:
            errors.append(exc)
            continue
        name = name_of(parsed)
        if name in first_of:
            errors.append(duplicate(i, item, parsed, first_of[name]))
            continue
        first_of[name] = i
        good.append((i, parsed))
    return good, errors
