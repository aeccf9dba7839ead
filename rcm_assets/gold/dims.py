"""Dimensions: current, non-quarantined silver rows with the columns gold_tables.csv lists.

Rows are not sorted: delta-rs does not keep the order of the rows it writes (polars#26912).
"""

import polars as pl

from rcm_assets.metadata import GoldTable


def usable(silver: pl.LazyFrame) -> pl.LazyFrame:
    """What gold may use: the current version, and only rows out of quarantine."""
    return silver.filter(pl.col("is_current") & ~pl.col("is_quarantined"))


def dimension(silver: pl.LazyFrame, table: GoldTable) -> pl.LazyFrame:
    return usable(silver).select(table.columns).unique(table.key, keep="any")
