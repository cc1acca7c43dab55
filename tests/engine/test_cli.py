"""The command line in process (cheap): what it says before any command runs, and what validate prints."""

from __future__ import annotations

import io
import json

import pytest

from engine.cli import main
from engine.errors import EXIT_OK, EXIT_USAGE


@pytest.fixture(autouse=True)
def no_config(monkeypatch, tmp_path):
    monkeypatch.delenv("TICKFLOW_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("argv,words", [
    (["valdate", "spec.yaml"], "error: unknown command 'valdate' (did you mean 'validate'?)"),
    (["list-transform"], "error: unknown command 'list-transform' (did you mean 'list-transforms'?)"),
])
def test_a_misspelt_command_is_named_with_the_command_meant(capsys, argv, words):
    """argparse said 'unrecognized arguments: spec.yaml', or the word was taken for a missing spec file."""
    assert main(argv, out=io.StringIO()) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == words


def test_a_misspelt_command_with_json_logs_is_one_run_ended_event(capsys):
    assert main(["valdate", "spec.yaml", "--log-format", "json"], out=io.StringIO()) == EXIT_USAGE
    event = json.loads(capsys.readouterr().err)
    assert event["exit_code"] == EXIT_USAGE and "did you mean 'validate'?" in event["message"]


def test_a_file_named_like_a_command_is_still_a_spec(capsys, tmp_path):
    (tmp_path / "valdate").write_text("pipeline: demo\nsteps:\n  a: {sql: SELECT 1 AS x}\n")
    assert main(["validate", "valdate"], out=(out := io.StringIO())) == EXIT_OK
    assert "valdate: OK" in out.getvalue()
    assert main(["analyse.yaml"], out=io.StringIO()) == EXIT_USAGE  # a missing spec file stays one
    assert "spec file not found" in capsys.readouterr().err


def test_validate_prints_the_warnings_of_a_valid_spec(tmp_path):
    (tmp_path / "spec.yaml").write_text("pipeline: demo\nsteps:\n  a:\n    sql: SELECT '{{ date }}' AS d\n"
                                        "    outputs: {o: {path: out/o}}\n")
    out = io.StringIO()
    assert main(["validate", "spec.yaml"], out=out) == EXIT_OK
    lines = out.getvalue().splitlines()
    assert lines[0] == "spec.yaml: OK (pipeline 'demo', 1 steps)"
    assert lines[1].startswith("  warning: spec.yaml:5: steps.a.outputs.o: no partition_by in a pipeline run per date")
