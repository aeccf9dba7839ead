"""Masked views of gold tables for consumers who must not see personal data (masking.csv).

`last4` keeps the last four digits (`***-**-6789`), `redact` replaces the value entirely (its
length is not kept, so it leaks nothing), `year` keeps the year of a date.
"""

import polars as pl

RULES = {
    "last4": lambda c: pl.concat_str(
        [pl.lit("***-**-"), pl.col(c).cast(pl.String).str.replace_all(r"\D", "").str.slice(-4)]
    ),
    "redact": lambda c: pl.when(pl.col(c).is_not_null()).then(pl.lit("*****")),
    "year": lambda c: pl.col(c).dt.year(),
}


def mask(frame: pl.LazyFrame, rules: dict[str, str]) -> pl.LazyFrame:
    return frame.with_columns(
        [
            pl.when(pl.col(column).is_not_null()).then(RULES[rule](column)).alias(column)
            for column, rule in rules.items()
        ]
    )
