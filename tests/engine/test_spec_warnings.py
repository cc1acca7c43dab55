"""What a valid spec most likely does not mean (engine.spec_warnings): said as a warning, the spec still loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.spec_helpers import load

DATED = """
pipeline: demo
{extra}
steps:
  a:
    sql: SELECT '{date}' AS trade_dt
    outputs:
      kept: {{path: out/kept, partition_by: [trade_dt], replace_partitions: {{trade_dt: "{date}"}}}}
  b:
    sql: SELECT 1 AS x
    outputs:
      snapshot: {{path: out/snapshot{mode}}}
"""


def warnings_of(path: Path) -> list[str]:
    found: list[str] = []
    load(path, warnings=found)
    return found


def test_an_unpartitioned_output_of_a_dated_pipeline_is_warned_of(write_spec):
    """Each date's run would replace the whole dataset: after a backfill only the last date's rows remain."""
    path = write_spec(DATED.format(extra="", date="{{ date }}", mode=""))
    assert warnings_of(path) == [
        f"{path}:11: steps.b.outputs.snapshot: no partition_by in a pipeline run per date (its templates use the "
        "date): each date's run replaces the whole dataset 'out/snapshot', and only the last date's rows remain; "
        "partition it by the date (partition_by: [trade_dt], replace_partitions: {trade_dt: '{{ date }}'}), or "
        "state mode: overwrite if one dataset of the latest run is meant"]
    required = write_spec(DATED.format(extra="requires: [preprocess]", date="2024-01-05", mode=""), "required.yaml")
    [warning] = warnings_of(required)
    assert "(it requires preprocess for the same date)" in warning


@pytest.mark.parametrize("extra,date,mode", [
    ("", "{{ date }}", ", mode: overwrite"),  # stated: one dataset of the latest run is meant
    ("", "2024-01-05", ""),                   # nothing in the spec depends on the date
])
def test_no_warning_for_a_stated_overwrite_or_a_pipeline_that_does_not_use_the_date(write_spec, extra, date, mode):
    assert warnings_of(write_spec(DATED.format(extra=extra, date=date, mode=mode))) == []


@pytest.mark.parametrize("spec", ["analyze.yaml", "preprocess.yaml"])
def test_the_product_pipelines_load_without_warnings(repo_root, spec):
    assert warnings_of(repo_root / "pipelines" / spec) == []


def test_a_catching_up_pipeline_is_dated_and_the_column_is_a_placeholder_when_no_output_names_one(write_spec):
    path = write_spec(DATED.format(extra="requires: [preprocess]\ncatch_up: {upstream: preprocess}",
                                   date="2024-01-05", mode=""))
    [warning] = warnings_of(path)
    assert warning.startswith(f"{path}:12: steps.b.outputs.snapshot: no partition_by in a pipeline run per date "
                              "(it catches up date by date): ")
    assert "(partition_by: [<date column>], replace_partitions: {<date column>: '{{ date }}'})" in warning
