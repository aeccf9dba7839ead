"""Pure Polars functions for incremental extracts: watermarks, boundary de-duplication, lineage.

Bronze keeps source values as text; watermarks are compared as parsed datetimes so that
`2024-01-01 10:00:00` and `2024-01-01 10:00:00.000` are the same instant.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl

from rcm_assets.parsing import parse_datetime

LINEAGE_COLUMNS = ("datasource", "load_id", "ingested_at")


def parse_watermark(column: str) -> pl.Expr:
    return parse_datetime(pl.col(column).cast(pl.String).str.strip_chars())


def unparseable_watermarks(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Rows (with their position in the extract) whose watermark is present but not a date."""
    return frame.with_row_index("row").filter(
        pl.col(column).is_not_null() & parse_watermark(column).is_null()
    )


def future_watermarks(frame: pl.DataFrame, column: str, after: datetime) -> pl.DataFrame:
    """Rows (with their position in the extract) whose watermark is later than `after`."""
    return frame.with_row_index("row").filter(parse_watermark(column) > after.replace(tzinfo=None))


def high_watermark(frame: pl.LazyFrame, column: str) -> tuple[str | None, pl.DataFrame]:
    """The highest watermark (as the source wrote it) and every row that carries it.

    The rows are needed because the next extract reads `>=` that value and must drop those
    already loaded.
    """
    top: datetime | None = frame.select(parse_watermark(column).max()).collect().item()
    if top is None:
        return None, frame.head(0).collect()
    boundary = frame.filter(parse_watermark(column) == top).collect()
    return boundary.get_column(column).sort().item(-1), boundary


def drop_loaded(extract: pl.DataFrame, loaded: pl.DataFrame) -> pl.DataFrame:
    """Remove rows identical (NULL-safe, over the extract's columns) to rows already loaded."""
    if loaded.is_empty() or extract.is_empty():
        return extract
    columns = [name for name in extract.columns if name in loaded.columns]
    already = loaded.select(columns).cast(dict.fromkeys(columns, pl.String)).unique()
    return extract.join(already, on=columns, how="anti", nulls_equal=True)


def with_lineage(
    frame: pl.DataFrame, datasource: str, load_id: str, ingested_at: datetime
) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(datasource).alias("datasource"),
        pl.lit(load_id).alias("load_id"),
        pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")).alias("ingested_at"),
    )


class HighWatermark:
    """The highest watermark over a stream of batches, as `high_watermark` picks it per batch."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.highest: tuple[datetime, str] | None = None

    def update(self, batch: pl.DataFrame) -> None:
        text, boundary = high_watermark(batch.lazy(), self.column)
        if text is None:
            return
        instant = boundary.select(parse_watermark(self.column).max()).item()  # the few top rows
        if self.highest is None or (instant, text) > self.highest:
            self.highest = (instant, text)

    @property
    def text(self) -> str | None:
        return self.highest[1] if self.highest else None
