"""Transform registry: plugins register by name with a params JSON Schema and a one-line description.

Discovery sources, in order: ``engine.builtins``, every module of the ``transforms`` package, module paths named
in the config or the spec, and the ``tickflow.transforms`` entry-point group (an analyst's installed package).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
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
from engine.params import describe_schema
from engine.suggest import did_you_mean

ENTRY_POINT_GROUP = "tickflow.transforms"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "transforms"
EMPTY_PARAMS_SCHEMA: Mapping[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}


class ModuleImportError(RegistryError):
    """A transform module (named in a spec or the config, or an entry point's) failed to import."""

    def __init__(self, message: str, module: str):
        self.module = module
        super().__init__(message)


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


def _place_of(func: Callable[..., Any]) -> str | None:
    """``file:line`` of the function's definition (its decorator's line), or None when it has no source."""
    try:
        return f"{inspect.getsourcefile(func) or '?'}:{inspect.getsourcelines(func)[1]}"
    except (OSError, TypeError):
        return None


def _origin_of(func: Callable[..., Any]) -> str:
    place = _place_of(func)
    return f"{func.__module__}.{func.__qualname__}" + (f" ({place})" if place else "")


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


def module_files(module: str) -> list[Path]:
    """The files of the plugin ``module`` belongs to: its top-level package's folders, or its single file.

    Found without importing anything but the top-level package's parents (none): [] when it cannot be told.
    """
    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except Exception:  # a broken __spec__ of an already imported module
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p).resolve() for p in spec.submodule_search_locations]
    return [Path(spec.origin).resolve()] if spec.origin and spec.has_location else []


def inside(filename: str, places: list[Path]) -> bool:
    """The file is one of ``places`` or inside one of them (folders)."""
    try:
        path = Path(filename).resolve()
    except (OSError, ValueError):
        return False
    return any(path == place or place in path.parents for place in places)


def _import_failure(exc: Exception, module: str = "") -> str:
    """The essence of an import failure: the message, and where in the plugin's code it happened.

    The place is the last frame inside the plugin's own files (``module``'s package): an error raised by the
    standard library (json's decoder reading the plugin's schema file) is caused by the plugin's line that
    called it.
    """
    if isinstance(exc, RegistryError):
        return str(exc)
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__} at {exc.filename}:{exc.lineno}: {exc.msg}"
    if isinstance(exc, ImportError) and (not module or exc.name is None or module == exc.name
                                         or module.startswith(f"{exc.name}.")):
        return str(exc)  # the module itself (or its package) is not there: no line of it to show
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen ")]
    own = module_files(module) if module else []
    mine = [f for f in frames if inside(f.filename, own)]
    frame = mine[-1] if mine else frames[-1] if frames else None
    at = f" at {frame.filename}:{frame.lineno}" if frame else ""
    if isinstance(exc, ImportError):  # e.g. a package the plugin needs is not installed in this Python
        return f"{exc}{at}"
    return f"{type(exc).__name__}{at}: {exc}"


def _source_files(module: str) -> list[Path] | None:
    """The source files of ``module`` (every .py of a package), or None when they cannot be found."""
    try:
        spec = importlib.util.find_spec(module)
    except Exception:  # finding a submodule imports its packages, which may raise anything
        return None
    if spec is None or not spec.origin or not spec.has_location:
        return None
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        return sorted(p for folder in spec.submodule_search_locations for p in Path(folder).rglob("*.py"))
    return [origin]


JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def _schema_error(exc: jsonschema.SchemaError) -> str:
    """What is wrong in a schema, in words (jsonschema's metaschema says 'not valid under any of the given schemas'
    for a misspelt type)."""
    path = list(exc.absolute_path)
    at = "/".join(map(str, path)) or "(top level)"
    if path and path[-1] == "type":
        bad = [t for t in (exc.instance if isinstance(exc.instance, list) else [exc.instance]) if t not in JSON_TYPES]
        if bad:
            shown = bad[0] if isinstance(bad[0], str) else repr(bad[0])
            return (f"invalid params schema at {at}: '{shown}' is not a JSON Schema type"
                    f"{did_you_mean(str(shown), JSON_TYPES)}; expected one of {', '.join(JSON_TYPES)} (or a list of "
                    "them)")
    return f"invalid params schema at {at}: {exc.message}"


def _default_problems(schema: Mapping[str, Any]) -> list[str]:
    """Each top-level property whose ``default`` fails the property's own schema: a step that leaves the param out
    would give the transform a value the schema refuses, and fail only once Spark runs it."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema)
    out = []
    for prop, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, Mapping) or "default" not in sub:
            continue
        default = sub["default"]
        if any(list(err.absolute_path)[:1] == [prop] for err in validator.iter_errors({prop: default})):
            expected = describe_schema(sub)
            out.append(f"default {json.dumps(default)} of '{prop}' does not match its own schema"
                       + (f" (expected {expected})" if expected else ""))
    return out


def _transform_submodules(package: str) -> list[str] | None:
    """The modules of ``package`` whose source uses ``@transform`` (None: ``package`` is not a package)."""
    try:
        spec = importlib.util.find_spec(package)
    except Exception:  # a broken package: its import already said so
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    found = []
    for info in pkgutil.iter_modules(list(spec.submodule_search_locations)):  # imports nothing
        path = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
        try:
            if not info.ispkg and "@transform" in path.read_text(errors="replace"):
                found.append(f"{package}.{info.name}")
        except OSError:
            continue
    return sorted(found)


def check_params_schema(name: str, schema: Mapping[str, Any], *, where: str | None = None) -> Mapping[str, Any]:
    """A params schema that is not valid JSON Schema would crash validation of every spec using it, and a default
    it refuses would reach the transform. ``where``: the decorated function's ``file:line``, named in the error."""
    at = f" at {where}" if where else ""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise RegistryError(f"transform '{name}'{at}: {_schema_error(exc)}") from None
    problems = _default_problems(schema)
    if problems:
        raise RegistryError(f"transform '{name}'{at}: {'; '.join(problems)}")
    return schema


@dataclass
class Registry:
    _defs: dict[str, TransformDef] = field(default_factory=dict)
    _loaded_modules: set[str] = field(default_factory=set)
    # module -> why its import failed (a RegistryError was raised for it): the transforms it would have
    # registered are unknown for that reason, not because a spec misspells them
    failed_imports: dict[str, str] = field(default_factory=dict)
    # module -> the transforms registered while it was imported (also those defined in other modules it imports)
    _registered_by: dict[str, list[str]] = field(default_factory=dict)

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

    def transforms_of(self, module: str) -> list[str]:
        """The transforms ``module`` (or a module below it) defines, or that registered while it was imported."""
        homes = {n: str(getattr(d.func, "__module__", "")) for n, d in self._defs.items()}
        own = {n for n, home in homes.items() if home == module or home.startswith(f"{module}.")}
        return sorted(own | set(self._registered_by.get(module, ())))

    def nothing_registered(self, module: str) -> str | None:
        """Why a module a spec names is not a transform module (None: it registered transforms)."""
        if self.transforms_of(module):
            return None
        candidates = _transform_submodules(module)
        if candidates is None:
            return f"module '{module}' registered no transforms (no @transform ran when it was imported)"
        if len(candidates) == 1:
            hint = f"; did you mean its module '{candidates[0]}'?"
        elif candidates:
            hint = f"; name the modules that define them, among: {', '.join(candidates)}"
        else:
            hint = "; name the module of the package that defines them"
        return f"module '{module}' registered no transforms: it is a package, whose modules are not imported{hint}"

    def failed_import_for(self, name: str, modules: Iterable[str] | None = None) -> str | None:
        """The module whose failed import explains why transform ``name`` is unknown, or None.

        ``modules``: the modules whose failure the caller reported (``ModuleImportError.module``; default: every
        import that failed last time it was tried). A module is blamed when its source mentions ``'name'``
        (its decorator never ran), or when its source cannot be read (a missing module may have held any name).
        None: the name is simply unknown (a typo), worth its own message.
        """
        if name in self._defs:
            return None
        quoted = (f"'{name}'", f'"{name}"')
        for module in (self.failed_imports if modules is None else modules):
            if module not in self.failed_imports:
                continue
            files = _source_files(module)
            if files is None:
                return module
            for path in files:
                try:
                    text = path.read_text(errors="replace")
                except OSError:
                    return module
                if any(q in text for q in quoted):
                    return module
        return None

    # -- discovery -------------------------------------------------------------------------------------
    def import_module(self, module: str, *, where: str = "") -> None:
        """Import a plugin module; whatever it raises becomes one RegistryError naming the module (exit 2)."""
        if module in self._loaded_modules:
            return
        before = set(self._defs)
        try:
            importlib.import_module(module)
        except Exception as exc:  # a plugin may raise anything at import: SyntaxError, ZeroDivisionError...
            suffix = f" (named in {where})" if where else ""
            why = _import_failure(exc, module)
            self.failed_imports[module] = why
            raise ModuleImportError(f"cannot import transform module '{module}'{suffix}: {why}", module) from exc
        self.failed_imports.pop(module, None)
        self._loaded_modules.add(module)
        self._registered_by[module] = sorted(set(self._defs) - before)

    def load_package(self, package: str) -> None:
        """Import a package and every module below it, so their decorators run."""
        self.import_module(package)
        pkg = importlib.import_module(package)
        for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=f"{package}."):
            self.import_module(info.name)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import every installed package's transform module; the first that fails stops discovery (exit 2),
        for every spec: a pipeline must not run while a registered name may mean something else than meant."""
        for ep in importlib.metadata.entry_points(group=group):
            try:
                ep.load()
            except Exception as exc:  # an analyst's broken package must say which one, and where
                why = _import_failure(exc, ep.module)
                self.failed_imports[ep.module] = why
                raise ModuleImportError(f"cannot load transform entry point '{ep.name} = {ep.value}' "
                                        f"(group {group}): {why}", ep.module) from exc

    def discover(self, extra_modules: Iterable[str] = (), *, where: str = "") -> Registry:
        self.import_module("engine.builtins")
        self.load_package("transforms")
        for module in extra_modules:
            self.import_module(module, where=where)
        self.load_entry_points()
        return self


REGISTRY = Registry()
SQL_KIND = "sql"  # what plan, reports and the tracker show for a SQL step: no transform may take the name


def _names(name: str, what: str, value: Any) -> tuple[str, ...]:
    """The ``inputs=``/``outputs=`` of a transform as names: a string would register each of its letters."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise RegistryError(f"transform '{name}': {what}= must be a list of names (e.g. {what}=[{value!r}]), "
                            f"got {type(value).__name__} {value!r}")
    names = tuple(value)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise RegistryError(f"transform '{name}': {what}= holds {', '.join(map(repr, bad))}; expected names "
                            "(non-empty strings)")
    if len(set(names)) != len(names):
        raise RegistryError(f"transform '{name}': {what}= names {', '.join(names)}: each name once")
    return names


def _check_signature(name: str, func: Callable[..., Any]) -> None:
    """The engine calls ``func(ctx, inputs, params)``: a function that cannot take them fails only at run time,
    after Spark's start."""
    if not callable(func):
        raise RegistryError(f"transform '{name}': @transform decorates a function, got {type(func).__name__}")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # a builtin or C callable without a signature: nothing to check
    try:
        signature.bind(None, {}, {})
    except TypeError as exc:
        shown = f"{getattr(func, '__name__', 'func')}{signature}"
        raise RegistryError(f"transform '{name}': {_origin_of(func)} cannot be called as func(ctx, inputs, "
                            f"params) ({exc}); its signature is {shown}") from None


def _params_schema(name: str, schema: Mapping[str, Any] | str | None, func: Callable[..., Any]
                   ) -> Mapping[str, Any]:
    """The checked params schema of transform ``name``; a refusal names the plugin's line that declares it."""
    place = _place_of(func)
    try:
        loaded = load_schema(schema)
    except RegistryError as exc:
        raise RegistryError(f"transform '{name}'" + (f" at {place}" if place else "") + f": {exc}") from None
    return check_params_schema(name, loaded, where=place)


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
        if name == SQL_KIND:
            raise RegistryError(f"transform name '{name}' is reserved: it is the kind of a `sql:` step "
                                f"({_origin_of(func)})")
        ins = None if inputs is None else _names(name, "inputs", inputs)
        outs = _names(name, "outputs", outputs)
        if not outs:
            raise RegistryError(f"transform '{name}' declares no outputs")
        _check_signature(name, func)
        (registry or REGISTRY).register(
            TransformDef(
                name=name,
                func=func,
                description=description.strip().splitlines()[0] if description.strip() else "",
                params_schema=_params_schema(name, params_schema, func),
                inputs=ins,
                outputs=outs,
                origin=_origin_of(func),
                preflight=preflight,
            )
        )
        return func

    return decorate
