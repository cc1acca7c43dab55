"""The engine's exception classes (engine.errors): the exit code each kind of failure ends the CLI with, and the
message it carries."""

from __future__ import annotations

import pytest

from engine import errors
from engine.errors import (
    AlreadyRunning,
    ConfigError,
    RegistryError,
    SpecError,
    SpecFileMissing,
    StepFailed,
    StorageError,
    TickflowError,
    TrackerError,
    TransformError,
    UpstreamNotReady,
)


def test_the_exit_codes_the_cli_documents():
    assert (errors.EXIT_OK, errors.EXIT_STEP_FAILED, errors.EXIT_USAGE, errors.EXIT_UPSTREAM,
            errors.EXIT_RUNNING) == (0, 1, 2, 3, 4)


@pytest.mark.parametrize("error,code", [
    (TickflowError("x"), 2), (ConfigError("x"), 2), (SpecError(["x"]), 2), (SpecFileMissing(["x"]), 2),
    (RegistryError("x"), 2), (StorageError("x"), 2), (TrackerError("x"), 2),
    (StepFailed("s", "t", "x"), 1), (UpstreamNotReady("x"), 3), (AlreadyRunning("x"), 4),
])
def test_each_failure_ends_with_its_exit_code(error, code):
    assert isinstance(error, TickflowError) and error.exit_code == code


def test_a_spec_error_carries_every_problem_one_per_line():
    problems = ["spec.yaml:3: steps.a: first", "spec.yaml:9: steps.b: second"]
    error = SpecError(problems)
    problems.append("added afterwards")  # a copy is kept
    assert error.problems == ["spec.yaml:3: steps.a: first", "spec.yaml:9: steps.b: second"]
    assert str(error) == "spec.yaml:3: steps.a: first\nspec.yaml:9: steps.b: second"
    assert isinstance(SpecFileMissing(["spec file not found: x.yaml"]), SpecError)


def test_a_step_failure_names_the_step_and_its_transform():
    error = StepFailed("eod_trade", "eod_load", "expectation 'bid_le_ask' failed")
    assert (error.step, error.transform) == ("eod_trade", "eod_load")
    assert str(error) == "step 'eod_trade' (eod_load) failed: expectation 'bid_le_ask' failed"


def test_a_transform_error_is_not_an_engine_failure_of_its_own():
    """Plugins raise it; the runner turns it into the StepFailed of the step that raised it."""
    assert not issubclass(TransformError, TickflowError) and issubclass(TransformError, Exception)
