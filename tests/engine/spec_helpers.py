"""Helpers shared by the spec tests (test_spec_loader and the tests of the modules it is made of): loading a
spec for one date, and the problems a broken one reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec_loader import load_spec

DATE = dt.date(2024, 1, 5)

# a spec whose var n is built from the var base
VARS = """
pipeline: demo
modules: [{mod}]
vars:
  base: 4
  n: "{{{{ vars.base * 2 }}}}"
steps:
  nums:
    transform: t_numbers
    params: {{n: "{{{{ vars.n }}}}"}}
"""


def load(path, **kw):
    return load_spec(path, date=DATE, **kw)


def problems_of(path: Path, **kw: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(path, **kw)
    return info.value.problems
