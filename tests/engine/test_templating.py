from __future__ import annotations

import datetime as dt

import pytest

from engine.templating import (
    TemplateProblem,
    build_context,
    make_environment,
    public_env,
    render_value,
    uses_date,
    var_references,
)

CONTEXT = build_context(dt.date(2020, 8, 10), {"small": 1e-07, "big": 1e20, "n": 7, "flag": False,
                                               "ratio": 0.05, "name": "SYMA"},
                        {"pipeline": {"parallel_steps": "3", "share": "0.25"}}, {})


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ vars.small }}", 1e-07),      # str(1e-07) is '1e-07', which YAML 1.1 reads back as text
    ("{{ vars.big }}", 1e20),
    ("{{ vars.n * 2 }}", 14),
    (" {{ vars.flag }} ", False),
    ("{{ vars.ratio }}", 0.05),
    ("{{ config.pipeline.parallel_steps }}", 3),  # INI values are text: YAML gives them their type
    ("{{ config.pipeline.share }}", 0.25),
    ("{{ date | previous_days(2) }}", ["2020-08-09", "2020-08-08"]),
    ("{{ date }}", "2020-08-10"),     # a date stays its ISO text
    ("{{ vars.name }}", "SYMA"),      # a text var stays text
    ("{{ vars.n }}-{{ vars.n }}", "7-7"),
    ("n={{ vars.small }}", "n=1e-07"),
])
def test_a_single_expression_keeps_its_type(text: str, expected: object) -> None:
    got = render_value(make_environment(), text, CONTEXT, ("steps", "a", "params", "x"))
    assert got == expected and type(got) is type(expected)


def test_an_undefined_name_is_a_problem_at_its_path() -> None:
    with pytest.raises(TemplateProblem, match="undefined") as info:
        render_value(make_environment(), "{{ vars.nope }}", CONTEXT, ("steps", "a", "params", "x"))
    assert info.value.path == ("steps", "a", "params", "x")


def test_an_env_text_in_exponent_form_becomes_a_number() -> None:
    context = build_context(None, {}, {}, {"SHARE": "1e-5", "BIG": "2.5E+3"})
    env = make_environment()
    assert render_value(env, "{{ env.SHARE }}", context, ()) == 1e-5
    assert render_value(env, "{{ env.BIG }}", context, ()) == 2500.0


@pytest.mark.parametrize(("text", "words"), [
    ("{{ vars.ratoi * 2 }}", "vars.ratoi (the spec's vars are: small, big, n, flag, ratio, name; "
                             "did you mean vars.ratio?)"),
    ("{{ vars.zzz }}", "vars.zzz (the spec's vars are: small, big, n, flag, ratio, name)"),
    ("{{ config.pipelin.share }}", "config.pipelin (did you mean config.pipeline?)"),
])
def test_a_misspelt_name_is_named_with_the_close_ones(text: str, words: str) -> None:
    with pytest.raises(TemplateProblem) as info:
        render_value(make_environment(), text, CONTEXT, ("steps", "a", "params", "x"))
    assert str(info.value) == f"template refers to something undefined: {words}"


def test_public_env_leaves_out_credentials() -> None:
    env = {"HOME": "/root", "PGPASSWORD": "a", "AWS_SECRET_ACCESS_KEY": "b", "GITHUB_TOKEN": "c",
           "AZURE_STORAGE_CONNECTION_STRING": "d", "MY_ACCOUNT_KEY": "e", "KEYBOARD": "us", "X": "configured",
           "AZURE_STORAGE_KEY": "f", "DATABASE_URL": "postgresql://u:p@h/db", "PG_DSN": "g", "AZURE_SAS": "h",
           "DB_PWD": "i", "PWD": "/work", "KEYS_DIR": "/k", "SASL_MECHANISM": "plain"}
    assert public_env(env, ["configured"]) == {"HOME": "/root", "KEYBOARD": "us", "KEYS_DIR": "/k", "PWD": "/work",
                                               "SASL_MECHANISM": "plain"}


def test_var_references_are_what_a_var_must_render_after() -> None:
    value = {"a": "{{ vars.x }}-{{ vars['y'] }}", "b": ["{% if vars.z %}1{% endif %}", "{{ date }}"], "c": 3}
    assert var_references(make_environment(), value) == {"x", "y", "z"}


def test_uses_date_sees_date_and_prev_date_only_inside_templates() -> None:
    env = make_environment()
    assert uses_date(env, {"w": "trade_dt = '{{ prev_date }}'"})
    assert uses_date(env, ["{{ date | days_before(2) }}"])
    assert not uses_date(env, {"date": "date", "w": "{{ vars.date_col }}"})


def test_a_date_filter_given_text_names_the_var_it_came_from() -> None:
    context = build_context(dt.date(2020, 8, 10), {"lookback": "x"}, {}, {})
    with pytest.raises(TemplateProblem) as info:
        render_value(make_environment(), "{{ date | days_before(vars.lookback) }}", context, ("vars", "start"))
    assert str(info.value) == "template failed: days_before needs a whole number of days, got 'x' from vars.lookback"
