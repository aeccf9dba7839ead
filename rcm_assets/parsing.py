"""How source text becomes dates and times: the one list of accepted formats.

Bronze keeps source values as text. Watermarks (bronze) and silver's typed columns parse that
text with the same formats, so `2024-01-01 10:00:00` and `2024-01-01T10:00:00.000` are the same
instant in both layers.
"""

import polars as pl

DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d")
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d")  # the last: X12 CCYYMMDD


def parse_datetime(text: pl.Expr) -> pl.Expr:
    """The first format that parses; NULL when none does (never an error)."""
    return pl.coalesce(
        [text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in DATETIME_FORMATS]
    )


def parse_date(text: pl.Expr) -> pl.Expr:
    return pl.coalesce([text.str.to_date(fmt, strict=False) for fmt in DATE_FORMATS])
