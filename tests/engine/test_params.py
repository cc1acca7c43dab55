"""Params-schema problems say what is wrong and what the schema expects; a description is only a hint."""

from __future__ import annotations

import pytest

from engine.builtins import READ_DATASET_SCHEMA
from engine.params import describe_schema, params_problems

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "window": {"type": "string", "pattern": "^[0-9]+ minutes$", "description": "Look-back length."},
        "top_n": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many to list."},
        "share": {"type": "number", "minimum": 0, "maximum": 1},
        "format": {"enum": ["csv", "json"], "description": "Line format."},
        "by": {"type": "array", "items": {"type": "string", "pattern": "^[a-z_]+$"}, "minItems": 1,
               "uniqueItems": True, "description": "Partition keys."},
        "name": {"type": "string", "minLength": 1},
    },
}


@pytest.mark.parametrize("params,path,message", [
    ({"window": "5 minuts"}, ("window",),
     "'5 minuts' does not match; expected a string matching the pattern ^[0-9]+ minutes$"
     " (hint, from the description of 'window': Look-back length.)"),
    ({"top_n": 0}, ("top_n",),
     "0 is below the minimum; expected an integer from 1 to 100 (hint, from the description of 'top_n': How many "
     "to list.)"),
    ({"top_n": "five"}, ("top_n",),
     "'five' is a string; expected an integer from 1 to 100 (hint, from the description of 'top_n': How many to "
     "list.)"),
    ({"share": 2}, ("share",), "2 is above the maximum; expected a number from 0 to 1"),
    ({"format": "xml"}, ("format",),
     "'xml' is not one of the allowed values; expected one of 'csv', 'json' (hint, from the description of "
     "'format': Line format.)"),
    ({"by": []}, ("by",),
     "[] has too few items; expected a non-empty list without repeated items, each item a string matching the "
     "pattern ^[a-z_]+$ (hint, from the description of 'by': Partition keys.)"),
    ({"by": ["ok", "Bad"]}, ("by", 1),
     "'Bad' does not match; expected a string matching the pattern ^[a-z_]+$ (hint, from the description of "
     "'by': Partition keys.)"),
    ({"name": ""}, ("name",), "'' is too short; expected a non-empty string"),
])
def test_a_problem_says_what_is_wrong_and_what_the_schema_expects(params, path, message):
    assert params_problems(SCHEMA, params) == [(path, message)]


def test_the_description_is_never_given_as_the_expectation():
    """It used to read '(expected: Look-back length.)': what the parameter is for, not what it must be."""
    [(_, message)] = params_problems(SCHEMA, {"window": 30})
    assert "expected: Look-back" not in message
    assert message.startswith("30 is an integer; expected a string matching the pattern ^[0-9]+ minutes$")
    assert message.endswith("(hint, from the description of 'window': Look-back length.)")


def test_alternatives_are_described_from_the_schema():
    [(path, message)] = params_problems(READ_DATASET_SCHEMA, {"path": "trade", "partitions": {"d": {"x": 1}}})
    assert path == ("partitions", "d")
    assert message == ("{'x': 1} matches none of the allowed forms; expected a string or a number, or a list, each "
                       "item a string or a number (hint, from the description of 'partitions': partition column "
                       "-> value or list of values; only these partitions are read)")


@pytest.mark.parametrize("schema,words", [
    ({"type": "number", "exclusiveMinimum": 0}, "a number > 0"),
    ({"type": ["integer", "null"], "minimum": 0}, "an integer >= 0 or null"),
    ({"type": "boolean"}, "true or false"),
    ({"const": 3}, "exactly 3"),
    ({"$ref": "#/$defs/x"}, None),  # not guessed: the message keeps jsonschema's own words
])
def test_describe_schema(schema, words):
    assert describe_schema(schema) == words


def test_unknown_and_missing_parameters_keep_their_messages():
    schema = {**SCHEMA, "required": ["window"]}
    assert params_problems(schema, {"windw": "5 minutes"}) == [
        (("windw",), "unknown parameter 'windw' (did you mean 'window'?); expected one of: by, format, name, share, "
                     "top_n, window"),
        ((), "'window' is a required parameter"),
    ]


def test_an_unknown_key_of_a_nested_mapping_is_not_called_a_parameter():
    schema = {"type": "object", "properties": {"sources": {"type": "array", "items": {
        "type": "object", "additionalProperties": False, "properties": {"folder": {}, "format": {}}}}}}
    assert params_problems(schema, {"sources": [{"folder": "csv", "fromat": "csv"}]}) == [
        (("sources", 0, "fromat"), "unknown key 'fromat' (did you mean 'format'?); expected one of: folder, format")]
