"""What a transform sees: ``ctx.record`` takes JSON facts only, refused at the call that is wrong."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from engine.context import TransformContext
from engine.errors import TransformError


def context() -> TransformContext:
    return TransformContext(spark=None, date=dt.date(2024, 1, 5), step="blocks", log=logging.getLogger("t"),
                            _dataset_reader=lambda *_a: None, _raw_reader=lambda _rel: None)


def test_record_keeps_json_facts():
    ctx = context()
    ctx.record("bad_by_reason", {"bad_price": 3, "broken_json": 1})
    ctx.record("files_not_read", ["a.txt"])
    ctx.record("ratio", 0.5)
    ctx.record("note", None)
    assert ctx.metrics == {"bad_by_reason": {"bad_price": 3, "broken_json": 1}, "files_not_read": ["a.txt"],
                           "ratio": 0.5, "note": None}


@pytest.mark.parametrize("value,kind", [({"a", "b"}, "a set"), (dt.date(2024, 1, 5), "a datetime.date"),
                                        ({"k": object()}, "a dict"), ({(1, 2): 3}, "a dict")])
def test_record_refuses_a_value_the_report_cannot_hold(value, kind):
    """A set or a DataFrame once cost the whole run report at the end of a successful run, naming neither the
    step nor the key."""
    ctx = context()
    with pytest.raises(TransformError, match=rf"^step 'blocks': ctx.record\('symbols', ...\) got {kind}, which is "
                                             "not JSON-serialisable"):
        ctx.record("symbols", value)
    assert ctx.metrics == {}


def test_record_refuses_a_dataframe(spark):
    ctx = context()
    with pytest.raises(TransformError, match=r"ctx.record\('frame', ...\) got a pyspark\.sql\.\S*DataFrame, "):
        ctx.record("frame", spark.range(2))
    assert ctx.metrics == {}


def test_record_refuses_a_key_that_is_not_a_name():
    with pytest.raises(TransformError, match="step 'blocks': ctx.record key 3 is not a non-empty string"):
        context().record(3, 1)  # type: ignore[arg-type]
