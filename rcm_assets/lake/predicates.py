"""SQL predicates for delta-rs (DataFusion), built as sqlglot trees, never by pasting text.

Identifiers are always quoted (DataFusion lowercases unquoted ones, and a quote inside a name
is escaped), literals are always escaped, so a datasource or load id from metadata or from a
table can never change the shape of a predicate.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlglot import exp

# DataFusion reads PostgreSQL's quoting: "identifier", 'literal'.
DIALECT = "postgres"
Expression = exp.Expression


def column(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def literal(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def number(value: int) -> exp.Literal:
    return exp.Literal.number(value)


def day(value: date) -> exp.Expression:
    """A DATE literal."""
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("date"))


def at_least(left: exp.Expression, right: exp.Expression) -> exp.GTE:
    return exp.GTE(this=left, expression=right)


def at_most(left: exp.Expression, right: exp.Expression) -> exp.LTE:
    return exp.LTE(this=left, expression=right)


def function(name: str, *arguments: exp.Expression) -> exp.Expression:
    """A call kept exactly as named (sqlglot would otherwise translate some names)."""
    return exp.Anonymous(this=name, expressions=list(arguments))


def equals(left: exp.Expression, right: exp.Expression) -> exp.EQ:
    return exp.EQ(this=left, expression=right)


def all_of(*conditions: exp.Expression) -> exp.Expression:
    return exp.and_(*conditions)


def any_of(*conditions: exp.Expression) -> exp.Expression:
    return exp.or_(*conditions)


def is_null(expression: exp.Expression) -> exp.Is:
    return exp.Is(this=expression, expression=exp.Null())


def sql(expression: exp.Expression) -> str:
    return expression.sql(dialect=DIALECT)


def identifier(name: str) -> str:
    """A quoted column name, e.g. for the keys of a merge's `updates`."""
    return exp.to_identifier(name, quoted=True).sql(dialect=DIALECT)


def column_equals(name: str, value: str) -> str:
    """`"name" = 'value'`."""
    return sql(equals(column(name), literal(value)))


def column_in(name: str, values: Iterable[str]) -> str:
    """`"name" IN ('a', 'b')`."""
    return sql(exp.In(this=column(name), expressions=[literal(v) for v in values]))
