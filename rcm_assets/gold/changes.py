"""What changed since a gold table's last build, as pure Polars over silver and gold frames.

- A silver row (any version) was modified since a build when its `modified_at` is at or after
  the newest `modified_at` its datasource held then (`watermarks`). "At" takes a load at the
  very same instant again, which is harmless: a refresh replaces a key's row with the same row.
- A fact row touches the KPI cells (datasource, month end) from its earliest date's month to
  the month its last effect ends (`touched_months`): its payment month, the claim month, the
  trailing 90 days of charges after its service date, and, while it is still open A/R (filed,
  not settled), every later month end.
"""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from rcm_assets.gold.kpis import TRAILING_DAYS

DATASOURCE = "datasource"
MODIFIED_AT = "modified_at"
MonthRanges = dict[str, tuple[date, date | None]]  # datasource → first, last month end (None: on)


def watermarks(silver: pl.LazyFrame) -> dict[str, str]:
    """Per datasource, the newest `modified_at` of the table (ISO text, for commit metadata)."""
    newest = silver.group_by(DATASOURCE).agg(pl.col(MODIFIED_AT).max()).collect()
    return {source: at.isoformat() for source, at in newest.iter_rows() if at is not None}


def modified_since(silver: pl.LazyFrame, marks: dict[str, str]) -> pl.LazyFrame:
    """Rows modified at or after their datasource's watermark; every row of a new datasource."""
    since = pl.lit(False)
    for source, at in marks.items():
        since |= (pl.col(DATASOURCE) == source) & (
            pl.col(MODIFIED_AT) >= datetime.fromisoformat(at)
        )
    return silver.filter(since | ~pl.col(DATASOURCE).is_in(list(marks)))


def _open_for_good() -> pl.Expr:
    """Filed and never settled (not paid in full): open A/R at every later month end."""
    settled = pl.col("paid_date").is_not_null() & (
        (pl.col("claim_status") == "Paid") | (pl.col("paid_amount") >= pl.col("amount"))
    )
    return pl.col("claim_date").is_not_null() & ~settled


def _first_month() -> pl.Expr:
    return pl.min_horizontal("service_date", "claim_date", "paid_date").dt.month_end()


def _last_month() -> pl.Expr:
    """The last month end a settled (or never filed) row contributes to."""
    return pl.max_horizontal(
        (pl.col("service_date") + pl.duration(days=TRAILING_DAYS)).dt.month_end(),
        pl.col("claim_date").dt.month_end(),
        pl.col("paid_date").dt.month_end(),
    )


def touched_months(rows: pl.LazyFrame) -> MonthRanges:
    """Per datasource, the span of month ends whose KPI cells the fact `rows` contribute to."""
    hulls = (
        rows.group_by(DATASOURCE)
        .agg(
            _first_month().min().alias("first"),
            _last_month().max().alias("last"),
            _open_for_good().any().alias("open"),
        )
        .collect()
    )
    return {
        source: (first, None if still_open else last)
        for source, first, last, still_open in hulls.iter_rows()
        if first is not None
    }


def merge_ranges(*ranges: MonthRanges) -> MonthRanges:
    """The hull of several ranges per datasource (an open end stays open)."""
    merged: MonthRanges = {}
    for each in ranges:
        for source, (first, last) in each.items():
            if source not in merged:
                merged[source] = (first, last)
                continue
            was_first, was_last = merged[source]
            open_end = was_last is None or last is None
            merged[source] = (min(first, was_first), None if open_end else max(last, was_last))
    return merged


def ranges_to_json(ranges: MonthRanges) -> dict[str, list[str | None]]:
    return {
        source: [first.isoformat(), last.isoformat() if last else None]
        for source, (first, last) in sorted(ranges.items())
    }


def ranges_from_json(recorded: dict[str, list[str | None]]) -> MonthRanges:
    return {
        source: (date.fromisoformat(first), date.fromisoformat(last) if last else None)
        for source, (first, last) in recorded.items()
        if first is not None
    }


def in_ranges(ranges: MonthRanges, column: str = "month_end") -> pl.Expr:
    """Rows whose `column` month end lies in its datasource's range."""
    inside = pl.lit(False)
    for source, (first, last) in ranges.items():
        within = pl.col(column) >= first if last is None else pl.col(column).is_between(first, last)
        inside |= (pl.col(DATASOURCE) == source) & within
    return inside


def contributing(fact: pl.LazyFrame, ranges: MonthRanges) -> pl.LazyFrame:
    """The fact rows that contribute to some KPI cell in `ranges` (a superset, never fewer):
    a row whose span of touched months (see `touched_months`) overlaps its datasource's range."""
    overlaps = pl.lit(False)
    for source, (first, last) in ranges.items():
        reaches = _open_for_good() | (_last_month() >= first)
        starts = pl.lit(True) if last is None else _first_month() <= last
        overlaps |= (pl.col(DATASOURCE) == source) & reaches & starts
    return fact.filter(overlaps)
