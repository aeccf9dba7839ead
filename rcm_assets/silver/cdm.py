"""Bronze rows → the common data model: renamed, typed, keyed, with quarantine reasons.

Pure Polars: frame in, frame out. A value that does not cast becomes NULL *and* a quarantine
reason `invalid_<column>`, so a bad date is never silently lost.
"""

import polars as pl

from rcm_assets.errors import MetadataError
from rcm_assets.metadata import ColumnType, Metadata, SilverTable
from rcm_assets.parsing import parse_date, parse_datetime
from rcm_assets.quality.rules import apply_quality
from rcm_assets.x12.views import VIEWS

LINEAGE = ("datasource", "load_id")
QUALITY_COLUMNS = ("is_quarantined", "quarantine_reasons", "quality_flags")


def _text(column: str) -> pl.Expr:
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.when(text == "").then(None).otherwise(text)


def _typed(raw: pl.Expr, kind: ColumnType, datasource: str) -> pl.Expr:
    match kind:
        case ColumnType.KEY:
            return raw + pl.lit(f"-{datasource}")
        case ColumnType.DATE:
            return parse_date(raw)
        case ColumnType.DATETIME:
            return parse_datetime(raw)
        case ColumnType.DECIMAL | ColumnType.INTEGER:
            return raw.cast(kind.polars_type, strict=False)
    return raw


CASTS = {ColumnType.DATE, ColumnType.DATETIME, ColumnType.DECIMAL, ColumnType.INTEGER}


def to_cdm(
    bronze: pl.LazyFrame, table: SilverTable, metadata: Metadata, datasource: str
) -> pl.LazyFrame:
    """One datasource's bronze rows as silver rows, with `invalid_<column>` cast reasons."""
    available = bronze.collect_schema().names()
    columns, invalid = [], []
    for column in metadata.columns_of(table.table):
        source = metadata.source_column(table.table, column.column, datasource)
        if source not in available:
            raise MetadataError(
                f"silver_columns.csv: {table.table}.{column.column} reads {source!r}, which "
                f"bronze/{table.source} of {datasource} does not have "
                f"(it has {', '.join(available)})"
            )
        raw = _text(source)
        typed = _typed(raw, column.type, datasource)
        columns.append(typed.alias(column.column))
        if column.type in CASTS:
            invalid.append(
                pl.when(raw.is_not_null() & typed.is_null()).then(
                    pl.lit(f"invalid_{column.column}")
                )
            )
    return bronze.select(
        *columns,
        pl.lit(datasource).alias("datasource"),
        pl.col("load_id"),
        pl.concat_list(invalid).list.drop_nulls().alias("_cast_reasons")
        if invalid
        else pl.lit([], dtype=pl.List(pl.String)).alias("_cast_reasons"),
    )


def fill_missing_keys(frame: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """Give a row without a source id its own key, so it is kept (in quarantine) not dropped.

    `MISSING-<load id>-<row>-<datasource>` (row: its position in the batch) never matches a
    real key, so such rows never close or replace another row. A row index streams; a
    numbering per load (a window) would hold the whole batch in memory.
    """
    missing = pl.concat_str(
        [
            pl.lit("MISSING-"),
            pl.col("load_id"),
            pl.lit("-"),
            pl.col("__row").cast(pl.String),
            pl.lit("-"),
            pl.col("datasource"),
        ]
    )
    return (
        frame.with_row_index("__row")
        .with_columns(pl.coalesce(pl.col(key), missing).alias(key))
        .drop("__row")
    )


def silver_batch(
    bronze: pl.LazyFrame, table: SilverTable, metadata: Metadata, datasource: str
) -> pl.LazyFrame:
    """Everything a bronze slice needs before it is merged into silver."""
    if table.view:
        bronze = VIEWS[table.view](bronze)
    cdm = to_cdm(bronze, table, metadata, datasource)
    return fill_missing_keys(apply_quality(cdm, metadata.rules_of(table.table)), table.key)
