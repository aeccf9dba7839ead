"""SQL sent to source databases, built with sqlglot for the source's dialect.

Metadata never reaches SQL as raw text: identifiers are quoted and literals escaped by sqlglot.
"""

from __future__ import annotations

import polars as pl
from sqlglot import exp

# Dialects without schemas inside a database: a load_config `schema.table` (e.g. `dbo.patients`)
# means the table in the URI's database there, so the schema part is never used. (On MySQL and
# MariaDB `dbo.patients` would name database `dbo`.)
SCHEMELESS_DIALECTS = {"sqlite", "mysql"}
SENTINEL = "__rcm_sentinel"


def _table(dialect: str, schema: str | None, table: str) -> exp.Table:
    db = None if dialect in SCHEMELESS_DIALECTS or not schema else exp.to_identifier(schema, True)
    return exp.Table(this=exp.to_identifier(table, quoted=True), db=db)


def columns_query(dialect: str, schema: str | None, table: str) -> str:
    """List a table's columns in order, without reading (and so without parsing) any row."""
    if dialect == "sqlite":
        listing = exp.select("name").from_(
            exp.Anonymous(this="pragma_table_info", expressions=[exp.Literal.string(table)])
        )
        return listing.sql(dialect=dialect)
    condition = exp.column("table_name").eq(exp.Literal.string(table))
    if dialect in SCHEMELESS_DIALECTS:
        # information_schema spans every database of the server: only the URI's one counts.
        database = exp.Anonymous(this="DATABASE", expressions=[])
        condition = condition.and_(exp.column("table_schema").eq(database))
    elif schema:
        condition = condition.and_(exp.column("table_schema").eq(exp.Literal.string(schema)))
    return (
        exp.select(exp.column("column_name").as_("name"))
        .from_("information_schema.columns")
        .where(condition)
        .order_by("ordinal_position")
        .sql(dialect=dialect)
    )


def extract_query(
    dialect: str,
    schema: str | None,
    table: str,
    columns: list[str],
    watermark: str | None = None,
    since: str | None = None,
) -> str:
    """SELECT every column as text (bronze keeps what the source said), optionally from a watermark.

    Text sidesteps connectorx's strict DATE/DATETIME parsing, where one bad value would fail the
    whole extract; silver parses and quarantines instead. `>=` plus de-duplication of the boundary
    rows (done by the caller) also catches rows written with the same watermark after the last
    extract.
    """
    projections = [
        exp.cast(exp.column(name, quoted=True), exp.DataType.build("text")).as_(name, quoted=True)
        for name in columns
    ]
    query = exp.select(*projections).from_(_table(dialect, schema, table))
    if watermark and since is not None:
        query = query.where(exp.column(watermark, quoted=True) >= exp.Literal.string(since))
    if dialect == "sqlite":
        return _with_sentinel(query, columns).sql(dialect=dialect)
    return query.sql(dialect=dialect)


# Dialects whose text form of a date/time column is not ISO (SQL Server: 'Jan  5 2025 10:00AM'):
# the not-comparable count is not computed there.
NON_ISO_TEXT_DIALECTS = {"tsql"}


def watermark_audit_query(
    dialect: str, schema: str | None, table: str, watermark: str, key: str
) -> str:
    """Count the rows an incremental extract on `watermark` can never reach, with an example key.

    `wm >= since` is never true for a NULL watermark, and compares text that is not ISO
    (`12/31/2026 10:00`) as text, so such rows are never extracted after the first load.
    Columns: null_rows, null_example, text_rows, text_example ('' when none).
    """
    mark, name = exp.column(watermark, quoted=True), exp.column(key, quoted=True)

    def text(column: exp.Expression) -> exp.Expression:
        return exp.cast(column, exp.DataType.build("text"))

    def count_and_example(
        condition: exp.Expression, label: str, example: exp.Expression
    ) -> list[exp.Expression]:
        return [
            exp.Count(this=exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.number(1))])).as_(
                f"{label}_rows"
            ),
            exp.Coalesce(
                this=exp.Min(this=exp.Case(ifs=[exp.If(this=condition, true=example)])),
                expressions=[exp.Literal.string("")],
            ).as_(f"{label}_example"),
        ]

    is_null = exp.Is(this=mark, expression=exp.Null())
    not_iso = exp.and_(
        exp.Not(this=is_null),
        exp.Not(this=exp.Like(this=text(mark), expression=exp.Literal.string("____-__-__%"))),
    )
    if dialect in NON_ISO_TEXT_DIALECTS:
        not_iso = exp.false()
    with_value = exp.Concat(expressions=[text(name), exp.Literal.string(" = "), text(mark)])
    query = exp.select(
        *count_and_example(is_null, "null", text(name)),
        *count_and_example(not_iso, "text", with_value),
    ).from_(_table(dialect, schema, table))
    return query.sql(dialect=dialect)


def _with_sentinel(query: exp.Select, columns: list[str]) -> exp.Union:
    """Put a non-NULL text row first, marked by a SENTINEL column (removed by the reader).

    connectorx types an SQLite expression column (our CASTs have no declared type) from its first
    value and fails with "Cannot infer type from null" when that value is NULL.
    """
    first = exp.select(
        *[exp.Literal.string("").as_(name, quoted=True) for name in columns],
        exp.Literal.number(1).as_(SENTINEL),
    )
    return exp.union(first, query.select(exp.Literal.number(0)), distinct=False)


def drop_sentinel(frame: pl.DataFrame) -> pl.DataFrame:
    if SENTINEL not in frame.columns:
        return frame
    return frame.filter(pl.col(SENTINEL) == 0).drop(SENTINEL)
