"""Bronze rows → the common data model: renamed, typed, keyed, with quarantine reasons.

Pure Polars: frame in, frame out. A value that does not cast becomes NULL *and* a quarantine
reason `invalid_<column>`, so a bad date is never silently lost.
"""

import polars as pl

from rcm_assets.errors import MetadataError
from rcm_assets.metadata import ColumnType, Metadata, SilverTable
from rcm_assets.parsing import parse_date, parse_datetime
from rcm_assets.quality.rules import apply_quality, names_where
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
    """One datasource's bronze rows as silver rows, with `invalid_<column>` cast reasons.

    In three steps, so each source column is trimmed once and each cast runs once: the source
    texts, then the typed columns, then the reasons from both (one expression per column reads
    its text up to seven times; Polars does not share them).
    """
    available = bronze.collect_schema().names()
    columns = metadata.columns_of(table.table)
    sources = {c.column: metadata.source_column(table.table, c.column, datasource) for c in columns}
    for column, source in sources.items():
        if source not in available:
            raise MetadataError(
                f"silver_columns.csv: {table.table}.{column} reads {source!r}, which "
                f"bronze/{table.source} of {datasource} does not have "
                f"(it has {', '.join(available)})"
            )
    raw = {source: f"__text_{source}" for source in sources.values()}
    invalid = [
        (
            pl.col(raw[sources[c.column]]).is_not_null() & pl.col(c.column).is_null(),
            f"invalid_{c.column}",
        )
        for c in columns
        if c.type in CASTS
    ]
    return (
        bronze.select(*(_text(source).alias(text) for source, text in raw.items()), "load_id")
        .with_columns(
            _typed(pl.col(raw[sources[c.column]]), c.type, datasource).alias(c.column)
            for c in columns
        )
        .select(
            *(c.column for c in columns),
            pl.lit(datasource).alias("datasource"),
            pl.col("load_id"),
            names_where(invalid).alias("_cast_reasons"),
        )
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
