"""Where in the spec a step's failure comes from (file, line, key path)."""

from __future__ import annotations

import datetime as dt

from engine.expectations import ExpectationError
from engine.failure_place import located
from engine.spec_loader import load_spec


def test_a_failure_about_a_part_of_the_spec_is_led_by_its_file_line_and_key(write_spec):
    """An unresolved column in a SQL step or an expectation (Spark's AnalysisException, after the start) named no
    spec file or line: it now reads like a spec error."""
    path = write_spec("""
        pipeline: loc
        steps:
          hourly:
            sql: |
              SELECT 1 AS n
            outputs: {o: {path: loc/hourly}}
            expectations:
              - {name: positive, expr: "n > 0"}
              - {name: small, expr: "n < 9"}
        """)
    spec = load_spec(path, date=dt.date(2024, 1, 5))
    step = spec.steps["hourly"]

    class AnalysisException(Exception):  # pyspark's, told by its name
        pass

    class ParseException(AnalysisException):
        pass

    bad = ParseException("[UNRESOLVED_COLUMN] x")
    assert located(spec, step, bad, "AnalysisException: x", in_sql=True) == (
        f"{path}:4: steps.hourly.sql: AnalysisException: x")
    assert located(spec, step, bad, "AnalysisException: x") == "AnalysisException: x"  # raised by its write
    wrong = ExpectationError("expectation 'small': cannot evaluate 'm < 9': ...")
    assert located(spec, step, wrong, "ExpectationError: e") == (
        f"{path}:9: steps.hourly.expectations[1]: ExpectationError: e")
    assert located(spec, step, ValueError("v"), "ValueError: v", in_sql=True) == "ValueError: v"
