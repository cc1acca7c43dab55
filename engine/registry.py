"""Transform registry: plugins register by name with a params JSON Schema and a one-line description.

Discovery sources, in order: ``engine.builtins``, every module of the ``transforms`` package, module paths named
in the config or the spec, and the ``tickflow.transforms`` entry-point group (an analyst's installed package).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import pkgutil
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from engine.errors import RegistryError

ENTRY_POINT_GROUP = "tickflow.transforms"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "transforms"
EMPTY_PARAMS_SCHEMA: Mapping[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}


@dataclass(frozen=True)
class TransformDef:
    """A registered transform. ``func(ctx, inputs, params)`` returns a DataFrame or {output: DataFrame}."""

    name: str
    func: Callable[..., Any]
    description: str
    params_schema: Mapping[str, Any]
    inputs: tuple[str, ...] | None  # None: any input names are accepted
    outputs: tuple[str, ...]  # the first is the default output
    origin: str
    # ``preflight(ctx, params)`` runs before Spark starts (engine.context.PreflightContext) and raises to refuse
    preflight: Callable[..., None] | None = None

    @property
    def multi_output(self) -> bool:
        return len(self.outputs) > 1


def _origin_of(func: Callable[..., Any]) -> str:
    try:
        src = inspect.getsourcefile(func) or "?"
        line = inspect.getsourcelines(func)[1]
        return f"{func.__module__}.{func.__qualname__} ({src}:{line})"
    except (OSError, TypeError):
        return f"{func.__module__}.{func.__qualname__}"


def load_schema(schema: Mapping[str, Any] | str | None) -> Mapping[str, Any]:
    """A dict is used as is; a string names a file in ``schemas/transforms/`` (or a path)."""
    if schema is None:
        return EMPTY_PARAMS_SCHEMA
    if isinstance(schema, Mapping):
        return schema
    path = Path(schema)
    if not path.is_absolute():
        path = SCHEMA_DIR / schema
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot load params schema {path}: {exc}") from exc


def _import_failure(exc: Exception) -> str:
    """The essence of an import failure: the message, and where in the plugin's code it happened."""
    if isinstance(exc, ImportError | RegistryError):
        return str(exc)
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__} at {exc.filename}:{exc.lineno}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen ")]
    at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}{at}: {exc}"


def check_params_schema(name: str, schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A params schema that is not valid JSON Schema would crash validation of every spec using it."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(map(str, exc.absolute_path)) or "(top level)"
        raise RegistryError(f"transform '{name}': invalid params schema at {where}: {exc.message}") from None
    return schema


@dataclass
class Registry:
    _defs: dict[str, TransformDef] = field(default_factory=dict)
    _loaded_modules: set[str] = field(default_factory=set)

    def register(self, tdef: TransformDef) -> None:
        old = self._defs.get(tdef.name)
        if old is not None and old.origin != tdef.origin:
            raise RegistryError(
                f"transform '{tdef.name}' is registered twice: by {old.origin} and by {tdef.origin}"
            )
        self._defs[tdef.name] = tdef

    def get(self, name: str) -> TransformDef | None:
        return self._defs.get(name)

    def names(self) -> list[str]:
        return sorted(self._defs)

    def all(self) -> list[TransformDef]:
        return [self._defs[n] for n in self.names()]

    # -- discovery -------------------------------------------------------------------------------------
    def import_module(self, module: str, *, where: str = "") -> None:
        """Import a plugin module; whatever it raises becomes one RegistryError naming the module (exit 2)."""
        if module in self._loaded_modules:
            return
        try:
            importlib.import_module(module)
        except Exception as exc:  # a plugin may raise anything at import: SyntaxError, ZeroDivisionError...
            suffix = f" (named in {where})" if where else ""
            raise RegistryError(f"cannot import transform module '{module}'{suffix}: {_import_failure(exc)}"
                                ) from exc
        self._loaded_modules.add(module)

    def load_package(self, package: str) -> None:
        """Import a package and every module below it, so their decorators run."""
        self.import_module(package)
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=f"{package}."):
            self.import_module(info.name)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        for ep in importlib.metadata.entry_points(group=group):
            try:
                ep.load()
            except Exception as exc:  # an analyst's broken package must say which one
                raise RegistryError(
                    f"cannot load transform entry point '{ep.name} = {ep.value}' "
                    f"(group {group}): {exc}"
                ) from exc

    def discover(self, extra_modules: Iterable[str] = (), *, where: str = "") -> Registry:
        self.import_module("engine.builtins")
        self.load_package("transforms")
        for module in extra_modules:
            self.import_module(module, where=where)
        self.load_entry_points()
        return self


REGISTRY = Registry()


def transform(
    name: str,
    *,
    description: str,
    params_schema: Mapping[str, Any] | str | None = None,
    inputs: Iterable[str] | None = None,
    outputs: Iterable[str] = ("out",),
    registry: Registry | None = None,
    preflight: Callable[..., None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func(ctx, inputs, params)`` as transform ``name``.

    ``inputs`` names the DataFrames the transform expects (None accepts any); ``outputs`` names what it
    returns: one name means it returns a DataFrame, several mean it returns a dict of them. ``preflight(ctx,
    params)``, if given, runs before Spark starts and raises (e.g. TransformError) to refuse the run early.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        outs = tuple(outputs)
        if not outs:
            raise RegistryError(f"transform '{name}' declares no outputs")
        (registry or REGISTRY).register(
            TransformDef(
                name=name,
                func=func,
                description=description.strip().splitlines()[0] if description.strip() else "",
                params_schema=check_params_schema(name, load_schema(params_schema)),
                inputs=tuple(inputs) if inputs is not None else None,
                outputs=outs,
                origin=_origin_of(func),
                preflight=preflight,
            )
        )
        return func

    return decorate
