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
    ({"type": "object", "properties": {"n": {"type": "integr"}}}, "at properties/n/type: 'integr' is not valid"),
    ({"type": "object", "properties": {"s": {"type": "string", "pattern": "("}}}, "at properties/s/pattern: '('"),
    ({"type": "object", "required": "n"}, "at required: 'n' is not of type 'array'"),
])
def test_an_invalid_params_schema_is_refused_when_registered(schema, words):
    """Else every validate of a spec using the transform crashes inside jsonschema (UnknownType...)."""
    with pytest.raises(RegistryError, match=re.escape(f"transform 'x_bad_schema': invalid params schema {words}")):
        transform("x_bad_schema", description="x", params_schema=schema, registry=Registry())(lambda *a: None)


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
