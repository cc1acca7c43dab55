"""INI configuration as operations write it, with environment overrides and embedded defaults.

Sections: [postgres] host, port, database, user, password, job_tracker_table_name;
[azure] storage_account, container, access_key, connection_string, endpoint;
[spark] master, plus any ``spark.*`` key (or ``conf = k=v, k=v``);
[storage] root, raw_root, mode (staged|direct), cache_dir, cache_keep_days (Azure staged mode: local copies
unused for that many days are removed; default 7);
[tracker] sqlite_path, lease_seconds, job_tracker_table_name (the SQLite tracker's table; ``table`` is an
alias), used when there is no [postgres];
[pipeline] modules (extra transform modules, comma separated), log_dir, log_keep_days (run logs older than
that are removed when a run starts; default 30, 0 keeps them all), parallel_steps (how many steps that do not
depend on each other may run at once; default 2, 1 runs them one after another), stop_grace_seconds (after
Ctrl-C or SIGTERM, how long a step still running its own non-Spark code is waited for; default 30), holidays
(exchange holidays, comma-separated YYYY-MM-DD: not trading days for ``prev_date`` and for --start/--end without
a catch-up source).

Environment: ``TICKFLOW_<SECTION>_<KEY>`` overrides any value (e.g. TICKFLOW_POSTGRES_PASSWORD) and
``TICKFLOW_CONFIG`` names the file when ``--config`` is not given. Without any config, everything is local:
./warehouse, ./raw, an SQLite tracker and ``local[*]`` Spark.
"""

from __future__ import annotations

import configparser
import datetime as dt
import difflib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from engine.errors import ConfigError

ENV_PREFIX = "TICKFLOW_"
SECRET_KEYS = frozenset({"password", "access_key", "connection_string", "account_key", "sas_token", "dsn", "pwd"})
# Any other key whose name says it holds a credential (spark.hadoop.fs.azure.account.key.<host>, ...sas.token...,
# spark.hadoop.myservice.api.key). The one notion of a secret key name: config errors hide such values, secrets()
# masks them, and engine.spark builds Spark's spark.redaction.regex from it (a Java regex as well).
SECRET_NAME_PATTERN = (r"password|passwd|secret|token|credential|connection.?string|dsn|sas|"
                       r"(?:access|account|api).?key")
_SECRET_NAME = re.compile(SECRET_NAME_PATTERN, re.IGNORECASE)
# A value under a secret key name that is a switch or a number (spark.security.credentials.hive.enabled = true)
# is no secret: masking every "true" in the logs would only hide what they say.
_PLAIN_SETTING = re.compile(r"(?i)true|false|yes|no|on|off|none|[0-9.]+[a-z]{0,2}")
# user:password@ in a URI (postgresql://etl:pw@db/md), and key=value pairs (host=db password=pw, ?password=pw)
_URI_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(?P<secret>\S*)@")
_PAIR = re.compile(r"(?P<head>(?P<key>[A-Za-z_][\w.-]*)\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&;,]+)")
# The master URLs Spark accepts (SparkContext.createTaskScheduler, SparkSubmit)
_MASTER = re.compile(r"local|local\[(?:[1-9][0-9]*|\*)(?:\s*,\s*[0-9]+)?\]"
                     r"|local-cluster\[\s*[1-9][0-9]*\s*,\s*[1-9][0-9]*\s*,\s*[1-9][0-9]*\s*\]"
                     r"|yarn|(?:spark|k8s|mesos)://\S+")
MASTER_FORMS = ("local, local[N], local[*], local[N,F], local[*,F], local-cluster[N,C,M], spark://HOST:PORT, yarn, "
                "k8s://HOST:PORT or mesos://HOST:PORT")
# What a key a person typed looks like; anything else (a wrapped secret value read as a key) is never shown
_KEY_LIKE = re.compile(r"[A-Za-z0-9_.-]{1,40}|spark\.[A-Za-z0-9_.-]{1,200}")  # Spark's own can be long
HIDDEN_LINE = "a line that is not 'key = value' (not shown: it may be a wrapped secret value; write a value on " \
              "the line of its key)"
KNOWN_SECTIONS = ("postgres", "azure", "spark", "storage", "tracker", "pipeline")


@dataclass(frozen=True)
class PostgresConfig:
    host: str = "127.0.0.1"
    port: int = 5432
    database: str = "postgres"
    user: str = "postgres"
    password: str = field(default="", repr=False)
    job_tracker_table_name: str = "job_tracker"
    connect_timeout: int = 5
    # seconds any one round trip to the server may take (a statement, with any lock wait); a frozen server
    # (stopped processes, a hung host whose kernel still acknowledges packets) is then an error, not a hang
    statement_timeout: int = 30

    def describe(self) -> str:
        """Where we connect, never with the password (a DSN or URI put into host or database may hold one)."""
        return (f"host={scrub_credentials(self.host)} port={self.port} database={scrub_credentials(self.database)} "
                f"user={scrub_credentials(self.user)}")

    def embedded_secrets(self) -> list[str]:
        """Passwords inside a DSN or URI given as host, database or user: masked like the password itself."""
        return [s for value in (self.host, self.database, self.user) for s in embedded_secrets(value)]


@dataclass(frozen=True)
class AzureConfig:
    storage_account: str = ""
    container: str = ""
    access_key: str = field(default="", repr=False)
    connection_string: str = field(default="", repr=False)
    endpoint: str = ""  # e.g. http://127.0.0.1:10000/devstoreaccount1 for Azurite

    def describe(self) -> str:
        return (f"account={self.storage_account or '?'} container={self.container or '?'} "
                f"endpoint={self.endpoint or 'default'}")


@dataclass(frozen=True)
class SparkConfig:
    master: str = "local[*]"
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageConfig:
    root: str = "warehouse"
    raw_root: str = "raw"
    mode: str = "staged"  # for az:// roots: staged (download/upload) or direct (abfss:// to Spark)
    cache_dir: str = ".tickflow/cache"
    cache_keep_days: int = 7


@dataclass(frozen=True)
class TrackerConfig:
    """The embedded SQLite tracker (without [postgres]); ``table`` is from [tracker] job_tracker_table_name (or
    its alias ``table``)."""

    sqlite_path: str = ".tickflow/job_tracker.sqlite"
    lease_seconds: int = 180
    table: str = "job_tracker"


@dataclass(frozen=True)
class Config:
    postgres: PostgresConfig | None = None
    azure: AzureConfig | None = None
    spark: SparkConfig = field(default_factory=SparkConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    modules: tuple[str, ...] = ()
    log_dir: str = ".tickflow/logs"
    log_keep_days: int = 30
    parallel_steps: int = 2
    stop_grace_seconds: int = 30  # after Ctrl-C/SIGTERM, how long a step's own (non-Spark) code may run on
    holidays: tuple[dt.date, ...] = ()  # exchange holidays: not trading days (prev_date, --start/--end)
    source: str = "(embedded defaults)"
    base_dir: Path = field(default_factory=Path.cwd)

    def secrets(self) -> list[str]:
        """Every secret value configured (also the key inside a connection string), for masking."""
        found: list[str] = []
        if self.postgres:
            found += [self.postgres.password, *self.postgres.embedded_secrets()]
        if self.azure:
            from engine.storage.azure_errors import azure_secrets  # the Azure SDK only when [azure] is set

            found += azure_secrets(self.azure)
        found += [value for key, value in self.spark.conf.items()
                  if is_secret_key(key) and not _PLAIN_SETTING.fullmatch(value.strip())]
        out: list[str] = []
        for secret in (s.strip() for s in found):  # a value wrapped onto its own INI line starts with a newline
            if secret and secret not in out:
                out.append(secret)
        return out

    def template_values(self) -> dict[str, dict[str, str]]:
        """Config values a spec may use as ``{{ config.storage.root }}``; secrets are left out."""
        return {
            "storage": {"root": self.storage.root, "raw_root": self.storage.raw_root, "mode": self.storage.mode},
            "spark": {"master": self.spark.master},
        }


# A comment after a value (``mode = staged ; or direct``) is not a comment in this INI dialect: the reader would
# take it as part of the value, silently so for paths and passwords. Such values are refused instead.
_INLINE_COMMENT = re.compile(r"\s[;#]")


def is_secret_key(key: str) -> bool:
    """True for a key whose value is a credential: never shown in a message."""
    return key.lower() in SECRET_KEYS or bool(_SECRET_NAME.search(key))


def _credentials(value: str) -> Iterator[re.Match[str]]:
    """The passwords written into a URI's user:password@ or a secret key=value pair of a DSN or query string."""
    yield from _URI_PASSWORD.finditer(value)
    yield from (m for m in _PAIR.finditer(value) if is_secret_key(m.group("key")))


def scrub_credentials(value: str) -> str:
    """``value`` with every password inside it (``user:***@``, ``password=***``) replaced, for messages."""
    spans = sorted(m.span("secret") for m in _credentials(value))
    out, done = [], 0
    for start, end in spans:
        if start >= done:
            out += [value[done:start], "***"]
        done = max(done, end)
    return "".join(out) + value[done:]


def embedded_secrets(value: str) -> list[str]:
    """The passwords inside a URI or DSN, as written and decoded (%40 is '@', quotes removed)."""
    out: list[str] = []
    for match in _credentials(value):
        secret = match.group("secret")
        for form in (secret, secret[1:-1] if secret[:1] == "'" else unquote(secret)):
            if form and form not in out:
                out.append(form)
    return out


def looks_like_key(key: str) -> bool:
    """True for a key name a person would type; anything else may be a secret value wrapped onto its own line
    (``access_key =`` then the key on the next line reads as a key named after the secret) and is never shown."""
    return bool(_KEY_LIKE.fullmatch(key))


def _reject_inline_comments(path: Path, sections: Mapping[str, Mapping[str, str]],
                             wrapped: set[tuple[str, str]]) -> None:
    for section, values in sections.items():
        for key, value in values.items():
            if not looks_like_key(key):
                continue  # refused without its text as an unknown key
            if _INLINE_COMMENT.search(value):
                raise ConfigError(
                    f"{path}: [{section}] {key}: {_commented(section, key, value, wrapped)} contains ' ;' or ' #', "
                    f"which looks like a comment after the value; comments go on their own line (if the value "
                    f"really holds it, set {ENV_PREFIX}{section.upper()}_{key.upper()} in the environment instead)")


def _commented(section: str, key: str, value: str, wrapped: set[tuple[str, str]]) -> str:
    """The value holding a comment sign, as a message may show it: a secret's (or one that may be part of a
    wrapped secret) not at all, a ``[spark] conf`` list's by the number and key of the entry (values of Spark
    settings may be credentials)."""
    if is_secret_key(key) or (section, key) in wrapped:
        return "its value"
    if section == "spark" and key == "conf":
        entries = [(n, item) for n, item in enumerate(_split_list(value), start=1) if _INLINE_COMMENT.search(item)]
        if not entries:  # the sign starts an entry of its own
            return "its value"
        n, item = entries[0]
        name = item.split("=", 1)[0].strip() if "=" in item else ""
        return f"the value of entry {n}{f' ({name})' if looks_like_key(name) else ''}"
    return f"'{value}'"


# Folder and file settings; a relative one written in a config file means relative to that file's folder.
PATH_KEYS = (("storage", "root"), ("storage", "raw_root"), ("storage", "cache_dir"), ("tracker", "sqlite_path"),
             ("pipeline", "log_dir"))
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DSN_PAIR = re.compile(r"(?:^|\s)(?:host|hostaddr|port|dbname|user|password|sslmode)\s*=", re.I)


def _anchor_paths(sections: dict[str, dict[str, str]], folder: Path) -> dict[str, dict[str, str]]:
    """The file's relative paths made absolute against its folder. Settings the file leaves out keep their
    defaults, relative to the working directory like everything else (a config holding only [postgres] in
    /etc/tickflow must not move the warehouse there); environment values are relative to it as well."""
    for section, key in PATH_KEYS:
        value = sections.get(section, {}).get(key)
        if value and not _SCHEME.match(value) and not value.startswith("~") and not Path(value).is_absolute():
            sections[section][key] = str(folder / value)
    return sections


def _key_name(key: str) -> str:
    """Our own keys are case-insensitive; spark.* keys keep their case (spark.eventLog.enabled)."""
    return key if key.lower().startswith("spark.") else key.lower()


@dataclass
class _Lines:
    """Where the INI reader found what, for messages that must point at a line without showing it."""

    keys: dict[tuple[str, str], int] = field(default_factory=dict)  # (section, key) -> line number
    section_of: dict[int, str] = field(default_factory=dict)  # line number -> section
    after_empty: set[tuple[str, str]] = field(default_factory=set)  # keys right after a key left empty


def _line_map(lines: list[str]) -> _Lines:
    found = _Lines()
    keys, section_of = found.keys, found.section_of
    section, in_option, empty_before = "", False, False
    for number, line in enumerate(lines, start=1):
        section_of[number] = section
        text = line.strip()
        if not text or text.startswith(("#", ";")):
            continue
        if line[:1].isspace() and in_option:
            empty_before = False  # the continuation of a value: it was not left empty
            continue
        header = configparser.ConfigParser.SECTCRE.match(text)
        if header:
            section, in_option, empty_before = header.group("header"), False, False
            section_of[number] = section
            continue
        option = configparser.ConfigParser.OPTCRE.match(text)
        in_option = option is not None
        if option:
            key = (section, _key_name(option.group("option").rstrip()))
            keys.setdefault(key, number)
            if empty_before:  # ``password =`` then ``abc=def``: the value wrapped, not a key named abc
                found.after_empty.add(key)
            empty_before = not option.group("value").strip()
    return found


def _parse_problem(exc: configparser.Error, section_of: Mapping[int, str]) -> str:
    """A reader error in words that never show the offending line (it may be a wrapped secret value)."""
    def at(number: int) -> str:
        section = section_of.get(number, "")
        return f"[{section}] line {number}" if section else f"line {number}"

    if isinstance(exc, configparser.MissingSectionHeaderError):
        return (f"line {exc.lineno}: text before the first [section] header (not shown: it may be a secret "
                f"value)")
    if isinstance(exc, configparser.ParsingError):
        return "; ".join(f"{at(number)}: {HIDDEN_LINE}" for number, _line in exc.errors)
    if isinstance(exc, configparser.DuplicateOptionError):
        what = f"key '{exc.option}' is given twice" if looks_like_key(exc.option) else HIDDEN_LINE
        return f"[{exc.section}] line {exc.lineno}: {what}"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"line {exc.lineno}: section [{exc.section}] is given twice"
    return str(exc).replace("\n", " ")


def _read_ini(path: Path) -> tuple[dict[str, dict[str, str]], _Lines]:
    """The file's sections, and the line of each key (for messages)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # Spark keys are case-sensitive
    text = _read_text(path)
    lines = _line_map(text.splitlines())
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"config file {path} is not valid INI: {_parse_problem(exc, lines.section_of)}") from None
    sections = {section: {_key_name(k): v for k, v in parser.items(section)} for section in parser.sections()}
    _reject_inline_comments(path, sections, lines.after_empty)
    return sections, lines


def _read_text(path: Path) -> str:
    """The file's text; a folder, an unreadable file or one not in UTF-8 is a ConfigError, not a traceback."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory; give the INI file in it") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # the byte is not shown: it may be part of a password
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"config file {path} is not UTF-8 text: line {line} (byte offset {exc.start}) holds a "
                          f"byte that is not UTF-8 (e.g. Latin-1); save the file as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it


# TICKFLOW_* variables that are not config overrides (the config file, the JVM class archive's folder, the
# wrappers' Python, the test suite's settings)
OTHER_ENV = ("CONFIG", "CACHE_DIR", "PYTHON")


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        rest = key[len(ENV_PREFIX):].lower()
        for section in KNOWN_SECTIONS:
            if rest.startswith(section + "_"):
                out.setdefault(section, {})[rest[len(section) + 1:]] = value
                break
        else:
            _refuse_misspelt_section(key)
    return out


def _refuse_misspelt_section(name: str) -> None:
    """``TICKFLOW_STORGE_ROOT`` would be ignored without a word, and the run would use the default root: a name
    whose section part is close to a known section is refused (other TICKFLOW_* names may be anyone's)."""
    rest = name[len(ENV_PREFIX):]
    if rest in OTHER_ENV or rest.startswith("TEST_") or "_" not in rest:
        return
    head, _, tail = rest.partition("_")
    close = difflib.get_close_matches(head.lower(), KNOWN_SECTIONS, n=1, cutoff=0.75)
    if close:
        raise ConfigError(f"environment {name}: no config section [{head.lower()}]; did you mean "
                          f"{ENV_PREFIX}{close[0].upper()}_{tail}?")


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


def _int(section: str, key: str, value: str, where: Callable[..., str]) -> int:
    try:
        return int(value)
    except ValueError:
        got = " (its value is not shown)" if is_secret_key(key) else f", got '{value}'"
        raise ConfigError(f"{where(section, key)}: [{section}] {key} must be an integer{got}") from None


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.replace("\n", ",").split(",") if v.strip())


def load_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    path = path or env.get(ENV_PREFIX + "CONFIG") or None
    sections: dict[str, dict[str, str]] = {}
    lines = _Lines()
    source = "(embedded defaults)"
    if path:
        p = Path(path)
        ini, lines = _read_ini(p)
        sections = _anchor_paths(ini, p.resolve().parent)
        source = str(p)
    from_env: set[tuple[str, str]] = set()
    for section, values in _env_overrides(env).items():
        sections.setdefault(section, {}).update(values)
        from_env |= {(section, key) for key in values}
    unknown = sorted(set(sections) - set(KNOWN_SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join('[' + u + ']' for u in unknown)}; "
                          f"expected some of {', '.join('[' + s + ']' for s in KNOWN_SECTIONS)}")

    def where(section: str, *keys: str) -> str:
        """Where a value came from, for error messages: the environment variable, else the file."""
        env_names = [_env_name(section, k) for k in keys if (section, k) in from_env]
        return f"environment {', '.join(env_names)}" if env_names else source

    def reject_unknown(section: str, values: Mapping[str, str], allowed: set[str], expected: str = "") -> None:
        _reject_unknown(section, values, allowed, where, from_env, lines, expected)

    pg = None
    if "postgres" in sections:
        s = sections["postgres"]
        allowed = {"host", "port", "database", "dbname", "user", "password", "job_tracker_table_name",
                   "connect_timeout", "statement_timeout"}
        reject_unknown("postgres", s, allowed)
        pg = PostgresConfig(
            host=s.get("host", "127.0.0.1"),
            port=_int("postgres", "port", s.get("port", "5432"), where),
            database=s.get("database", s.get("dbname", "postgres")),
            user=s.get("user", "postgres"),
            password=s.get("password", ""),
            job_tracker_table_name=_table_name("postgres", "job_tracker_table_name",
                                               s.get("job_tracker_table_name", "job_tracker"), where),
            connect_timeout=_int("postgres", "connect_timeout", s.get("connect_timeout", "5"), where),
            statement_timeout=_int("postgres", "statement_timeout",
                                   s.get("statement_timeout", str(PostgresConfig.statement_timeout)), where),
        )
        # libpq reads a connect_timeout of 0 as "wait for ever": a tracker that does not answer would hang the run
        for key, seconds in (("connect_timeout", pg.connect_timeout), ("statement_timeout", pg.statement_timeout)):
            if seconds < 1:
                raise ConfigError(f"{where('postgres', key)}: [postgres] {key} must be at least 1 (seconds), "
                                  f"got {seconds}")
        for key in ("host", "database", "dbname", "user"):
            value = s.get(key, "")
            # the driver passes it on as a plain name, which never connects; PostgreSQL then echoes it cut to 63
            # characters, and a password inside reached the console past the masking of the whole secret
            if _SCHEME.match(value.strip()) or _DSN_PAIR.search(value) or any(_credentials(value)):
                raise ConfigError(f"{where('postgres', key)}: [postgres] {key} holds a connection string "
                                  f"('{scrub_credentials(value)}'); give host, port, database, user and password "
                                  f"as keys of their own")
    az = None
    if "azure" in sections:
        s = sections["azure"]
        reject_unknown("azure", s, {"storage_account", "container", "access_key", "connection_string",
                                    "endpoint"})
        az = AzureConfig(**{k: s[k] for k in s})
    spark_sec = dict(sections.get("spark", {}))
    master = spark_sec.pop("master", None)
    conf = _spark_conf(spark_sec.pop("conf", ""), where)
    reject_unknown("spark", {k: v for k, v in spark_sec.items() if not k.startswith("spark.")}, set(),
                   "master, conf or spark.* settings")
    conf.update(spark_sec)
    master = _master(master, conf.pop("spark.master", None), ("spark", "master") in from_env, where)
    st = sections.get("storage", {})
    reject_unknown("storage", st, {"root", "raw_root", "mode", "cache_dir", "cache_keep_days"})
    _reject_empty_paths(sections, where)
    if "cache_keep_days" in st:
        st = {**st, "cache_keep_days": _int("storage", "cache_keep_days", st["cache_keep_days"], where)}
    storage = StorageConfig(**st)
    if storage.cache_keep_days < 1:
        # a shorter horizon could remove the inputs another process's running job is reading
        raise ConfigError(f"{where('storage', 'cache_keep_days')}: [storage] cache_keep_days must be at least 1, "
                          f"got {storage.cache_keep_days}")
    if storage.mode not in ("staged", "direct"):
        raise ConfigError(f"{where('storage', 'mode')}: [storage] mode must be 'staged' or 'direct', "
                          f"got '{storage.mode}'")
    tr = sections.get("tracker", {})
    reject_unknown("tracker", tr, {"sqlite_path", "lease_seconds", "job_tracker_table_name", "table"})
    tracker = TrackerConfig(
        sqlite_path=tr.get("sqlite_path", TrackerConfig.sqlite_path),
        lease_seconds=_int("tracker", "lease_seconds", tr.get("lease_seconds", "180"), where),
        table=_tracker_table(tr, from_env, where),
    )
    if tracker.lease_seconds < 2:
        raise ConfigError(f"{where('tracker', 'lease_seconds')}: [tracker] lease_seconds must be at least 2")
    pl = sections.get("pipeline", {})
    reject_unknown("pipeline", pl, {"modules", "log_dir", "log_keep_days", "parallel_steps", "stop_grace_seconds",
                                    "holidays"})
    log_keep_days = _int("pipeline", "log_keep_days", pl.get("log_keep_days", str(Config.log_keep_days)), where)
    if log_keep_days < 0:
        raise ConfigError(f"{where('pipeline', 'log_keep_days')}: [pipeline] log_keep_days must be 0 (keep every "
                          f"log) or more, got {log_keep_days}")
    parallel_steps = _int("pipeline", "parallel_steps", pl.get("parallel_steps", str(Config.parallel_steps)), where)
    if parallel_steps < 1:
        raise ConfigError(f"{where('pipeline', 'parallel_steps')}: [pipeline] parallel_steps must be at least 1, "
                          f"got {parallel_steps}")
    grace = _int("pipeline", "stop_grace_seconds", pl.get("stop_grace_seconds", str(Config.stop_grace_seconds)),
                 where)
    if grace < 0:
        raise ConfigError(f"{where('pipeline', 'stop_grace_seconds')}: [pipeline] stop_grace_seconds must be 0 or "
                          f"more, got {grace}")
    return Config(
        postgres=pg, azure=az, spark=SparkConfig(master=master, conf=conf), storage=storage,
        tracker=tracker, modules=_split_list(pl.get("modules", "")),
        log_dir=pl.get("log_dir", ".tickflow/logs"), log_keep_days=log_keep_days, parallel_steps=parallel_steps,
        stop_grace_seconds=grace,
        holidays=_dates("pipeline", "holidays", pl.get("holidays", ""), where), source=source,
        base_dir=Path.cwd(),
    )


def _spark_conf(value: str, where: Callable[..., str]) -> dict[str, str]:
    """``[spark] conf = k=v, k=v``. An entry is named by its number, never by its text: a value split at a comma
    inside it, or wrapped onto its own line, may be a credential."""
    conf: dict[str, str] = {}
    for n, item in enumerate(_split_list(value), start=1):
        key, sep, setting = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{where('spark', 'conf')}: [spark] conf entries must be key=value, got entry {n} "
                              f"(not shown: it may be a secret value)")
        conf[key.strip()] = setting.strip()
    return conf


def _master(master: str | None, setting: str | None, master_from_env: bool, where: Callable[..., str]) -> str:
    """The Spark master from ``[spark] master`` or a ``spark.master`` setting, checked now: a misspelt one would
    otherwise surface only as the JVM failing to start. Given both, they must agree unless ``master`` comes from
    the environment (which overrides the file)."""
    if master is not None and setting is not None and setting != master and not master_from_env:
        raise ConfigError(f"{where('spark', 'master')}: [spark] master '{scrub_credentials(master)}' and "
                          f"spark.master '{scrub_credentials(setting)}' disagree; keep one of them")
    key = "spark.master" if master is None and setting is not None else "master"
    master = master if master is not None else setting if setting is not None else SparkConfig.master
    if not _MASTER.fullmatch(master):
        raise ConfigError(f"{where('spark', key)}: [spark] {key} '{scrub_credentials(master)}' is not a Spark "
                          f"master URL; expected {MASTER_FORMS}")
    return master


def _reject_empty_paths(sections: Mapping[str, Mapping[str, str]], where: Callable[..., str]) -> None:
    """A folder or file setting left empty (``root =``) would silently mean the working directory."""
    for section, key in PATH_KEYS:
        if sections.get(section, {}).get(key, None) == "":
            raise ConfigError(f"{where(section, key)}: [{section}] {key} is empty; give a path (or leave the key "
                              f"out for its default)")


def _dates(section: str, key: str, value: str, where: Callable[..., str]) -> tuple[dt.date, ...]:
    """A comma-separated list of YYYY-MM-DD dates, sorted; ConfigError naming the first that is not one."""
    out = set()
    for item in _split_list(value):
        try:
            out.add(dt.date.fromisoformat(item))
        except ValueError:
            raise ConfigError(f"{where(section, key)}: [{section}] {key}: '{item}' is not a YYYY-MM-DD date") from None
    return tuple(sorted(out))


def _table_name(section: str, key: str, value: str, where: Callable[..., str]) -> str:
    """A tracker table name the tracker will accept, else ConfigError naming the key and where it was set."""
    from engine.tracker.base import InvalidTableName, validate_table_name

    try:
        validate_table_name(value)
    except InvalidTableName as exc:
        raise ConfigError(f"{where(section, key)}: [{section}] {key}: {exc}") from None
    return value


def _tracker_table(tr: Mapping[str, str], from_env: set[tuple[str, str]], where: Callable[..., str]) -> str:
    """[tracker] job_tracker_table_name, or its alias ``table``. Given both with different names: ConfigError,
    unless one comes from the environment, which overrides the file as for any other key."""
    name, alias = tr.get("job_tracker_table_name"), tr.get("table")
    for key, value in (("job_tracker_table_name", name), ("table", alias)):
        if value is not None and not value.strip():  # as PostgreSQL's table setting: not silently the default
            raise ConfigError(f"{where('tracker', key)}: [tracker] {key} is empty; leave it out for the default "
                              f"'{TrackerConfig.table}'")
    for key, value in (("job_tracker_table_name", name), ("table", alias)):
        if value is not None:
            _table_name("tracker", key, value, where)
    if name is None or alias is None or name == alias:
        return name or alias or TrackerConfig.table
    name_env, alias_env = ("tracker", "job_tracker_table_name") in from_env, ("tracker", "table") in from_env
    if name_env != alias_env:
        return name if name_env else alias
    raise ConfigError(f"{where('tracker', 'job_tracker_table_name', 'table')}: [tracker] job_tracker_table_name "
                      f"'{name}' and table '{alias}' (an older name of the same setting) disagree; keep only "
                      f"job_tracker_table_name")


def _reject_unknown(section: str, values: Mapping[str, str], allowed: set[str], where: Callable[..., str],
                    from_env: set[tuple[str, str]], lines: _Lines, expected: str = "") -> None:
    """Unknown keys are named only when they look like a key a person typed (or come from an environment
    variable, whose name is no secret): anything else, or a key right after one left empty (``password =``), may
    be a secret value wrapped onto its own line."""
    extra = sorted(set(values) - allowed)
    shown = [k for k in extra if (section, k) in from_env
             or (looks_like_key(k) and (section, k) not in lines.after_empty)]
    hidden = [k for k in extra if k not in shown]
    if not extra:
        return
    problems = []
    if shown:
        problems.append(f"unknown key(s) {', '.join(shown)}; expected "
                        f"{expected or 'some of ' + ', '.join(sorted(allowed))}")
    numbers = sorted(lines.keys[(section, k)] for k in hidden if (section, k) in lines.keys)
    if numbers:
        problems += [f"line {n}: {HIDDEN_LINE}" for n in numbers]
    elif hidden:
        problems.append(HIDDEN_LINE)
    raise ConfigError(f"{where(section, *shown)}: [{section}] {'; '.join(problems)}")
