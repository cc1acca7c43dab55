"""What the values of a dataset's partition folders say about the column's type, as Spark infers it.

Spark types a partition column from its folder names: all dates read as a date, all numbers as a number, and
one odd folder (``trade_dt=garbage``, or ``trade_dt=2024-01-05 00%3A00%3A00`` written from a timestamp column)
turns the whole column into a string. Readers then get every row under both spellings, or cast errors naming
no folder. Both the reads (read_dataset, ``dataset:`` inputs) and the writes check against it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import Counter
from collections.abc import Iterable

from engine.errors import TransformError
from engine.storage.base import is_hidden_path

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"  # how Spark names the folder of a null partition value
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
SHOWN = 5  # offending folders a message names before "and N more"


def is_spark_hidden(name: str) -> bool:
    """Spark lists no file or folder named so (_SUCCESS, _temporary, .crc files, a copy in flight): no data."""
    return is_hidden_path(name) or name.endswith("._COPYING_")


def value_kind(value: str) -> str:
    """What Spark would infer from one partition folder's value: "date", "number" or "other" (a string)."""
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            dt.date.fromisoformat(value)
            return "date"
        except ValueError:
            return "other"
    return "number" if NUMBER.fullmatch(value) else "other"


def column_kind(values: Iterable[str]) -> str | None:
    """The type most of a column's folder values have (a tie goes to the typed reading); None: no values."""
    kinds = Counter(value_kind(v) for v in values if v != HIVE_NULL)
    if not kinds:
        return None
    return max(kinds, key=lambda k: (kinds[k], ("other", "number", "date").index(k)))


def named(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def top_partition_values(dirs: Iterable[str]) -> dict[str, list[str]]:
    """column -> values of the partition folders among ``dirs`` (names of a dataset's top-level folders)."""
    values: dict[str, list[str]] = {}
    for name in dirs:
        if "=" in name and not is_spark_hidden(name):
            col, _, value = name.partition("=")
            if value != HIVE_NULL:
                values.setdefault(col, []).append(value)
    return values


def refuse_foreign_partition_values(dataset: str, uri: str) -> None:
    """A partition folder under a value of another type than its siblings is refused, naming it. One listing of
    the (local) dataset's top level, no Spark."""
    if not os.path.isdir(uri):  # a dataset that is a single file has no partitions
        return
    with os.scandir(uri) as entries:
        values = top_partition_values(entry.name for entry in entries if entry.is_dir())
    for col, found in sorted(values.items()):
        expected = column_kind(found)
        foreign = sorted(f"{col}={v}" for v in found if value_kind(v) != expected)
        if expected not in (None, "other") and foreign:
            raise TransformError(f"dataset '{dataset}' holds partition folder(s) whose value is not a {expected} "
                                 f"like the others: {named(foreign)}; move them out of the dataset")


def spark_kind(data_type: object) -> str:
    """The folder-value kind a column of this Spark type writes: "date", "number" or "other"."""
    from pyspark.sql import types as T

    if isinstance(data_type, T.DateType):
        return "date"
    if isinstance(data_type, T.NumericType):
        return "number"
    return "other"


def partition_type_problem(dataset: str, column: str, data_type: object, dirs: Iterable[str]) -> str | None:
    """Why writing ``column`` of ``data_type`` as a partition of ``dataset`` (whose top folders are ``dirs``) would
    spoil it: the dataset's folders hold dates (or numbers) and the column would write other values beside them."""
    existing = top_partition_values(dirs).get(column) or []
    expected = column_kind(existing)
    got = spark_kind(data_type)
    if expected in (None, "other") or got == expected:
        return None
    type_name = getattr(data_type, "simpleString", lambda: str(data_type))()
    return (f"column {column} is {type_name}, but dataset '{dataset}' is partitioned by {expected}s "
            f"({named(sorted(f'{column}={v}' for v in existing))}): its values would be written as folders of "
            f"another kind beside them, and readers would get both; cast {column} to "
            f"{'date' if expected == 'date' else 'a number'}")
