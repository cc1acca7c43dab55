from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import RegistryError
from engine.registry import REGISTRY, Registry, transform

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_decorator_registers_with_schema_and_description():
    reg = Registry()

    @transform("x_one", description="First line.\nMore text.", params_schema={"type": "object"}, registry=reg)
    def one(ctx, inputs, params):
        return None

    tdef = reg.get("x_one")
    assert tdef.description == "First line." and tdef.outputs == ("out",) and tdef.inputs is None
    assert "test_registry" in tdef.origin


def test_duplicate_name_names_both_places():
    reg = Registry()

    @transform("dup", description="a", registry=reg)
    def first(ctx, inputs, params):
        return None

    with pytest.raises(RegistryError) as info:
        @transform("dup", description="b", registry=reg)
        def second(ctx, inputs, params):
            return None

    msg = str(info.value)
    assert "first" in msg and "second" in msg and "registered twice" in msg


def test_schema_file_reference_is_loaded():
    reg = Registry()
    with pytest.raises(RegistryError, match="cannot load params schema"):
        transform("bad_schema", description="x", params_schema="does_not_exist.json", registry=reg)(lambda *a: None)


def test_discovery_from_module_path(test_transforms_module):
    REGISTRY.discover([test_transforms_module])
    assert REGISTRY.get("t_numbers") is not None
    assert REGISTRY.get("read_dataset") is not None  # engine builtins


def test_unimportable_module_is_a_clear_error():
    with pytest.raises(RegistryError, match="cannot import transform module 'no_such_mod_xyz'"):
        Registry().import_module("no_such_mod_xyz", where="spec.yaml")


@pytest.mark.parametrize("source,words", [
    ("import os\n\ndef broken(:\n    pass\n", "SyntaxError at {file}:3: invalid syntax"),
    ("LIMIT = 1 / 0\n", "ZeroDivisionError at {file}:1: division by zero"),
    ("raise RuntimeError('no licence server')\n", "RuntimeError at {file}:1: no licence server"),
])
def test_a_module_raising_at_import_is_a_registry_error(tmp_path, monkeypatch, source, words):
    """Anything a plugin raises at import is exit 2 with the module and where, not a traceback (exit 1)."""
    (tmp_path / "tf_raises_at_import.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError) as info:
        Registry().import_module("tf_raises_at_import", where="--module")
    assert str(info.value) == ("cannot import transform module 'tf_raises_at_import' (named in --module): "
                               + words.format(file=tmp_path / "tf_raises_at_import.py"))
    assert info.value.exit_code == 2


@pytest.mark.parametrize("schema,words", [
    ({"type": "object", "properties": {"n": {"type": "integr"}}},
     "at properties/n/type: 'integr' is not a JSON Schema type (did you mean 'integer'?); expected one of array, "
     "boolean, integer, null, number, object, string (or a list of them)"),
    ({"type": "object", "properties": {"n": {"type": ["string", "nul"]}}},
     "at properties/n/type: 'nul' is not a JSON Schema type (did you mean 'null'?)"),
    ({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}}, "at properties/s/pattern: '('"),
    ({"type": "object", "required": "n"}, "at required: 'n' is not of type 'array'"),
])
def test_an_invalid_params_schema_is_refused_when_registered_naming_the_plugins_line(schema, words):
    """Else every validate of a spec using the transform crashes inside jsonschema (UnknownType...); the plugin's
    file and line say where to fix it, and a misspelt type is named with the allowed ones."""
    def plugin(ctx, inputs, params):
        return None

    line = plugin.__code__.co_firstlineno
    with pytest.raises(RegistryError) as info:
        transform("x_bad_schema", description="x", params_schema=schema, registry=Registry())(plugin)
    assert str(info.value).startswith(f"transform 'x_bad_schema' at {__file__}:{line}: invalid params schema {words}")


def test_a_schema_file_that_cannot_be_read_is_named_with_the_plugins_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "object", "properties": {n: 1}}')

    def plugin(ctx, inputs, params):
        return None

    with pytest.raises(RegistryError) as info:
        transform("x_bad_file", description="x", params_schema=str(bad), registry=Registry())(plugin)
    assert str(info.value).startswith(f"transform 'x_bad_file' at {__file__}:{plugin.__code__.co_firstlineno}: "
                                      f"cannot load params schema {bad}: Expecting property name")


@pytest.mark.parametrize("prop,words", [
    ({"type": "integer", "minimum": 1, "default": "five"},
     "default \"five\" of 'n' does not match its own schema (expected an integer >= 1)"),
    ({"type": "integer", "minimum": 1, "default": 0}, "default 0 of 'n' does not match its own schema (expected an "
                                                     "integer >= 1)"),
    ({"type": "string", "enum": ["a", "b"], "default": "c"},
     "default \"c\" of 'n' does not match its own schema (expected one of 'a', 'b')"),
])
def test_a_default_its_own_property_schema_refuses_is_refused_when_registered(prop, words):
    """Else a step leaving the param out hands the transform a value the schema refuses, found only inside Spark."""
    schema = {"type": "object", "additionalProperties": False, "required": ["other"],
              "properties": {"n": prop, "other": {"type": "string"}}}
    with pytest.raises(RegistryError) as info:
        transform("x_bad_default", description="x", params_schema=schema, registry=Registry())(lambda *a: None)
    assert str(info.value).endswith(f": {words}")


def test_defaults_that_match_their_schema_register():
    schema = {"type": "object", "required": ["other"],
              "properties": {"n": {"type": "integer", "minimum": 1, "default": 5}, "other": {"type": "string"},
                             "k": {"type": ["string", "null"], "default": None}}}
    transform("x_good_default", description="x", params_schema=schema, registry=(reg := Registry()))(lambda *a: None)
    assert reg.get("x_good_default") is not None


def test_discovery_from_entry_point_of_installed_package(tmp_path):
    """Install the tiny analyst package for real and discover its transform through the entry point group."""
    target = tmp_path / "site"
    source = tmp_path / "src"
    shutil.copytree(FIXTURES / "tickflow_demo_plugin", source)  # building writes next to the sources
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from engine.registry import REGISTRY; "
            "REGISTRY.load_entry_points(); t = REGISTRY.get('plugin_scale'); print(t.name, t.inputs)")
    out = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True,
                         cwd=str(FIXTURES.parent.parent))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "plugin_scale ('df',)"


def test_an_import_failure_points_at_the_plugin_s_line_not_the_standard_library(tmp_path, monkeypatch):
    """A plugin loading its params schema from package data with invalid JSON: the error is raised in json's
    decoder, but the line to fix is the plugin's (or its JSON file, which that line names)."""
    pkg = tmp_path / "tf_json_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "schema.json").write_text('{"type": "object", properties: {}}')
    (pkg / "mod.py").write_text("import json\nfrom pathlib import Path\n\nHERE = Path(__file__).parent\n"
                                "PARAMS = json.loads((HERE / 'schema.json').read_text())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError) as info:
        Registry().import_module("tf_json_pkg.mod", where="spec.yaml")
    assert str(info.value).startswith("cannot import transform module 'tf_json_pkg.mod' (named in spec.yaml): "
                                      f"JSONDecodeError at {pkg / 'mod.py'}:5: Expecting property name")


def test_a_missing_dependency_of_a_plugin_names_the_plugin_s_line(tmp_path, monkeypatch):
    (tmp_path / "tf_needs_dep.py").write_text("import os\nimport no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RegistryError) as info:
        Registry().import_module("tf_needs_dep")
    assert str(info.value) == ("cannot import transform module 'tf_needs_dep': No module named "
                               f"'no_such_dependency_xyz' at {tmp_path / 'tf_needs_dep.py'}:2")


def install_entry_point(site: Path, module: str, source: str) -> None:
    """A package 'installed' into ``site``: its module and a dist-info declaring the entry point."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{module}_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tickflow.transforms]\nmine = {module}\n")


def test_a_broken_entry_point_names_the_file_with_its_folder(tmp_path, monkeypatch):
    """It used to say only `(syntax_err.py, line 4)`, unlike a broken `modules:` entry."""
    install_entry_point(tmp_path, "tf_ep_syntax", "import os\n\n\ndef broken(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    with pytest.raises(RegistryError) as info:
        reg.load_entry_points()
    assert str(info.value) == ("cannot load transform entry point 'mine = tf_ep_syntax' (group tickflow.transforms): "
                               f"SyntaxError at {tmp_path / 'tf_ep_syntax.py'}:4: invalid syntax")
    assert info.value.module == "tf_ep_syntax" and info.value.exit_code == 2


def test_a_failed_import_explains_the_unknown_transforms_it_would_have_registered(tmp_path, monkeypatch):
    """Else `unknown transform 't_brk' (see list-transforms)` followed the import error, sending the user away
    from it; a name the failed module does not mention is still a plain unknown name."""
    (tmp_path / "tf_brk.py").write_text("from engine.registry import transform\n\n"
                                        "@transform('t_brk', description='x')\ndef t_brk(ctx, inputs, params:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    with pytest.raises(RegistryError) as info:
        reg.import_module("tf_brk")
    assert info.value.module == "tf_brk"
    assert reg.failed_import_for("t_brk", [info.value.module]) == "tf_brk"
    assert reg.failed_import_for("t_other") is None
    assert reg.failed_import_for("t_brk", []) is None  # only the modules the caller saw fail
    with pytest.raises(RegistryError):
        reg.import_module("tf_missing_module_xyz")
    assert reg.failed_import_for("t_other") == "tf_missing_module_xyz"  # it may have held any name
    (tmp_path / "tf_brk.py").write_text("")
    reg.import_module("tf_brk")  # fixed: no longer blamed
    assert "tf_brk" not in reg.failed_imports


def define(reg: Registry, name: str = "x_t", func=None, **kw):
    def fine(ctx, inputs, params):
        return None

    return transform(name, description="x", registry=reg, **kw)(func or fine)


@pytest.mark.parametrize("key", ["inputs", "outputs"])
def test_inputs_or_outputs_given_as_a_string_are_refused(key):
    """`inputs="trades"` registered the inputs t, r, a, d, e, s; the spec error never named the cause."""
    reg = Registry()
    with pytest.raises(RegistryError, match=re.escape(f"transform 'x_t': {key}= must be a list of names "
                                                      f"(e.g. {key}=['trades']), got str 'trades'")):
        define(reg, **{key: "trades"})
    assert reg.get("x_t") is None


@pytest.mark.parametrize("func", [lambda inputs, params: None, lambda ctx, inputs, params, extra: None,
                                  lambda ctx, *, inputs, params: None])
def test_a_function_that_cannot_take_ctx_inputs_params_is_refused(func):
    """It registered, and failed after Spark's start with `takes 2 positional arguments but 3 were given`."""
    with pytest.raises(RegistryError, match=r"transform 'x_t': .* cannot be called as func\(ctx, inputs, "
                                            r"params\) \(.*\); its signature is <lambda>\("):
        define(Registry(), func=func)


@pytest.mark.parametrize("func", [lambda ctx, inputs, params, extra=1: None, lambda *args: None,
                                  lambda ctx, inputs, params=None, **kw: None])
def test_a_function_that_can_take_ctx_inputs_params_is_accepted(func):
    reg = Registry()
    define(reg, func=func)
    assert reg.get("x_t") is not None


def test_the_sql_step_kind_is_not_a_transform_name():
    """Plan and the report show `[sql]` for SQL steps: a transform of that name would look like one."""
    with pytest.raises(RegistryError, match="transform name 'sql' is reserved: it is the kind of a `sql:` step"):
        define(Registry(), "sql")
