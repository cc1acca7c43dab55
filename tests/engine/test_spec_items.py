"""Item lists checked item by item: every bad item and every repeated name is reported, good items kept."""

from __future__ import annotations

from engine.spec_items import ItemSpecError, item_problems


def _parse(i: int, item: object) -> str:
    if not isinstance(item, str):
        raise ItemSpecError(f"items[{i}]: not a name", index=i, detail="not a name")
    return item


def test_every_bad_and_repeated_item_is_reported_with_its_index():
    good, errors = item_problems(["a", 3, "b", "a", None], _parse, str.upper,
                                 lambda i, _item, name, first: ItemSpecError(f"{name} again (first {first})",
                                                                              index=i, key="name"))
    assert good == [(0, "a"), (2, "b")]
    assert [(e.index, e.key, e.detail) for e in errors] == [
        (1, None, "not a name"), (3, "name", "a again (first 0)"), (4, None, "not a name")]
    assert str(errors[0]) == "items[1]: not a name"
