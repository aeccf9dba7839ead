"""`--where` filters typed by an operator, checked before anything evaluates them.

The text is parsed with sqlglot and must be ONE boolean expression built only from column names,
literals, comparisons, AND/OR/NOT, IN/BETWEEN/LIKE/IS NULL, arithmetic, casts to plain types and
a few pure functions. Anything else (a second statement, a subquery, a table function such as
`read_csv(...)`, a qualified column, `*`) is refused before evaluation. The checked tree is then
re-generated as SQL (identifiers quoted) and handed to Polars as a column expression on the
frame already read, so the operator's text never reaches an engine that could do I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import sqlglot
from sqlglot import exp

from rcm_assets.errors import RcmError

_STRUCTURE = (exp.Paren, exp.Column, exp.Identifier, exp.Literal, exp.Null, exp.Boolean)
_LOGIC = (exp.And, exp.Or, exp.Not, exp.Xor)
_PREDICATES = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
)
_ARITHMETIC = (exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)
# Pure, row-wise functions only: nothing that reads files, tables or the environment.
_FUNCTIONS = (exp.Lower, exp.Upper, exp.Length, exp.Trim, exp.Coalesce, exp.Abs)
_CASTS = (exp.Cast, exp.DataType, exp.DataTypeParam)
ALLOWED = _STRUCTURE + _LOGIC + _PREDICATES + _ARITHMETIC + _FUNCTIONS + _CASTS
_CAST_TYPES = {
    exp.DataType.Type.DATE,
    exp.DataType.Type.TIMESTAMP,
    exp.DataType.Type.TIMESTAMPTZ,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
    exp.DataType.Type.DOUBLE,
    exp.DataType.Type.FLOAT,
    exp.DataType.Type.DECIMAL,
    exp.DataType.Type.VARCHAR,
    exp.DataType.Type.TEXT,
    exp.DataType.Type.BOOLEAN,
}
# Roots that yield a boolean; a bare column is allowed for boolean columns like `is_current`.
_BOOLEAN_ROOTS = (*_LOGIC, *_PREDICATES, exp.Boolean, exp.Column)


def _parse(text: str) -> exp.Expression:
    if not text.strip():
        raise RcmError("--where is empty; give a condition such as \"datasource = 'hos-a'\"")
    try:
        statements = sqlglot.parse(text)
    except sqlglot.errors.SqlglotError as error:
        raise RcmError(f"--where {text!r} is not a valid SQL condition: {error}") from None
    if len(statements) != 1 or statements[0] is None:
        raise RcmError(f"--where {text!r}: give exactly one condition, not several statements")
    return statements[0]


def _unwrap(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _check(tree: exp.Expression, text: str, columns: Iterable[str]) -> None:
    for node in tree.walk():
        if not isinstance(node, ALLOWED):
            raise RcmError(
                f"--where {text!r}: {node.key.upper()} ({node.sql()!r}) is not allowed; use column "
                "names, literals, comparisons, AND/OR/NOT, IN, BETWEEN, LIKE, IS NULL, CAST and "
                "lower/upper/length/trim/coalesce/abs"
            )
        if isinstance(node, exp.DataType) and node.this not in _CAST_TYPES:
            raise RcmError(f"--where {text!r}: cannot cast to {node.sql()}")
        if isinstance(node, exp.Column) and (
            node.table or not isinstance(node.this, exp.Identifier)
        ):
            raise RcmError(f"--where {text!r}: use plain column names, not {node.sql()!r}")
    if not isinstance(_unwrap(tree), _BOOLEAN_ROOTS):
        raise RcmError(f"--where {text!r} is not a condition (true or false for each row)")
    known = set(columns)
    unknown = sorted({c.name for c in tree.find_all(exp.Column)} - known)
    if unknown:
        raise RcmError(
            f"--where {text!r}: unknown column(s) {', '.join(unknown)} (text values take single "
            f"quotes); columns are {', '.join(sorted(known))}"
        )


def where_expression(text: str, columns: Iterable[str]) -> pl.Expr:
    """A Polars filter for an operator's SQL condition over `columns`, or RcmError."""
    tree = _parse(text)
    _check(tree, text, list(columns))
    try:
        return pl.sql_expr(tree.sql(dialect="postgres", identify=True, comments=False))
    except Exception as error:  # Polars' SQL front end raises its own error types
        raise RcmError(f"--where {text!r}: {error}") from None


def apply_where(frame: pl.LazyFrame, text: str) -> pl.LazyFrame:
    return frame.filter(where_expression(text, frame.collect_schema().names()))
