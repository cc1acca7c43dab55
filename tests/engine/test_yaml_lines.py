"""YAML syntax errors point at the line to edit: where an unclosed quote or bracket starts, not where the parser
gave up (often the end of the file)."""

from __future__ import annotations

import pytest

from engine.yaml_lines import YamlSyntaxError, load_with_lines


def syntax_error(text: str) -> YamlSyntaxError:
    with pytest.raises(YamlSyntaxError) as info:
        load_with_lines(text)
    return info.value


def test_an_unclosed_quote_is_reported_where_it_opens_with_where_the_parser_gave_up():
    err = syntax_error("pipeline: x\nsteps:\n  a:\n    sql: \"SELECT 1\n    outputs: {a: {path: x}}\n  b:\n"
                       "    sql: SELECT 2\n")
    assert err.line == 4
    assert str(err) == ("invalid YAML: the quoted string opened at line 4, column 10 is not closed: found unexpected "
                        "end of stream at line 8, column 1, where the parser gave up")


def test_an_unclosed_brace_is_reported_at_its_line():
    err = syntax_error("steps:\n  a: {transform: t, params: {n: 1}\n  b: {sql: SELECT 1}\n")
    assert err.line == 2
    assert "'{' mapping opened at line 2, column 6 is not closed" in str(err)
    assert "at line 3, column 3, where the parser gave up" in str(err)


def test_a_key_without_its_colon_is_reported_at_the_key():
    err = syntax_error("a: 1\nb\nc: 2\n")
    assert err.line == 2
    assert "could not find expected ':' at line 3, column 1" in str(err)


def test_a_bad_indent_stays_at_the_line_the_parser_stopped_and_names_the_mapping_it_was_in():
    err = syntax_error("top: 1\nsteps:\n  x:\n    transform: a\n   params: 1\n")
    assert err.line == 5
    assert "(while parsing a block mapping that starts at line 3, column 3)" in str(err)
