"""The digest of a step's definition: stable for the same step, changed by anything that changes its result."""

from __future__ import annotations

import dataclasses

from engine.spec import InputRef, OutputSpec, StepSpec
from engine.step_definition import _file_digest, code_digest, definition_digest

STEP = StepSpec(name="bars", transform="bars", sql=None, inputs={"trades": InputRef(step="trades")},
                params={"bar_length": "1 minute", "by": ("trade_dt", "symbol")},
                outputs={"bars": OutputSpec("bars", "analytics/bars", ("trade_dt",), "overwrite_partitions",
                                            ("trade_dt=2024-01-05",))},
                depends_on=(), expectations=({"name": "x", "expr": "vwap > 0"},), description="one",
                line=3)


def test_the_same_step_has_the_same_digest_and_what_does_not_change_results_is_left_out() -> None:
    digest = definition_digest(STEP, "c0de", ["up1", "up2"])
    assert len(digest) == 16 and digest == definition_digest(STEP, "c0de", ["up2", "up1"])
    reordered = dataclasses.replace(STEP, params={"by": ["trade_dt", "symbol"], "bar_length": "1 minute"})
    assert definition_digest(reordered, "c0de", ["up1", "up2"]) == digest
    cosmetic = dataclasses.replace(STEP, description="two", line=40, cache=False)
    assert definition_digest(cosmetic, "c0de", ["up1", "up2"]) == digest


def test_anything_that_changes_what_the_step_computes_changes_the_digest() -> None:
    digest = definition_digest(STEP, "c0de", ["up1"])
    changed = [
        dataclasses.replace(STEP, params={**STEP.params, "bar_length": "5 minutes"}),
        dataclasses.replace(STEP, inputs={"trades": InputRef(step="trades_b")}),
        dataclasses.replace(STEP, outputs={"bars": dataclasses.replace(STEP.outputs["bars"], path="analytics/b")}),
        dataclasses.replace(STEP, expectations=({"name": "x", "expr": "vwap > 1", "action": "drop"},)),
        dataclasses.replace(STEP, transform=None, sql="SELECT 1"),
    ]
    digests = {definition_digest(step, "c0de", ["up1"]) for step in changed}
    assert len(digests) == len(changed) and digest not in digests
    assert definition_digest(STEP, "c0d3", ["up1"]) != digest  # the transform's code
    assert definition_digest(STEP, "c0de", ["up9"]) != digest  # a step it reads


def test_the_code_digest_follows_the_transforms_source_file(tmp_path, monkeypatch) -> None:
    module = tmp_path / "tf_digest_mod.py"
    module.write_text("def f(ctx, inputs, params):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import tf_digest_mod

    before = code_digest(tf_digest_mod.f)
    module.write_text("def f(ctx, inputs, params):\n    return 2\n")
    _file_digest.cache_clear()  # one run reads a file once; a new run (a new process) reads it again
    assert code_digest(tf_digest_mod.f) not in ("", before)
    assert code_digest(len) == ""  # no source file: nothing to follow
