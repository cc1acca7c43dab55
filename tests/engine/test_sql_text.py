"""SQL read as text, with no Spark: the tables a SQL step reads, and whether a text is exactly one query."""

from __future__ import annotations

import pytest

from engine.sql_text import lexical_query_problem, sql_statement_problem, sql_tables


@pytest.mark.parametrize("sql,tables", [
    ("SELECT * FROM trades", ["trades"]),
    ("FROM Trades SELECT *", ["trades"]),  # Spark resolves names whatever their case
    ("SELECT * FROM `Trades` t JOIN quotes q ON t.symbol = q.symbol JOIN trades USING (symbol)", ["trades", "quotes"]),
    # CTE names at any level are not tables, and a CTE shadows a table of its name where it is visible
    ("WITH best AS (SELECT * FROM shares) SELECT * FROM best JOIN ma USING (symbol)", ["shares", "ma"]),
    ("WITH Best AS (SELECT 1 AS a) SELECT * FROM best", []),
    ("WITH a AS (SELECT * FROM t), b AS (SELECT * FROM a) SELECT * FROM b WHERE x IN (SELECT x FROM a)", ["t"]),
    ("SELECT * FROM (WITH inner_cte AS (SELECT * FROM f) SELECT * FROM inner_cte) q", ["f"]),
    ("SELECT * FROM a WHERE id IN (WITH c AS (SELECT id FROM b) SELECT id FROM c) AND EXISTS "
     "(SELECT 1 FROM d WHERE d.id = a.id)", ["a", "b", "d"]),
    ("SELECT * FROM (WITH c AS (SELECT 1 AS id) SELECT * FROM c) x JOIN c USING (id)", ["c"]),
    ("WITH x AS (SELECT * FROM x) SELECT * FROM x", ["x"]),  # Spark: inside its definition, x is the table
    ("SELECT (SELECT max(x) FROM d) AS m FROM (SELECT * FROM e) s", ["d", "e"]),
    # qualified names, files, table-valued functions, VALUES and hints are not step references
    ("SELECT * FROM parquet.`/some/path` JOIN db.trades USING (id) JOIN global_temp.v USING (id)", []),
    ("SELECT * FROM range(10) JOIN VALUES (1) AS t(id) USING (id)", []),
    ("SELECT /*+ BROADCAST(small) */ * FROM big JOIN small USING (k) LATERAL VIEW explode(arr) e AS x",
     ["big", "small"]),
    ("SELECT * FROM t1 UNION ALL SELECT * FROM t2 EXCEPT SELECT * FROM t3", ["t1", "t2", "t3"]),
    ("SELECT 1 AS x", []),
])
def test_sql_tables(sql, tables):
    assert sql_tables(sql) == tables


@pytest.mark.parametrize("sql,what", [
    ("SELECT a FROM t LATERAL VIEW OUTER explode(b) e AS c DISTRIBUTE BY ??", None),
    ("WITH a AS (SELECT ??) INSERT OVERWRITE TABLE t SELECT * FROM a", "is an INSERT statement"),
    ("SELECT ?? ; DROP TABLE t", "holds more than one statement"),
    ("UPDATE t SET a = (", "starts with UPDATE, not with SELECT, WITH, FROM, VALUES, TABLE or '('"),
])
def test_sql_sqlglot_cannot_parse_is_judged_by_its_words(sql, what):
    """Spark-only syntax: it must start like a query, hold one statement, and not write after WITH/FROM."""
    assert sql_statement_problem(sql) == what == lexical_query_problem(sql)
