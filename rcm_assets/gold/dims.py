"""Dimensions: current, non-quarantined silver rows with the columns gold_tables.csv lists."""

import polars as pl

from rcm_assets.metadata import GoldTable


def usable(silver: pl.LazyFrame) -> pl.LazyFrame:
    """What gold may use: the current version, and only rows out of quarantine."""
    return silver.filter(pl.col("is_current") & ~pl.col("is_quarantined"))


def dimension(silver: pl.LazyFrame, table: GoldTable) -> pl.LazyFrame:
    return usable(silver).select(table.columns).unique(table.key, keep="any").sort(table.key)
