"""Pure Polars functions for incremental extracts: watermarks, boundary de-duplication, lineage.

Bronze keeps source values as text; watermarks are compared as parsed datetimes so that
`2024-01-01 10:00:00` and `2024-01-01 10:00:00.000` are the same instant.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def loads_at_top(recorded: Mapping[str, str]) -> tuple[datetime | None, list[str]]:
    """Of the loads' recorded highest watermarks (load id → text as the source wrote it), the
    highest instant and the loads that reached it. A load's rows are all at or below its
    record, so the table's highest rows, if still there, are in those loads."""
    if not recorded:
        return None, []
    parsed = pl.DataFrame(
        {"load_id": list(recorded), "w": list(recorded.values())},
        schema=[("load_id", pl.String), ("w", pl.String)],
    ).with_columns(parse_watermark("w").alias("at"))
    top = parsed.get_column("at").max()
    if top is None:
        return None, []
    return top, parsed.filter(pl.col("at") == top).get_column("load_id").to_list()


def normal_form(column: str) -> pl.Expr:
    """The value as one canonical text, whichever engine wrote it: a date/time in ISO form
    (`2024-01-01 10:00:00.000` = `2024-01-01 10:00:00`), a number without its trailing zeros
    (PostgreSQL's `161.10` = SQLite's `161.1`), any other text stripped."""
    text = pl.col(column).cast(pl.String).str.strip_chars()
    return pl.coalesce(
        parse_datetime(text).dt.to_string("%Y-%m-%dT%H:%M:%S%.f"),
        text.cast(pl.Float64, strict=False).cast(pl.String),
        text,
    ).alias(column)


def drop_loaded(extract: pl.DataFrame, loaded: pl.DataFrame, watermark: str) -> pl.DataFrame:
    """Remove the extract's rows already in bronze: rows at a loaded watermark instant whose
    every value has the same normal form (NULL-safe) as a loaded row's, so a source that moved
    to another engine, which writes `161.10` for `161.1`, is not loaded twice."""
    if loaded.is_empty() or extract.is_empty():
        return extract
    columns = [name for name in extract.columns if name in loaded.columns]
    instants = loaded.select(parse_watermark(watermark)).to_series().unique().implode()
    at_boundary = parse_watermark(watermark).is_in(instants).fill_null(False)
    candidates = extract.filter(at_boundary)
    if candidates.is_empty():
        return extract
    already = loaded.select(normal_form(name) for name in columns).unique()
    normal = [f"__normal_{index}" for index in range(len(columns))]
    kept = (
        candidates.with_columns(
            normal_form(name).alias(n) for name, n in zip(columns, normal, strict=True)
        )
        .join(
            already.rename(dict(zip(columns, normal, strict=True))),
            on=normal,
            how="anti",
            nulls_equal=True,
        )
        .drop(normal)
    )
    return pl.concat([extract.filter(~at_boundary), kept])


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
