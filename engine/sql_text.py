"""What a SQL text reads, whether it is exactly one query, and how a parse error reads, with no Spark.

Kept apart from the spec loader: this reading of SQL needs nothing of a spec, and the executor and `validate`
use it too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import sqlglot
from sqlglot import exp as sql_exp
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.scope import traverse_scope


class SqlParseError(ValueError):
    """sqlglot could not read a SQL text (which Spark's own parser may still accept)."""


def sql_tables(sql: str) -> list[str]:
    """The tables a Spark SQL text reads by an unqualified name, lower-cased (Spark resolves names without
    regard to case), in order of first appearance.

    Not tables: CTE names (a name resolves to the nearest ``WITH`` that defines it, at any nesting level, as
    Spark does; inside its own definition a CTE's name is the table), qualified names (``db.table``,
    ``parquet.`/some/path```) and table-valued functions (``range(10)``). Parsed by sqlglot, Spark dialect, with
    no Spark. Raises SqlParseError with sqlglot's message when sqlglot cannot parse the text.
    """
    return sql_names(sql)[0]


def sql_names(sql: str) -> tuple[list[str], list[str]]:
    """(``sql_tables(sql)``, the CTE names the text defines)."""
    try:
        found: list[sql_exp.Table] = []
        ctes: list[str] = []
        for tree in sqlglot.parse(sql, read="spark"):
            if tree is None:
                continue
            tree = normalize_identifiers(tree, dialect="spark")
            ctes += [cte.alias_or_name for cte in tree.find_all(sql_exp.CTE)]
            found += [source for scope in traverse_scope(tree) for source in scope.sources.values()
                      if isinstance(source, sql_exp.Table) and isinstance(source.this, sql_exp.Identifier)
                      and not source.args.get("db") and not source.args.get("catalog")]
    except sqlglot.errors.ParseError as exc:
        raise SqlParseError(_parse_error_text(exc)) from None
    except Exception as exc:  # any sqlglot failure: the SQL may still be valid for Spark
        raise SqlParseError(" ".join(str(exc).split()) or type(exc).__name__) from None
    found.sort(key=lambda table: table.this.meta.get("start", 0))
    return list(dict.fromkeys(table.name for table in found)), list(dict.fromkeys(ctes))


def _parse_error_text(exc: sqlglot.errors.ParseError) -> str:
    """sqlglot's first error on one line, without its terminal underlining: what, where, near what."""
    if not exc.errors:
        return " ".join(str(exc).split())
    err = exc.errors[0]
    near = f" near '{err['highlight']}'" if err.get("highlight") else ""
    return f"{err.get('description') or 'cannot parse'} at SQL line {err.get('line')}, column {err.get('col')}{near}"


# How a query may start in Spark SQL; anything else (INSERT, CREATE, SET, CACHE, ...) is a statement that
# ``spark.sql`` runs at once, outside a step's staged and checked write.
QUERY_KEYWORDS = ("SELECT", "WITH", "FROM", "VALUES", "TABLE", "(")
_SQL_NOISE = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`", re.S)
_SQL_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[();]")
# what turns a WITH (or FROM) statement into a write: Spark's `WITH ... INSERT INTO`, `FROM t INSERT ...`
_WRITE_PAIRS = {("INSERT", "INTO"), ("INSERT", "OVERWRITE"), ("DELETE", "FROM"), ("MERGE", "INTO")}
_STATEMENT_NAMES = {"truncatetable": "TRUNCATE", "loaddata": "LOAD DATA", "multitableinserts": "INSERT"}
NOT_A_QUERY = ("a SQL step must be exactly one query (SELECT ..., WITH ... SELECT ..., VALUES ..., TABLE t): "
               "Spark runs any other statement at once, outside the step's staged and checked write")


def _sql_tokens(sql: str) -> list[tuple[str, int]]:
    """Upper-cased words, parentheses and semicolons of ``sql`` outside comments and quotes, each with its
    parenthesis depth."""
    out: list[tuple[str, int]] = []
    depth = 0
    for token in _SQL_TOKEN.findall(_SQL_NOISE.sub(" ", sql)):
        depth -= token == ")"
        out.append((token.upper(), depth))
        depth += token == "("
    return out


def first_sql_keyword(sql: str) -> str:
    """The first word of ``sql`` (upper case) after comments, or ``(``; '' when there is none."""
    tokens = _sql_tokens(sql)
    return tokens[0][0] if tokens else ""


def lexical_query_problem(sql: str) -> str | None:
    """What makes ``sql`` something else than one query, judged by its words alone (for SQL that sqlglot
    cannot parse): it must start like a query, hold one statement, and not be a ``WITH ... INSERT``."""
    tokens = _sql_tokens(sql)
    while tokens and tokens[-1][0] == ";":
        tokens.pop()
    if not tokens:
        return "holds no statement"
    if tokens[0][0] not in QUERY_KEYWORDS:
        keywords = ", ".join(QUERY_KEYWORDS[:-1])
        return f"starts with {tokens[0][0]}, not with {keywords} or '{QUERY_KEYWORDS[-1]}'"
    if any(token == ";" for token, _ in tokens):
        return "holds more than one statement"
    for (word, depth), (following, _) in zip(tokens, tokens[1:], strict=False):
        if depth == 0 and (word, following) in _WRITE_PAIRS:
            return _is_statement(word)
    return None


def _is_statement(kind: str) -> str:
    return f"is {'an' if kind[:1] in 'AEIOU' else 'a'} {kind} statement"


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot logs a warning for each statement it keeps as a bare command; the problem is reported instead."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def sql_statement_problem(sql: str) -> str | None:
    """What makes ``sql`` something else than exactly one query (None: it is one). Parsed by sqlglot (Spark
    dialect); SQL it cannot parse (Spark-only syntax) is judged by ``lexical_query_problem``."""
    try:
        with _quiet_sqlglot():
            trees = [tree for tree in sqlglot.parse(sql, read="spark") if tree is not None]
    except Exception:  # any sqlglot failure: Spark may still read it as a query
        return lexical_query_problem(sql)
    if len(trees) != 1:
        return f"holds {len(trees)} statements" if trees else "holds no statement"
    tree = trees[0]
    if isinstance(tree, sql_exp.Query | sql_exp.Values):
        return None
    if first_sql_keyword(sql) == "TABLE":  # sqlglot reads Spark's `TABLE t` as an alias
        return lexical_query_problem(sql)
    kind = _STATEMENT_NAMES.get(tree.key, tree.key.upper())
    if isinstance(tree, sql_exp.Command):
        kind = str(tree.this).upper()
    elif isinstance(tree, sql_exp.Create | sql_exp.Drop) and tree.args.get("kind"):
        kind = f"{kind} {str(tree.args['kind']).upper()}"
    return _is_statement(kind)
