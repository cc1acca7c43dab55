from __future__ import annotations

import re

import pytest

from engine.dag import Dag
from engine.selection import SelectionError, parse_selectors, select

DAG = Dag.build({"read": [], "clean": ["read"], "agg": ["clean"], "report": ["agg"], "other": ["read"]})


def sel(*texts):
    return select(DAG, parse_selectors(texts))


def test_plain_step_runs_upstream_as_feeders():
    s = sel("agg")
    assert s.selected == {"agg"} and s.feeders == {"read", "clean"}


def test_plus_prefix_selects_upstream_for_writing():
    s = sel("+agg")
    assert s.selected == {"read", "clean", "agg"} and not s.feeders


def test_plus_suffix_adds_downstream():
    s = sel("clean+")
    assert s.selected == {"clean", "agg", "report"} and s.feeders == {"read"}


def test_both_and_union():
    assert sel("+clean+").selected == {"read", "clean", "agg", "report"}
    assert sel("agg,other").selected == {"agg", "other"}


def test_unknown_step_is_an_error_listing_steps():
    with pytest.raises(SelectionError, match="unknown step.*nope.*read, clean"):
        sel("nope")


def test_a_near_miss_names_the_step_meant():
    with pytest.raises(SelectionError) as err:
        sel("+agg", "cleen+", "zzz")
    assert "'cleen' (did you mean 'clean'?)" in str(err.value)
    assert "'zzz';" in str(err.value)  # nothing close: no guess


@pytest.mark.parametrize("texts", [("",), (" ",), (",",), ("", " , ")])
def test_an_empty_select_is_an_error_not_a_run_of_no_step(texts):
    """`--select ""` ran 0 steps under the lock and stamped the job success (or stale) again."""
    with pytest.raises(SelectionError, match="^--select is empty; give a step"):
        parse_selectors(texts)


@pytest.mark.parametrize("token", ["++clean", "clean++", "+", "++", "a+b", "+clean++"])
def test_a_malformed_operator_is_an_error(token):
    with pytest.raises(SelectionError, match=rf"^malformed selector '{re.escape(token)}' in --select; expected "
                       r"step, \+step, step\+ or \+step\+$"):
        parse_selectors([token])
